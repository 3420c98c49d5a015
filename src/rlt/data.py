"""Data: load a hub data set, a local file or a built-in task; validate it; render the views.

Every source ends as a :class:`datasets.Dataset` with the canonical columns
``question``, ``solution`` and (when there is one) ``reasoning_trace``. Bad input is
refused up front with a :class:`~rlt.errors.DataError` naming the file, column or row,
or, with ``on_bad_rows="drop"``, dropped with a report of how many and which.

The three views are what the stages train on (spec §2):

- teacher SFT: ``prompt``/``completion``, the reasoning trace plays the explanation;
- teacher RL: ``prompt`` ending with the explanation-open tag, plus ``question`` and
  ``solution`` for the reward;
- student distillation: ``prompt``/``completion`` in the student's thinking format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from rlt.errors import DataError
from rlt.formats import TagSet, get_tags, student_sft_example, teacher_rl_prompt, teacher_sft_example

logger = logging.getLogger(__name__)

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
CANONICAL = ("question", "solution", "reasoning_trace")


@dataclass
class DataArguments:
    """Where the rows come from and how their columns map to ``question``/``solution``/``reasoning_trace``."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub data set id, or a local .json/.jsonl/.parquet/.csv file."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub data set configuration name."})
    dataset_split: str = field(default="train", metadata={"help": "Split to load."})
    task: str | None = field(
        default=None, metadata={"help": "A built-in task instead of a data set: digits or countdown."}
    )
    task_size: int = field(default=1000, metadata={"help": "Rows the built-in task generates."})
    task_seed: int = field(default=0, metadata={"help": "Seed of the built-in task's generator."})
    num_ops: int = field(default=3, metadata={"help": "digits: operations per question."})
    modulus: int = field(default=10, metadata={"help": "digits: the modulus."})
    question_column: str = field(default="question", metadata={"help": "Column holding the question."})
    solution_column: str = field(default="solution", metadata={"help": "Column holding the solution."})
    reasoning_trace_column: str = field(
        default="reasoning_trace",
        metadata={"help": "Column holding a reasoning trace (needed for SFT warm-up and distillation)."},
    )
    on_bad_rows: str = field(
        default="error",
        metadata={
            "help": "error: refuse a data set with an empty or non-string field; drop: skip such rows."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Keep only the first N rows."})
    tag_format: str = field(default="bespoke", metadata={"help": "Tag set of the texts: bespoke or r1."})

    def __post_init__(self) -> None:
        if self.on_bad_rows not in ("error", "drop"):
            raise DataError(f"on_bad_rows: expected 'error' or 'drop', got {self.on_bad_rows!r}")
        if self.limit is not None and self.limit < 0:
            raise DataError(f"limit: must be >= 0, got {self.limit}")
        try:
            get_tags(self.tag_format)
        except ValueError as err:
            raise DataError(f"tag_format: {err}") from None


# --------------------------------------------------------------------------- loading


def _source_name(args: DataArguments) -> str:
    return args.dataset_name or f"task {args.task!r}"


def _csv_text_features(path: Path) -> Any:
    import csv

    from datasets import Features, Value

    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read it as csv ({err})") from err
    return Features({name: Value("string") for name in header}) if header else None


def _load_local(path: Path, split: str) -> Dataset:
    from datasets import load_dataset

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    builder = LOCAL_FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; expected one of {sorted(LOCAL_FORMATS)}")
    # CSV cells are text: without dtype=str pandas turns a solution "3" into the integer 3.
    kwargs = {"features": _csv_text_features(path)} if builder == "csv" else {}
    try:
        return load_dataset(builder, data_files={split: str(path)}, split=split, **kwargs)
    except Exception as err:  # datasets raises many types for unreadable files
        if "corresponds to no data" in str(err):
            raise DataError(f"{path}: the data set has 0 rows") from err
        raise DataError(f"{path}: cannot read it as {builder} ({type(err).__name__}: {err})") from err


def _looks_local(name: str) -> bool:
    return (
        name.startswith((".", "/", "~")) or Path(name).suffix.lower() in LOCAL_FORMATS or Path(name).exists()
    )


def load_raw(args: DataArguments) -> Dataset:
    """The rows as stored, before column mapping and validation."""
    if bool(args.dataset_name) == bool(args.task):
        raise DataError("give exactly one of dataset_name (hub id or local file) and task (a built-in task)")
    if args.task:
        from rlt.tasks import get_task

        kwargs = {"num_ops": args.num_ops, "modulus": args.modulus} if args.task == "digits" else {}
        try:
            task = get_task(args.task, **kwargs)
        except ValueError as err:
            raise DataError(f"task: {err}") from None
        return Dataset.from_list(task.generate(args.task_size, seed=args.task_seed))
    name = args.dataset_name
    if _looks_local(name):
        return _load_local(Path(name).expanduser(), args.dataset_split)
    from datasets import load_dataset

    try:
        return load_dataset(name, args.dataset_config, split=args.dataset_split)
    except Exception as err:
        raise DataError(f"cannot load data set {name!r} (config {args.dataset_config!r}): {err}") from err


def _map_columns(ds: Dataset, args: DataArguments, need_trace: bool) -> Dataset:
    source = _source_name(args)
    mapping = {
        args.question_column: ("question", "question_column"),
        args.solution_column: ("solution", "solution_column"),
        args.reasoning_trace_column: ("reasoning_trace", "reasoning_trace_column"),
    }
    for column, (canonical, flag) in mapping.items():
        required = canonical != "reasoning_trace" or need_trace
        if column not in ds.column_names and required:
            raise DataError(
                f"{source}: missing column {column!r} (for {canonical}); the data has columns "
                f"{ds.column_names}; map another one with --{flag}"
            )
    renames = {col: canon for col, (canon, _) in mapping.items() if col in ds.column_names and col != canon}
    clobbered = [canon for canon in renames.values() if canon in ds.column_names and canon not in renames]
    if clobbered:
        ds = ds.remove_columns(clobbered)  # e.g. a `solution` column replaced by the mapped `answer`
    return ds.rename_columns(renames) if renames else ds


def _bad_fields(row: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    out = []
    for col in columns:
        value = row.get(col)
        if not isinstance(value, str):
            out.append(f"{col} is {type(value).__name__}, not a string")
        elif not value.strip():
            out.append(f"{col} is empty")
    return out


def validate_rows(ds: Dataset, source: str, on_bad_rows: str = "error") -> Dataset:
    """Refuse (or drop) rows whose canonical fields are missing, empty or not strings."""
    columns = tuple(c for c in CANONICAL if c in ds.column_names)
    bad: list[tuple[int, list[str]]] = []
    for i, row in enumerate(ds.select_columns(list(columns))):
        problems = _bad_fields(row, columns)
        if problems:
            bad.append((i, problems))
            if on_bad_rows == "error":
                raise DataError(
                    f"{source}: row {i}: {'; '.join(problems)} (set on_bad_rows=drop to skip such rows)"
                )
    if not bad:
        return ds
    shown = ", ".join(f"row {i} ({'; '.join(p)})" for i, p in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    message = f"{source}: dropped {len(bad)} of {len(ds)} rows: {shown}{more}"
    logger.warning(message)
    print(message)
    drop = {i for i, _ in bad}
    return ds.select([i for i in range(len(ds)) if i not in drop])


def load_rows(args: DataArguments, need_trace: bool = False) -> Dataset:
    """Rows with ``question``, ``solution`` (and ``reasoning_trace``), validated; other columns kept."""
    ds = load_raw(args)
    source = _source_name(args)
    if len(ds) == 0:
        raise DataError(f"{source}: the data set has 0 rows")
    ds = _map_columns(ds, args, need_trace)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    ds = validate_rows(ds, source, args.on_bad_rows)
    if len(ds) == 0:
        raise DataError(f"{source}: no rows left after dropping bad rows")
    return ds


# --------------------------------------------------------------------------- views


def teacher_sft_view(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, tags: TagSet, system: str | None = None
) -> Dataset:
    """``prompt``/``completion`` for the teacher warm-up; the reasoning trace is the explanation."""
    if "reasoning_trace" not in ds.column_names:
        raise DataError(f"the teacher warm-up needs a reasoning_trace column; the data has {ds.column_names}")

    def render(row: dict[str, Any]) -> dict[str, str]:
        return teacher_sft_example(
            tokenizer, row["question"], row["solution"], row["reasoning_trace"], tags, system
        )

    return ds.map(render, desc="rendering teacher SFT examples")


def teacher_rl_view(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, tags: TagSet, system: str | None = None
) -> Dataset:
    """``prompt`` (ending with the explanation-open tag) plus ``question`` and ``solution``."""

    def render(row: dict[str, Any]) -> dict[str, str]:
        return {"prompt": teacher_rl_prompt(tokenizer, row["question"], row["solution"], tags, system)}

    return ds.map(render, desc="rendering teacher RL prompts")


def student_sft_view(
    ds: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    tags: TagSet,
    explanation_column: str = "reasoning_trace",
    system: str | None = None,
) -> Dataset:
    """``prompt``/``completion`` in the student format (distillation)."""
    if explanation_column not in ds.column_names:
        raise DataError(
            f"missing column {explanation_column!r} for the explanation; the data has {ds.column_names}"
        )

    def render(row: dict[str, Any]) -> dict[str, str]:
        expl = row[explanation_column]
        if not isinstance(expl, str):
            expl = ""
        return student_sft_example(tokenizer, row["question"], row["solution"], expl, tags, system)

    return ds.map(render, desc="rendering student examples")


# --------------------------------------------------------------------------- `rlt data preview`


@dataclass
class PreviewArguments:
    """Arguments of `rlt data preview` (besides the data arguments)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer to render and count tokens with; None = the tiny character tokenizer."},
    )
    num_examples: int = field(default=2, metadata={"help": "Rows to show."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt override; None = default, '' = none."}
    )


def main(argv: list[str] | None = None) -> int:
    """``rlt data preview [--task digits | --dataset_name X] ...``"""
    import sys

    from rich.console import Console
    from rich.panel import Panel
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = TrlParser([DataArguments, PreviewArguments], prog="rlt data preview")
    if not argv or argv[0] != "preview":
        if argv and argv[0] in ("-h", "--help"):
            print("usage: rlt data preview [--task NAME | --dataset_name ID_OR_FILE] [fields ...]\n")
            parser.print_help()
            return 0
        print(
            "usage: rlt data preview [--task NAME | --dataset_name ID_OR_FILE] [fields ...]", file=sys.stderr
        )
        return 2
    rest = argv[1:]
    if not any(
        a.startswith(("--task", "--dataset_name", "--dataset-name", "--config", "-h", "--help")) for a in rest
    ):
        rest = ["--task", "digits", *rest]
    data_args, preview = parser.parse_args_and_config(rest)
    from rlt.models import char_tokenizer, load_tokenizer

    tokenizer = load_tokenizer(preview.model_name_or_path) if preview.model_name_or_path else char_tokenizer()
    tags = get_tags(data_args.tag_format)
    data_args.limit = (
        preview.num_examples if data_args.limit is None else min(data_args.limit, preview.num_examples)
    )
    rows = load_rows(data_args)
    console = Console()

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    for i, row in enumerate(rows):
        rl = teacher_rl_prompt(tokenizer, row["question"], row["solution"], tags, preview.system_prompt)
        console.rule(f"row {i}")
        console.print(Panel(rl, title=f"teacher RL prompt ({count(rl)} tokens)", expand=False))
        trace = row.get("reasoning_trace")
        if isinstance(trace, str):
            sft = teacher_sft_example(
                tokenizer, row["question"], row["solution"], trace, tags, preview.system_prompt
            )
            console.print(
                Panel(
                    sft["completion"],
                    title=f"teacher SFT completion ({count(sft['completion'])} tokens)",
                    expand=False,
                )
            )
            st = student_sft_example(
                tokenizer, row["question"], row["solution"], trace, tags, preview.system_prompt
            )
            text = st["prompt"] + st["completion"]
            console.print(Panel(text, title=f"student example ({count(text)} tokens)", expand=False))
    console.print(f"{len(rows)} rows shown from {_source_name(data_args)} (tag format {tags.name!r})")
    return 0
