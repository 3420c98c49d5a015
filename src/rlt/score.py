"""``rlt score``: the RLT reward components of an existing trace set, as resumable JSONL.

Input: a JSON, JSONL, CSV or Parquet file with a question, a solution and an
explanation per row (column names mappable). Output: one JSONL row per input row,
the input fields plus every reward component and a stable ``id`` (the input's ``id``
column if it has one, else the row index). Re-running skips ids already written; a
half-written last line is cut and redone. Under ``accelerate launch`` each process scores
its share into its own shard, merged into ``--output`` in input order (:mod:`rlt.sharding`).

Without ``--teacher`` the KL terms cannot be computed: ``kl_mean``/``kl_max`` are
null and ``reward = r_SS + p``.

Example::

    rlt score --student bespokelabs/Bespoke-Stratos-7B --teacher runs/teacher \\
        --input traces.jsonl --output scored.jsonl --batch_size 8
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rlt.errors import DataError
from rlt.rewards import RLTReward, RLTRewardConfig
from rlt.sharding import (
    barrier,
    check_manifest,
    current_shard,
    merge_shards,
    progress_for,
    shard_batches,
    shard_files,
    shard_path,
    timed,
    written_keys,
)

logger = logging.getLogger(__name__)


@dataclass
class ScoreArguments:
    """Arguments of ``rlt score`` (the reward's own fields follow: ``--student_temperature`` ...)."""

    student: str = field(metadata={"help": "Path or hub id of the frozen student model."})
    input: str = field(metadata={"help": "Traces: a .json, .jsonl, .csv or .parquet file."})
    output: str = field(metadata={"help": "JSONL file to write (appended to; re-runs resume)."})
    teacher: str | None = field(
        default=None, metadata={"help": "The teacher that wrote the explanations; without it KL is null."}
    )
    format: str | None = field(
        default=None, metadata={"help": "Tag set, bespoke or r1 (alias of --tag_format)."}
    )
    batch_size: int = field(default=8, metadata={"help": "Rows per student forward pass."})
    question_column: str = field(default="question", metadata={"help": "Column holding the question."})
    solution_column: str = field(default="solution", metadata={"help": "Column holding the solution."})
    explanation_column: str = field(
        default="explanation", metadata={"help": "Column holding the explanation."}
    )
    closed_column: str = field(
        default="closed",
        metadata={
            "help": "Optional boolean column: whether the explanation was closed (default: all closed)."
        },
    )
    id_column: str = field(
        default="id", metadata={"help": "Column with a stable row id (default: row index)."}
    )
    device: str | None = field(
        default=None, metadata={"help": "Device; default cuda if available, else cpu."}
    )
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32, bfloat16, float16."})


# --------------------------------------------------------------------------- reading rows


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON (list of objects, or JSON lines), JSONL, CSV or Parquet file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    try:
        rows = _read_rows(path)
    except UnicodeDecodeError as err:
        # Without this a bad byte is a traceback; name the file and the byte offset instead.
        raise DataError(f"{path}: not valid UTF-8 text ({err.reason} at byte {err.start})") from err
    if not rows:
        # Otherwise the empty file is reported as "missing columns", which hides the real problem.
        raise DataError(f"{path}: no rows")
    return rows


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        stripped = text.lstrip()
        if suffix == ".json" and stripped.startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from err
        else:
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}: line {n} is not valid JSON ({err.msg})") from err
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        raise DataError(f"{path}: unknown file type {suffix!r}; expected .json, .jsonl, .csv or .parquet")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: expected a list of objects (one per row)")
    return rows


def _text(row: dict[str, Any], column: str, index: int, path: str, allow_empty: bool) -> str:
    value = row.get(column)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # numeric answers in JSON/Parquet
    if not isinstance(value, str):
        raise DataError(f"{path}: row {index}: column {column!r} is {value!r}, expected text")
    if not allow_empty and not value.strip():
        raise DataError(f"{path}: row {index}: column {column!r} is empty")
    return value


def _closed(value: Any, index: int, path: str, column: str) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):  # missing, or an empty CSV cell
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{path}: row {index}: column {column!r} is {value!r}, expected a boolean")


def prepare_rows(
    rows: list[dict[str, Any]], args: ScoreArguments, tags: Any
) -> list[tuple[str, Any, dict[str, Any], str, str, str, bool]]:
    """Validated ``(key, id, row, question, solution, explanation, closed)`` for every input row.

    ``id`` is the row's id column value (or its index); ``key = str(id)`` is what resuming compares.
    """
    path = args.input
    columns = {k for r in rows for k in r}
    missing = [
        c for c in (args.question_column, args.solution_column, args.explanation_column) if c not in columns
    ]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; the file has columns {sorted(columns)} "
            "(map them with --question_column/--solution_column/--explanation_column)"
        )
    out = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        rid_value = row[args.id_column] if row.get(args.id_column) is not None else i
        rid = str(rid_value)
        if rid in seen:
            raise DataError(f"{path}: row {i}: duplicate id {rid!r} in column {args.id_column!r}")
        seen.add(rid)
        q = _text(row, args.question_column, i, path, allow_empty=False)
        s = _text(row, args.solution_column, i, path, allow_empty=False)
        e = _text(row, args.explanation_column, i, path, allow_empty=True)
        closed = _closed(row.get(args.closed_column), i, path, args.closed_column)
        # A stored raw completion may still carry the explanation tags: keep only the explanation.
        if e.startswith(tags.explanation_open):
            e = e[len(tags.explanation_open) :]
        # The student sequence supplies the opening padding (stratos); a data set's padded trace
        # would otherwise stand after it twice.
        if tags.padding and e.startswith(tags.padding):
            e = e[len(tags.padding) :]
        if tags.explanation_close in e:
            e = e.split(tags.explanation_close, 1)[0]
            closed = True
        out.append((rid, rid_value, row, q, s, e, closed))
    return out


# --------------------------------------------------------------------------- main

# Reward settings that change memory or speed, not the numbers: a relaunch may change them
# (a smaller chunk after an out-of-memory error) without being refused.
NOT_IN_MANIFEST = ("chunk_size", "micro_batch_size", "offload_student", "padding_side")


def manifest_settings(args: ScoreArguments, config: RLTRewardConfig) -> dict[str, Any]:
    """What decides a score: a resumed output must have been written with these (:mod:`rlt.sharding`)."""
    reward = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in NOT_IN_MANIFEST}
    return {"student": args.student, "teacher": args.teacher, "dtype": args.dtype, **reward}


def run(args: ScoreArguments, config: RLTRewardConfig) -> dict[str, Any]:
    """Score ``args.input`` into ``args.output``; returns a summary."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rlt.formats import get_tags
    from rlt.jsonl import JsonlAppender, done_ids, read_records
    from rlt.loading import load_model_and_tokenizer

    if args.batch_size <= 0:
        from rlt.errors import ConfigError

        raise ConfigError(f"batch_size: must be > 0, got {args.batch_size}")
    tags = get_tags(config.tag_format, config.chat_format)
    todo = prepare_rows(read_rows(args.input), args, tags)
    shard = current_shard()
    settings = manifest_settings(args, config)
    check_manifest(args.output, settings, shard, write=False)  # before the slow loads; written below
    out_path = shard_path(args.output, shard)
    done = done_ids(out_path)  # also cuts a half-written last line
    if shard.count > 1 or shard_files(args.output):
        done |= written_keys(args.output)  # the merged output and every shard, of any process count
    # One process's batches, dealt out (rlt.sharding): each batch is padded with the same mates.
    mine = shard_batches(todo, args.batch_size, shard)
    batches = [b for b in ([t for t in batch if t[0] not in done] for _, batch in mine) if b]
    pending = [t for batch in batches for t in batch]
    skipped = sum(len(batch) for _, batch in mine) - len(pending)

    # Each process of a launch scores on its own GPU.
    gpu = "cuda" if shard.count == 1 else f"cuda:{shard.local_index}"
    device = args.device or (gpu if torch.cuda.is_available() else "cpu")
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    student, student_tok = load_model_and_tokenizer(args.student, dtype=dtype, device=device)
    teacher = teacher_tok = None
    if args.teacher:
        teacher, teacher_tok = load_model_and_tokenizer(args.teacher, dtype=dtype, device=device)
        teacher.eval()
    elif config.include_teacher_entropy:
        logger.info(
            "rlt score: no --teacher given: the KL terms cannot be computed (kl_mean/kl_max are null, reward = r_SS + p)"
        )
    reward = RLTReward(student, student_tok, config, teacher=teacher, teacher_tokenizer=teacher_tok)

    check_manifest(args.output, settings, shard)
    barrier(shard)  # every process has read what is done before any writes more
    if shard.count == 1:
        logger.info(f"rlt score: {len(todo)} rows in {args.input}, {skipped} already in {args.output}")
        bar = Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        )
    else:  # one bar on the main process, over every shard; the others only log their line
        bar = progress_for(shard, args.output, sum(t[0] not in done for t in todo), "scoring")
    with JsonlAppender(out_path) as out, bar as progress, timed() as seconds:
        task = progress.add_task("score", total=len(pending)) if shard.count == 1 else None
        for batch in batches:
            comps = reward.score_ids(
                [b[3] for b in batch],
                [b[4] for b in batch],
                [student_tok(b[5], add_special_tokens=False)["input_ids"] if b[5] else [] for b in batch],
                [b[6] for b in batch],
                systems=[b[2].get("system") for b in batch],
            )
            out.write([{**b[2], **c, "id": b[1]} for b, c in zip(batch, comps)])
            if task is not None:
                progress.advance(task, len(batch))
    if shard.count > 1:
        logger.info(
            f"rlt score: {shard.label} scored {len(pending)} rows ({skipped} already done) "
            f"into {out_path} in {seconds():.1f}s"
        )
    barrier(shard)  # every share is written
    if not shard.is_main:
        return {"scored": len(pending), "skipped": skipped, "shard": shard.index}
    merged = merge_shards(args.output, [t[0] for t in todo])
    if merged is not None:
        logger.info(f"rlt score: merged {merged} rows into {args.output}")
    written = [r for r in read_records(args.output) if str(r.get("id")) in {t[0] for t in todo}]
    rewards = [r["reward"] for r in written if isinstance(r.get("reward"), (int, float))]
    mean = sum(rewards) / len(rewards) if rewards else math.nan
    summary = {
        "scored": len(pending),
        "skipped": skipped,
        "rows": len(written),
        "mean_reward": mean,
    }
    logger.info(
        f"rlt score: scored {summary['scored']} rows ({summary['skipped']} already done); "
        f"{summary['rows']} rows in {args.output}, mean reward {mean:.4f}"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    from rlt.config import parse

    args, config = parse([ScoreArguments, RLTRewardConfig], argv)
    if args.format is not None:
        config.tag_format = args.format
        config.__post_init__()  # validate the alias like the field itself
    run(args, config)
    return 0
