"""Shared argument machinery of the training stages (``rlt warmup``, ``distill``, ``train``).

Every stage parses a list of dataclasses with TRL's ``TrlParser``: ``--config recipe.yaml``
sets defaults, any field can be overridden on the command line. Two dataclasses may
declare the same field (``tag_format`` is both a data and a reward setting);
``argparse`` refuses duplicate options, so :func:`without_fields` derives a copy of a
dataclass without the clashing fields and :func:`rebuild` turns a parsed copy back into
the original class, filling the dropped fields from elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlt.errors import ConfigError

DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class ModelArguments:
    """The model a stage trains (a subset of ``trl.ModelConfig``, plus what RLT needs).

    Field names follow ``trl.ModelConfig`` so recipes read the same as TRL's own scripts;
    ``trust_remote_code`` is left out because the trainer configs (``TrainingArguments``)
    already declare it, and it is read from there.
    """

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Hub id or local directory of the model to train."}
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    dtype: str = field(
        default="auto", metadata={"help": f"Weights dtype when loading: one of {list(DTYPES)}."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel, e.g. sdpa, flash_attention_2; None = default."}
    )
    use_peft: bool = field(
        default=False, metadata={"help": "Train LoRA adapters (peft) instead of all weights."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Modules to adapt; None = peft's default for the architecture."}
    )
    lora_target_parameters: list[str] | None = field(
        default=None, metadata={"help": "Parameters to adapt directly (peft >= 0.17); None = none."}
    )
    lora_modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Modules trained fully and saved with the adapter."}
    )
    lora_task_type: str = field(default="CAUSAL_LM", metadata={"help": "peft task type."})
    use_rslora: bool = field(default=False, metadata={"help": "Rank-stabilised LoRA scaling."})
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA (DoRA)."})
    load_in_8bit: bool = field(default=False, metadata={"help": "bitsandbytes 8-bit weights (GPU only)."})
    load_in_4bit: bool = field(default=False, metadata={"help": "bitsandbytes 4-bit weights (GPU only)."})
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "4-bit quantisation type: fp4 or nf4."})
    use_bnb_nested_quant: bool = field(default=False, metadata={"help": "Nested 4-bit quantisation."})
    bnb_4bit_quant_storage: str | None = field(default=None, metadata={"help": "4-bit storage dtype."})

    def validate(self) -> None:
        if not self.model_name_or_path:
            raise ConfigError("model_name_or_path: required (a hub id or a local model directory)")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype: unknown dtype {self.dtype!r}; expected one of {list(DTYPES)}")
        if self.use_peft and self.lora_r <= 0:
            raise ConfigError(f"lora_r: must be > 0 with use_peft, got {self.lora_r}")

    def peft_config(self) -> Any:
        """A peft ``LoraConfig`` (via ``trl.get_peft_config``) when ``use_peft``, else None."""
        if not self.use_peft:
            return None
        from trl import ModelConfig, get_peft_config

        names = {f.name for f in dataclasses.fields(ModelConfig)}
        return get_peft_config(ModelConfig(**{k: v for k, v in vars(self).items() if k in names}))  # type: ignore[arg-type]

    def model_init_kwargs(self, trust_remote_code: bool = False, device_map: Any = None) -> dict[str, Any]:
        """``from_pretrained`` keyword arguments, as TRL's example scripts build them."""
        kwargs: dict[str, Any] = {
            "revision": self.model_revision,
            "trust_remote_code": trust_remote_code,
            "dtype": self.dtype,
        }
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        if self.load_in_4bit or self.load_in_8bit:
            from trl import ModelConfig, get_kbit_device_map, get_quantization_config

            names = {f.name for f in dataclasses.fields(ModelConfig)}
            mc = ModelConfig(**{k: v for k, v in vars(self).items() if k in names})
            kwargs["quantization_config"] = get_quantization_config(mc)
            kwargs["device_map"] = get_kbit_device_map()
        elif device_map is not None:
            kwargs["device_map"] = device_map
        return kwargs


def _resolved_fields(cls: type) -> list[tuple[str, Any, dataclasses.Field]]:
    """``(name, resolved type, field)`` of a dataclass; string annotations are resolved."""
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f) for f in dataclasses.fields(cls) if f.init]


def without_fields(cls: type, exclude: Iterable[str], name: str | None = None) -> type:
    """A copy of dataclass ``cls`` without the fields in ``exclude`` (defaults, help kept).

    The copy has no ``__post_init__``: validation happens when :func:`rebuild` builds ``cls``.
    """
    exclude = set(exclude)
    specs = []
    for fname, ftype, f in _resolved_fields(cls):
        if fname in exclude:
            continue
        kwargs: dict[str, Any] = {"metadata": f.metadata}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs["default_factory"] = f.default_factory
        specs.append((fname, ftype, field(**kwargs)))
    copy = dataclasses.make_dataclass(name or f"{cls.__name__}Fields", specs)
    copy.__doc__ = cls.__doc__
    return copy


def rebuild(cls: type, parsed: Any, **extra: Any) -> Any:
    """Instantiate ``cls`` from a parsed :func:`without_fields` copy plus the dropped fields."""
    values = {f.name: getattr(parsed, f.name) for f in dataclasses.fields(parsed)}
    return cls(**values, **extra)


def clashing(first: Sequence[type], cls: type) -> set[str]:
    """Field names of ``cls`` already declared by one of the dataclasses in ``first``."""
    seen = {f.name for c in first for f in dataclasses.fields(c)}
    return {f.name for f in dataclasses.fields(cls)} & seen


def parse(types: Sequence[type], argv: list[str] | None) -> tuple[Any, ...]:
    """``TrlParser(types).parse_args_and_config(argv)`` with unknown recipe keys as a ConfigError."""
    from trl import TrlParser

    parser = TrlParser(list(types))
    try:
        parsed = tuple(parser.parse_args_and_config(argv))
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        msg = str(err)
        if msg.startswith("Unknown arguments from config file"):
            raise ConfigError(f"recipe: {msg.split('. Please')[0]}") from None
        raise
    for p in parsed:
        _check_scalar_types(p)
    return tuple(_none_from_text(p) for p in parsed)


def _check_scalar_types(obj: Any) -> None:
    """A recipe's ``max_steps: 1.5`` or ``bf16: "yes"``: a ConfigError naming the field.

    argparse types only string defaults, and TrlParser passes YAML values as defaults,
    so a wrongly typed YAML number or flag would otherwise reach the trainer unchecked.
    """
    try:
        hints = typing.get_type_hints(type(obj))
    except Exception:  # an unresolvable annotation: nothing to check against
        return
    for f in dataclasses.fields(obj):
        hint, value = hints.get(f.name), getattr(obj, f.name)
        allowed = (
            set(typing.get_args(hint))
            if typing.get_origin(hint) in (typing.Union, types.UnionType)
            else {hint}
        )
        if value is None or not allowed & {int, float, bool}:
            continue
        if isinstance(value, bool):
            ok = bool in allowed
        elif isinstance(value, int):
            ok = bool(allowed & {int, float})
        elif isinstance(value, float):
            ok = float in allowed
        else:
            ok = not allowed <= {int, float, bool, type(None)}  # e.g. ``int | str``
        if not ok:
            names = " or ".join(sorted(t.__name__ for t in allowed if t is not type(None)))
            raise ConfigError(f"{f.name}: expected {names}, got {value!r}")


NONE_SPELLINGS = ("none", "null")


def _none_from_text(obj: Any) -> Any:
    """``--task null`` switches off a recipe's value: argparse would keep the string "null".

    Applied to optional text fields (default None) of our dataclasses; TRL's and
    transformers' configs parse their own fields.
    """
    from transformers import TrainingArguments

    if isinstance(obj, TrainingArguments):
        return obj
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is None and isinstance(value, str) and value.strip().lower() in NONE_SPELLINGS:
            setattr(obj, f.name, None)
    return obj


def world_size() -> int:
    """Number of training processes, as ``accelerate launch``/``torchrun`` announce it."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)
