"""Loading models and tokenizers, the one way every stage does it.

- :func:`load_tokenizer` / :func:`save_tokenizer`: a saved character tokenizer keeps its class;
- :func:`load_tokenizer_for`: a tokenizer for a config field, with a pad-token fallback and an
  error that names the field;
- :func:`load_model_and_tokenizer`: a causal LM and its tokenizer, with dtype and device;
- :func:`load_student`: the frozen student of the RLT reward;
- :func:`check_vocabularies`: teacher and student must share one vocabulary (the reward scores
  the teacher's token ids with the student);
- :func:`check_generation_budget`: prompt + new tokens must fit the model's context, read from
  its config before any weights load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from rlt.errors import ConfigError

logger = logging.getLogger(__name__)


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> None:
    """``save_pretrained``, recording a character tokenizer's class so :func:`load_tokenizer` keeps it."""
    tokenizer.save_pretrained(out_dir)
    if type(tokenizer).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend"):
        cfg_path = Path(out_dir) / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        cfg_path.write_text(json.dumps(cfg, indent=2))


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained``, except for tokenizers saved as plain fast tokenizers.

    transformers 5 maps every ``qwen2`` checkpoint to ``Qwen2Tokenizer``, whatever the
    saved class, and that rebuilds the pre-tokenizer: a character tokenizer then drops
    spaces. A directory whose tokenizer_config says ``PreTrainedTokenizerFast`` is
    therefore loaded with that class. Every stage loads tokenizers through here.
    """
    cfg_path = Path(path).expanduser() / "tokenizer_config.json"
    if cfg_path.is_file():
        cls = json.loads(cfg_path.read_text()).get("tokenizer_class")
        if cls == "PreTrainedTokenizerFast":
            return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def load_model_and_tokenizer(
    path: str, dtype: torch.dtype | str | None = None, device: str | torch.device | None = None
):
    """Load a causal LM and its tokenizer from a hub id or a local directory, with a clear error."""
    _check_path(path, None)
    try:
        tok = load_tokenizer(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype if dtype is not None else "auto")
    except OSError as err:
        raise FileNotFoundError(f"cannot load model {path!r}: {err}") from err
    if device is not None:
        model.to(device)
    return model, _with_pad(tok)


def _check_path(path: str, field_name: str | None) -> None:
    local = Path(path).expanduser()
    # A hub id is "name" or "namespace/name": more parts can only be a local path
    # (e.g. a recipe's runs/tiny/teacher_warmup before the stage that writes it has run).
    looks_local = path.startswith((".", "/", "~")) or path.strip("/").count("/") >= 2
    if (looks_local or Path(path).exists()) and not local.exists():
        where = f"{field_name}: " if field_name else ""
        raise FileNotFoundError(f"{where}model path {path!r} does not exist")


def _with_pad(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tok.pad_token is None:  # batched generation and training pad; Qwen-style models reuse EOS
        tok.pad_token = tok.eos_token
    return tok


def load_tokenizer_for(path: str, field_name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of the model a config field names, with a pad token; errors name the field."""
    _check_path(path, field_name)
    try:
        return _with_pad(load_tokenizer(path))
    except OSError as err:
        raise FileNotFoundError(f"{field_name}: cannot load the tokenizer of {path!r}: {err}") from err


def vocab_difference(
    a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase, tags: tuple[str, ...]
) -> str | None:
    """A description of how two tokenizers' vocabularies differ, or None if they agree."""
    va, vb = a.get_vocab(), b.get_vocab()
    if va == vb:
        return None
    parts = []
    if len(va) != len(vb):
        parts.append(f"sizes {len(va)} (teacher) vs {len(vb)} (student)")
    for tag in tags:
        ia, ib = va.get(tag), vb.get(tag)
        if ia != ib:
            parts.append(f"tag {tag!r} has id {ia} (teacher) vs {ib} (student)")
    diff = [t for t in va if vb.get(t) != va[t]][:5] + [t for t in vb if t not in va][:5]
    if diff:
        parts.append("e.g. tokens " + ", ".join(f"{t!r}: {va.get(t)} vs {vb.get(t)}" for t in diff[:5]))
    return "; ".join(parts) or "the vocabularies differ"


def check_vocabularies(teacher_tok: Any, student_tok: Any, tags: Any) -> None:
    """ConfigError when teacher and student tokenizers differ (the reward scores teacher ids with the student)."""
    diff = vocab_difference(teacher_tok, student_tok, tags.all_tags)
    if diff is not None:
        raise ConfigError(
            "student_model_name_or_path: the student's vocabulary differs from the teacher's "
            f"(model_name_or_path); the RLT reward needs one shared vocabulary: {diff}"
        )


def load_student(
    path: str,
    dtype: str = "auto",
    revision: str = "main",
    trust_remote_code: bool = False,
    device: Any = None,
) -> torch.nn.Module:
    """The frozen student of the RLT reward (eval mode, no gradients), on ``device``."""
    _check_path(path, "student_model_name_or_path")
    student = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype if dtype == "auto" else getattr(torch, dtype), revision=revision,
        trust_remote_code=trust_remote_code,
    )  # fmt: skip
    student.eval().requires_grad_(False)
    return student.to(device) if device is not None else student


# --------------------------------------------------------------------------- generation budget

# Config attributes that hold a model's context length, in the order transformers' families use them.
CONTEXT_ATTRIBUTES = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def model_context(model_path_or_config: Any) -> int | None:
    """A model's context in tokens, from its config alone (a path, a config, or a loaded model).

    A path reads ``config.json`` only: the check runs before any weights load. None when the
    config names no context length (nothing to check against).
    """
    config = model_path_or_config
    if isinstance(config, (str, Path)):
        from transformers import AutoConfig

        _check_path(str(config), None)
        try:
            config = AutoConfig.from_pretrained(str(config))
        except (OSError, ValueError):
            return None  # the weights' loader reports an unloadable model with its own error
    config = getattr(config, "config", config)  # a loaded model
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in CONTEXT_ATTRIBUTES:
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def longest_prompt_tokens(tokenizer: Any, prompts: Iterable[str], chunk: int = 1024) -> int:
    """The token count of the longest of ``prompts`` (rendered text, no special tokens added)."""
    prompts, longest = list(prompts), 0
    for lo in range(0, len(prompts), chunk):
        ids = tokenizer(prompts[lo : lo + chunk], add_special_tokens=False)["input_ids"]
        longest = max([longest, *map(len, ids)])
    return longest


def check_generation_budget(
    model_path_or_config: Any,
    longest_prompt: int,
    max_new_tokens: int,
    field_name: str,
    *,
    explicit: bool,
    command: str = "rlt",
) -> int:
    """The number of new tokens to generate: ``max_new_tokens``, or less so the longest prompt fits.

    Generating past ``max_position_embeddings`` is undefined behaviour (transformers only
    warns), so a budget longer than the context minus the longest prompt is either refused
    or capped. The rule, the same for every command: a value the user set (``explicit``: on
    the command line or in the recipe) is refused with a ConfigError naming ``field_name``
    and the largest value that fits; a default is capped to that value with one logged line,
    so the paper's defaults stay wherever the model allows them. A prompt that leaves no
    room at all is always refused.
    """
    context = model_context(model_path_or_config)
    if context is None or longest_prompt + max_new_tokens <= context:
        return max_new_tokens
    room = context - longest_prompt
    where = (
        f"the longest prompt has {longest_prompt} tokens and the model's context is {context} "
        "(max_position_embeddings)"
    )
    if room < 1:
        raise ConfigError(f"{field_name}: no room for any new token: {where}; use shorter prompts")
    if explicit:
        raise ConfigError(
            f"{field_name}: {max_new_tokens} new tokens do not fit: {where}; set --{field_name} {room} or less"
        )
    logger.info(
        f"{command}: {field_name} capped at {room} (default {max_new_tokens}): {where}; "
        f"--{field_name} sets it"
    )
    return room
