"""Shared argument machinery of every command.

The model a stage trains is TRL's own ``trl.ModelConfig`` (checked by
:func:`validate_model_config`). Every command parses a list of dataclasses with TRL's
``TrlParser`` through :func:`parse`: ``--config recipe.yaml``
sets defaults, any field can be overridden on the command line. Two dataclasses may
declare the same field (``tag_format`` is both a data and a reward setting);
``argparse`` refuses duplicate options, so :func:`without_fields` derives a copy of a
dataclass without the clashing fields and :func:`rebuild` turns a parsed copy back into
the original class, filling the dropped fields from elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import types
import typing
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError

DTYPES = ("auto", "bfloat16", "float16", "float32")


def validate_model_config(model: Any) -> None:
    """Checks of a ``trl.ModelConfig`` that TRL leaves to the trainer, as ConfigErrors naming the field."""
    if not model.model_name_or_path:
        raise ConfigError("model_name_or_path: required (a hub id or a local model directory)")
    if model.dtype not in DTYPES:
        raise ConfigError(f"dtype: unknown dtype {model.dtype!r}; expected one of {list(DTYPES)}")
    if model.use_peft and model.lora_r <= 0:
        raise ConfigError(f"lora_r: must be > 0 with use_peft, got {model.lora_r}")


def model_init_kwargs(model: Any, trust_remote_code: bool = False) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments of a ``trl.ModelConfig``, as TRL's example scripts build them."""
    kwargs: dict[str, Any] = {
        "revision": model.model_revision,
        "trust_remote_code": trust_remote_code,
        "dtype": model.dtype,
    }
    if model.attn_implementation:
        kwargs["attn_implementation"] = model.attn_implementation
    if model.load_in_4bit or model.load_in_8bit:
        from trl import get_kbit_device_map, get_quantization_config

        kwargs["quantization_config"] = get_quantization_config(model)
        kwargs["device_map"] = get_kbit_device_map()
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


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with a default and its ``--help`` text: ``x: int = option(3, "What x is.")``.

    A list or dict default gets a factory (a fresh copy per instance). ``help`` is
    %-formatted by argparse: write ``%%`` for a percent sign.
    """
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


SYSTEM_PROMPT_HELP = {
    "teacher": "Teacher system prompt; None = the chat format's (stratos: the official one), '' = none.",
    "student": "Student system prompt{of}; None = the data's `system` column, else the chat format's "
    "(stratos: STRATOS_SYSTEM_PROMPT), '' = none.",
}


def system_prompt_field(role: str, of: str = "") -> Any:
    """The ``<role>_system_prompt`` field of a command (None = the format's / the row's default)."""
    return field(default=None, metadata={"help": SYSTEM_PROMPT_HELP[role].format(of=of)})


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass
class LoggingArguments:
    """``--log_level`` of commands without a trainer config (``TrainingArguments`` has its own)."""

    log_level: str = field(
        default="info", metadata={"help": f"Verbosity of rlt's messages: one of {list(LOG_LEVELS)}."}
    )


class _StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is emitted (tests swap it)."""

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(level: str = "info") -> None:
    """rlt's messages on stderr, one line each; transformers' ``passive`` leaves rlt at ``info``."""
    logger = logging.getLogger("rlt")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    name = level.lower() if isinstance(level, str) else "info"
    logger.setLevel(getattr(logging, name.upper()) if name in LOG_LEVELS else logging.INFO)


HELP_FLAGS = ("-h", "--help")


def _recipe(argv: Sequence[str]) -> dict[str, Any]:
    """The recipe that ``--config`` names (TrlParser's spelling), or {} (none, or a missing file)."""
    if "--config" not in argv or argv.index("--config") + 1 >= len(argv):
        return {}
    path = Path(argv[argv.index("--config") + 1])
    if not path.is_file():
        return {}  # TrlParser reports the missing file itself
    import yaml

    recipe = yaml.safe_load(path.read_text())
    return recipe if isinstance(recipe, dict) else {}


def _recipe_value(argv: Sequence[str], name: str) -> Any:
    """``name``'s value in the recipe that ``--config`` names, else None."""
    return _recipe(argv).get(name)


def require_model(argv: Sequence[str], recipe: str) -> None:
    """ConfigError when neither the command line nor the recipe names the model.

    Runs before the parser, whose trainer configs check the machine first (``bf16`` on a
    CPU): a user with nothing set must first hear that the model is missing and which
    recipe to start from, not how to change a precision they never chose.
    """
    if any(a in HELP_FLAGS for a in argv):
        return
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if "--model_name_or_path" in given or _recipe_value(argv, "model_name_or_path"):
        return
    config = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
    if config is not None and not Path(config).is_file():
        return  # the recipe the user named is missing: TrlParser says so first
    where = "the recipe does not set it" if "--config" in given else "no --config recipe and no model given"
    raise ConfigError(
        f"model_name_or_path: required (a hub id or a local model directory); {where}: "
        f"start from a recipe, e.g. --config {recipe}, or pass --model_name_or_path"
    )


def parse(
    types: Sequence[type], argv: list[str] | None, *, model_recipe: str | None = None
) -> tuple[Any, ...]:
    """Every command's parser: ``TrlParser(types).parse_args_and_config(argv)``, errors as ConfigErrors.

    An unknown field, an unknown recipe key or a setting a config refuses (e.g. ``bf16`` on
    a machine without a GPU) becomes a :class:`ConfigError` that names it, which the CLI
    prints as one line. Types without a ``log_level`` field get ``--log_level``
    (:class:`LoggingArguments`), and rlt's logging is set to it. With ``model_recipe``
    (commands that train a model), a missing model is the first error, naming that recipe.
    """
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    if model_recipe is not None:
        require_model(argv, model_recipe)
    types = list(types)
    has_level = any("log_level" in {f.name for f in dataclasses.fields(t)} for t in types)
    parser = TrlParser(types if has_level else [*types, LoggingArguments])
    try:
        with warnings.catch_warnings():
            # The trainer configs' own defaults trip transformers' deprecation notices (e.g.
            # ``gradient_checkpointing``): nothing an rlt user set or can act on.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            parsed = tuple(parser.parse_args_and_config(argv))
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(_explain(str(err))) from None
    level = next((p.log_level for p in parsed if hasattr(p, "log_level")), "info")
    setup_logging(level if level in LOG_LEVELS else "info")
    parsed = parsed if has_level else parsed[:-1]
    for p in parsed:
        _check_scalar_types(p)
    return tuple(_none_from_text(p) for p in parsed)


def _explain(msg: str) -> str:
    """A parser's or a config's ValueError as one line that names the field and the fix."""
    unused = re.search(r"arguments are not used by the HfArgumentParser: \[(.*)\]", msg)
    if unused:
        names = [n.strip(" '\"") for n in unused.group(1).split(",") if n.strip(" '\"").startswith("-")]
        return f"unknown field(s) {', '.join(names) or unused.group(1)}; `--help` lists the fields"
    if msg.startswith("Unknown arguments from config file"):
        return f"recipe: {msg.split('. Please')[0]}"
    if "doesn't support bf16" in msg or "bf16" in msg and "gpu" in msg.lower():
        return "bf16: this machine has no GPU with bf16; set --use_cpu true --bf16 false (or run on a GPU)"
    if "fp16" in msg and ("GPU" in msg or "gpu" in msg or "device" in msg):
        return "fp16: this machine cannot train in fp16; set --use_cpu true --fp16 false (or run on a GPU)"
    return msg.splitlines()[0] if msg else "invalid arguments"


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
