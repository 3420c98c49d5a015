"""Data: load a hub data set, a local file or a built-in task; validate it; render the views.

Every source ends as a :class:`datasets.Dataset` with the canonical columns
``question``, ``solution`` and (when there is one) ``reasoning_trace``. Bad input is
refused up front with a :class:`~rlt.errors.DataError` naming the file, column or row
(rows are counted from 0, in the order of the source), or, with ``on_bad_rows="drop"``,
dropped with a report of how many and which.

Data sets in ShareGPT form (a ``conversations`` column of ``{from, value}`` or
``{role, content}`` turns, as ``bespokelabs/Bespoke-Stratos-17k``) are read directly
when they have no question column: the first user turn is the question, and the first
assistant turn is split at the thinking and solution tags of ``tag_format`` into
``reasoning_trace`` and ``solution``.

The three views are what the stages train on (spec §2):

- teacher SFT: ``prompt``/``completion``, the reasoning trace plays the explanation;
- teacher RL: ``prompt`` ending with the explanation-open tag, plus ``question`` and
  ``solution`` for the reward;
- student distillation: ``prompt``/``completion`` in the student's thinking format.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from rlt.config import system_prompt_field
from rlt.errors import DataError
from rlt.formats import (
    CHAT_FORMATS,
    TagSet,
    get_tags,
    student_sft_example,
    teacher_rl_prompt,
    teacher_sft_example,
)

logger = logging.getLogger(__name__)

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
CANONICAL = ("question", "solution", "reasoning_trace")
CONVERSATIONS = "conversations"


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
    chat_format: str = field(
        default="stratos",
        metadata={
            "help": "How the chats are written: stratos (the official RLT/Bespoke-Stratos prompts, '\\n\\n' "
            "padding inside every tag) or compact (short prompts, no padding: tiny character models)."
        },
    )

    def tags(self) -> TagSet:
        """The tag set of ``tag_format`` in the style of ``chat_format``."""
        return get_tags(self.tag_format, self.chat_format)

    def __post_init__(self) -> None:
        if self.on_bad_rows not in ("error", "drop"):
            raise DataError(f"on_bad_rows: expected 'error' or 'drop', got {self.on_bad_rows!r}")
        if self.limit is not None and self.limit < 1:
            raise DataError(f"limit: must be >= 1 (or unset for all rows), got {self.limit}")
        if self.task_size < 1:
            raise DataError(f"task_size: must be >= 1, got {self.task_size}")
        try:
            get_tags(self.tag_format)
        except ValueError as err:
            raise DataError(f"tag_format: {err}") from None
        if self.chat_format not in CHAT_FORMATS:
            raise DataError(
                f"chat_format: unknown chat format {self.chat_format!r}; expected one of {list(CHAT_FORMATS)}"
            )


# --------------------------------------------------------------------------- loading


def _source_name(args: DataArguments) -> str:
    return args.dataset_name or f"task {args.task!r}"


def _csv_text_features(path: Path) -> Any:
    import csv

    from datasets import Features, Value

    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 text ({err.reason} at byte {err.start})") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read it as csv ({err})") from err
    return Features({name: Value("string") for name in header}) if header else None


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    except Exception:
        return None


def _load_dir(path: Path, split: str) -> Dataset:
    from datasets import DatasetDict, load_dataset, load_from_disk

    try:
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            loaded = load_from_disk(str(path))
            if isinstance(loaded, DatasetDict):
                if split not in loaded:
                    raise DataError(f"{path}: no split {split!r}; the splits are {list(loaded)}")
                loaded = loaded[split]
            return loaded
        # A folder of data files (or a dataset script): datasets' own resolution, as for a hub id.
        return load_dataset(str(path), split=split)
    except DataError:
        raise
    except Exception as err:
        raise DataError(
            f"{path}: cannot load the data set in this folder ({type(err).__name__}: {err})"
        ) from err


def _load_local(path: Path, split: str) -> Dataset:
    from datasets import load_dataset

    if path.is_dir():
        return _load_dir(path, split)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    builder = LOCAL_FORMATS.get(path.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; expected one of {sorted(LOCAL_FORMATS)}")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DataError(f"{path}: cannot open it ({err.strerror or err})") from err
    if size == 0:
        # datasets fails on an empty file with a bare StopIteration; say what it means.
        raise DataError(f"{path}: the file is empty (0 rows)")
    if builder == "parquet" and _parquet_rows(path) == 0:
        raise DataError(f"{path}: the data set has 0 rows")
    # CSV cells are text: without dtype=str pandas turns a solution "3" into the integer 3.
    kwargs = {"features": _csv_text_features(path)} if builder == "csv" else {}
    try:
        return load_dataset(builder, data_files={split: str(path)}, split=split, **kwargs)
    except Exception as err:  # datasets raises many types for unreadable files
        if "corresponds to no data" in str(err):
            raise DataError(f"{path}: the data set has 0 rows") from err
        raise DataError(f"{path}: {_unreadable(path, builder, err)}") from err


def _unreadable(path: Path, builder: str, err: BaseException) -> str:
    """Why datasets could not read ``path``, said as the user can fix it: the byte that is not
    UTF-8, the JSON line that does not parse, else datasets' own message."""
    if builder in ("json", "csv"):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not valid UTF-8 text ({bad.reason} at byte {bad.start})"
    if builder == "json":
        if not text.lstrip().startswith("["):  # JSON lines: name the first that does not parse
            for n, line in enumerate(text.splitlines(), 1):
                try:
                    if line.strip():
                        json.loads(line)
                except json.JSONDecodeError as bad:
                    return f"line {n} is not valid JSON ({bad.msg})"
    return f"cannot read it as {builder} ({type(err).__name__}: {err})"


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

        # Only digits has these settings; countdown would refuse them as unknown arguments.
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


# --------------------------------------------------------------------------- ShareGPT


def _turn(message: Any) -> tuple[str, Any]:
    if not isinstance(message, dict):
        return "", None
    role = message.get("from", message.get("role", ""))
    return str(role).lower(), message.get("value", message.get("content"))


def _between(text: str, open_tag: str, close_tag: str) -> str | None:
    """The text between the tags exactly, padding included (the official ``grab_text_between``)."""
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    return text[start:end] if end >= 0 else None


def sharegpt_fields(conversation: Any, tags: TagSet) -> dict[str, str | None]:
    """``question``/``reasoning_trace``/``solution`` of one ShareGPT conversation.

    A field that cannot be found is None, so validation names the row instead of
    training on a half-parsed example.
    """
    turns = [_turn(m) for m in conversation] if isinstance(conversation, list) else []
    question = next((v for r, v in turns if r in ("user", "human")), None)
    reply = next((v for r, v in turns if r in ("assistant", "gpt")), None)
    if not isinstance(reply, str):
        return {"question": question, "reasoning_trace": None, "solution": None}
    return {
        "question": question,
        "reasoning_trace": _between(reply, tags.think_open, tags.think_close),
        "solution": _between(reply, tags.solution_open, tags.solution_close),
    }


def _from_sharegpt(ds: Dataset, tags: TagSet) -> Dataset:
    def convert(row: dict[str, Any]) -> dict[str, str | None]:
        return sharegpt_fields(row[CONVERSATIONS], tags)

    return ds.map(convert, remove_columns=[CONVERSATIONS], desc="reading ShareGPT conversations")


# --------------------------------------------------------------------------- columns and rows


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


def _problem(column: str, value: Any) -> str | None:
    if value is None:
        return f"{column} is missing (null)"
    if not isinstance(value, str):
        return f"{column} is {type(value).__name__}, not a string"
    if not value.strip():
        return f"{column} is empty"
    return None


def validate_rows(
    ds: Dataset, source: str, on_bad_rows: str = "error", columns: tuple[str, ...] | None = None
) -> Dataset:
    """Refuse (or drop) rows whose ``columns`` are missing, empty or not strings.

    ``columns`` defaults to the canonical columns present. With ``on_bad_rows="drop"``
    the count and the first row indices dropped are printed to stderr.
    """
    if columns is None:
        columns = tuple(c for c in CANONICAL if c in ds.column_names)
    bad: list[tuple[int, list[str]]] = []
    i = 0
    # Batches: row-by-row iteration of a 17k-row Arrow table costs seconds.
    for batch in ds.select_columns(list(columns)).iter(batch_size=1024):
        for j in range(len(batch[columns[0]])):
            problems = [p for c in columns if (p := _problem(c, batch[c][j])) is not None]
            if problems:
                if on_bad_rows == "error":
                    raise DataError(
                        f"{source}: row {i + j}: {'; '.join(problems)} (set on_bad_rows=drop to skip such rows)"
                    )
                bad.append((i + j, problems))
        i += len(batch[columns[0]])
    if not bad:
        return ds
    shown = ", ".join(f"row {k} ({'; '.join(p)})" for k, p in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    logger.warning(f"{source}: dropped {len(bad)} of {len(ds)} rows: {shown}{more}")
    drop = {k for k, _ in bad}
    return ds.select([k for k in range(len(ds)) if k not in drop])


def load_rows(args: DataArguments, need_trace: bool = False) -> Dataset:
    """Rows with ``question``, ``solution`` (and ``reasoning_trace``), validated; other columns kept.

    ``need_trace``: the caller renders the reasoning trace (SFT warm-up, distillation), so
    a missing ``reasoning_trace`` column, or a bad value in it, is refused (or dropped).
    Without it a present trace column is kept as it is and not checked.
    """
    source = _source_name(args)
    try:
        return _load_rows(args, need_trace, source)
    except UnicodeDecodeError as err:
        # pyarrow reads JSON bytes lazily: invalid UTF-8 surfaces only when rows are read.
        raise DataError(f"{source}: not valid UTF-8 text ({err.reason} at byte {err.start})") from err


def _load_rows(args: DataArguments, need_trace: bool, source: str) -> Dataset:
    ds = load_raw(args)
    if len(ds) == 0:
        raise DataError(f"{source}: the data set has 0 rows")
    if args.question_column not in ds.column_names and CONVERSATIONS in ds.column_names:
        ds = _from_sharegpt(ds, get_tags(args.tag_format))
    ds = _map_columns(ds, args, need_trace)
    if args.limit is not None:
        ds = ds.select(range(min(args.limit, len(ds))))
    checked = ("question", "solution", "reasoning_trace") if need_trace else ("question", "solution")
    ds = validate_rows(ds, source, args.on_bad_rows, checked)
    if len(ds) == 0:
        raise DataError(f"{source}: no rows left after dropping bad rows")
    return ds


# --------------------------------------------------------------------------- views


def row_system(row: dict[str, Any], system: str | None) -> str | None:
    """The student's system prompt for ``row``: ``system`` when set, else the row's ``system``
    column (Bespoke-Stratos-17k carries the prompt its student was trained with), else None
    (the chat format's default)."""
    if system is not None:
        return system
    value = row.get("system")
    return value if isinstance(value, str) and value else None


def _text(row: dict[str, Any], column: str, index: int) -> str:
    problem = _problem(column, row[column])
    if problem is not None:
        raise DataError(f"row {index}: {problem}; filter such rows out first (load_rows on_bad_rows=drop)")
    return row[column]


def teacher_sft_view(
    ds: Dataset, tokenizer: PreTrainedTokenizerBase, tags: TagSet, system: str | None = None
) -> Dataset:
    """``prompt``/``completion`` for the teacher warm-up; the reasoning trace is the explanation.

    ``prompt + completion`` is the full teacher chat; the completion is the whole
    assistant turn (tagged solution, explanation, close tag, end of turn).
    """
    if "reasoning_trace" not in ds.column_names:
        raise DataError(f"the teacher warm-up needs a reasoning_trace column; the data has {ds.column_names}")

    def render(row: dict[str, Any], index: int) -> dict[str, str]:
        trace = _text(row, "reasoning_trace", index)
        return teacher_sft_example(tokenizer, row["question"], row["solution"], trace, tags, system)

    return ds.map(render, with_indices=True, desc="rendering teacher SFT examples")


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
    allow_empty: bool = False,
) -> Dataset:
    """``prompt``/``completion`` in the student format (distillation).

    A null or empty explanation is refused with its row: a student trained on empty
    thinking learns to skip it. ``allow_empty`` accepts empty and whitespace-only strings
    (kept as written), for a deliberate question → answer baseline (the demo's
    ``no_explanation`` arm) or a teacher's traces taken as they are.
    """
    if explanation_column not in ds.column_names:
        raise DataError(
            f"missing column {explanation_column!r} for the explanation; the data has {ds.column_names}"
        )

    def render(row: dict[str, Any], index: int) -> dict[str, str]:
        expl = row[explanation_column]
        if not (allow_empty and isinstance(expl, str) and not expl.strip()):
            expl = _text(row, explanation_column, index)
        return student_sft_example(
            tokenizer, row["question"], row["solution"], expl, tags, row_system(row, system)
        )

    return ds.map(render, with_indices=True, desc="rendering student examples")


# --------------------------------------------------------------------------- `rlt data preview`


@dataclass
class PreviewArguments:
    """Arguments of `rlt data preview` (besides the data arguments)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer (hub id or local model directory) to render and count tokens with; "
            "None = the tiny character tokenizer of rlt.models."
        },
    )
    num_examples: int = field(default=2, metadata={"help": "Rows to show."})
    teacher_system_prompt: str | None = system_prompt_field("teacher")
    student_system_prompt: str | None = system_prompt_field("student")
    json: bool = field(
        default=False,
        metadata={
            "help": "Print one JSON object per row (JSON Lines, nothing else on stdout): the exact strings "
            "teacher_prompt, teacher_completion, student_prompt, student_completion and their token counts "
            "(*_tokens); null where the row has no reasoning trace."
        },
    )


USAGE = (
    "usage: rlt data preview [--task NAME | --dataset_name ID_OR_FILE] [--config recipe.yaml] [fields ...]"
)

DATA_HELP = f"""{USAGE}

Subcommands of `rlt data`:
  preview   load a data set (hub id, local .json/.jsonl/.parquet/.csv file or folder) or a
            built-in task, map and validate its columns, and print the first rows as the
            teacher RL prompt, the teacher SFT completion and the student example, each
            with its token count (--json true: one JSON object per row, the exact strings).

Examples:
  rlt data preview --task digits
  rlt data preview --dataset_name data/train.jsonl --question_column problem \\
      --solution_column answer --reasoning_trace_column trace
  rlt data preview --config recipes/tiny/teacher_rlt.yaml --model_name_or_path runs/tiny/teacher
  rlt data preview --task digits --chat_format compact --json true > preview.jsonl

`rlt data preview --help` lists every field."""

PREVIEW_DESCRIPTION = (
    "Render the first rows of a data set the way the stages see them: the teacher's RL prompt "
    "(ending with the explanation-open tag), the teacher's SFT completion (the reasoning trace as "
    "the explanation) and the student's distillation example, each with its token count. "
    "With neither --task nor --dataset_name, the built-in digits task is used."
)

VIEWS = ("teacher_prompt", "teacher_completion", "student_prompt", "student_completion")


def _preview_parser() -> Any:
    from trl import TrlParser

    return TrlParser(
        [DataArguments, PreviewArguments], prog="rlt data preview", description=PREVIEW_DESCRIPTION
    )


def _has_trace(row: dict[str, Any]) -> bool:
    trace = row.get("reasoning_trace")
    return isinstance(trace, str) and bool(trace.strip())


def render_views(
    tokenizer: PreTrainedTokenizerBase, row: dict[str, Any], tags: TagSet, args: PreviewArguments
) -> dict[str, str | None]:
    """The exact strings the stages train on for ``row`` (:data:`VIEWS`); None where they need a trace.

    ``teacher_prompt`` is the RL prompt; ``teacher_completion`` the SFT warm-up's completion
    (which continues that prompt); ``student_*`` the distillation example, whose system
    prompt is ``args.student_system_prompt``, else the row's ``system`` column, else the default.
    """
    q, s = row["question"], row["solution"]
    views: dict[str, str | None] = dict.fromkeys(VIEWS)
    views["teacher_prompt"] = teacher_rl_prompt(tokenizer, q, s, tags, args.teacher_system_prompt)
    if _has_trace(row):
        trace = row["reasoning_trace"]
        sft = teacher_sft_example(tokenizer, q, s, trace, tags, args.teacher_system_prompt)
        st = student_sft_example(tokenizer, q, s, trace, tags, row_system(row, args.student_system_prompt))
        views.update(
            teacher_completion=sft["completion"],
            student_prompt=st["prompt"],
            student_completion=st["completion"],
        )
    return views


def _token_count(tokenizer: PreTrainedTokenizerBase, text: str | None) -> int | None:
    return None if text is None else len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _preview_json(
    rows: Dataset, tokenizer: PreTrainedTokenizerBase, tags: TagSet, args: PreviewArguments
) -> None:
    import json

    for i, row in enumerate(rows):
        views = render_views(tokenizer, row, tags, args)
        record: dict[str, Any] = {"row": i, **views}
        record.update({f"{k}_tokens": _token_count(tokenizer, v) for k, v in views.items()})
        print(json.dumps(record, ensure_ascii=False), flush=True)


def _preview_rich(
    rows: Dataset, tokenizer: PreTrainedTokenizerBase, tags: TagSet, args: PreviewArguments, console: Any
) -> None:
    from rich.panel import Panel
    from rich.text import Text

    def panel(text: str, title: str) -> Any:
        # Text, not a str: data may contain "[...]" or ":name:" that rich would read as markup.
        title = f"{title} ({_token_count(tokenizer, text)} tokens)"
        return Panel(Text(text), title=title, title_align="left")

    for i, row in enumerate(rows):
        views = render_views(tokenizer, row, tags, args)
        console.rule(f"row {i}")
        console.print(panel(views["teacher_prompt"], "teacher RL prompt"))
        if views["teacher_completion"] is None:
            console.print(
                Text(
                    "no reasoning trace in this row: the teacher SFT and student examples need one "
                    f"(map it with --reasoning_trace_column; columns: {rows.column_names})"
                )
            )
            continue
        console.print(panel(views["teacher_completion"], "teacher SFT completion"))
        console.print(panel(views["student_prompt"] + views["student_completion"], "student example"))


def preview(data_args: DataArguments, args: PreviewArguments, console: Any = None) -> int:
    """Print the first ``args.num_examples`` rows rendered in the three views; returns the row count.

    ``args.json``: one JSON object per row on stdout (:func:`render_views` and token counts);
    otherwise rich panels on ``console``.
    """
    from rlt.loading import load_tokenizer
    from rlt.models import char_tokenizer

    if args.num_examples < 1:
        raise DataError(f"num_examples: must be >= 1, got {args.num_examples}")
    tokenizer = load_tokenizer(args.model_name_or_path) if args.model_name_or_path else char_tokenizer()
    tags = data_args.tags()
    limit = args.num_examples if data_args.limit is None else min(data_args.limit, args.num_examples)
    rows = load_rows(dataclasses.replace(data_args, limit=limit))
    if args.json:
        _preview_json(rows, tokenizer, tags, args)
        return len(rows)
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    _preview_rich(rows, tokenizer, tags, args, console)
    note = "" if "reasoning_trace" in rows.column_names else ", no reasoning_trace column"
    console.print(
        Text(
            f"{len(rows)} rows shown from {_source_name(data_args)} "
            f"(tag format {tags.name!r}, chat format {tags.chat!r}{note})"
        )
    )
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    """``rlt data preview [--task digits | --dataset_name X] ...``; ``rlt data --help`` lists subcommands."""
    from rlt.config import parse

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(DATA_HELP)
        return 0 if argv else 2
    if argv[0] != "preview":
        print(f"rlt data: unknown subcommand {argv[0]!r}\n\n{DATA_HELP}", file=sys.stderr)
        return 2
    rest = argv[1:]
    if any(a in ("-h", "--help") for a in rest):
        _preview_parser().print_help()
        return 0
    # rlt.config.parse: recipe keys and `--task null` behave as in the training stages.
    data_args, preview_args = parse([DataArguments, PreviewArguments], rest)
    if not data_args.task and not data_args.dataset_name:
        data_args.task = "digits"  # the README's first command: something to look at with no data
    preview(data_args, preview_args)
    return 0
