"""``rlt score``: the RLT reward components of an existing trace set, as resumable JSONL.

Input: a JSON, JSONL, CSV or Parquet file with a question, a solution and an
explanation per row (column names mappable). Output: one JSONL row per input row,
the input fields plus every reward component and a stable ``id`` (the input's ``id``
column if it has one, else the row index). Re-running skips ids already written; a
half-written last line is cut and redone. Under ``accelerate launch`` each process scores
its share on its own device, merged into ``--output`` in input order (:mod:`rlt.runner`).

Without ``--teacher`` the KL terms cannot be computed: ``kl_mean``/``kl_max`` are
null and ``reward = r_SS + p``.

Example::

    rlt score --student bespokelabs/Bespoke-Stratos-7B --teacher runs/teacher \\
        --input traces.jsonl --output scored.jsonl --batch_size 8
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError, DataError
from rlt.rewards import RLTReward, RLTRewardConfig
from rlt.runner import Batch, Job

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
    """Rows of a JSON (a list of objects, or JSON lines), JSONL, CSV or Parquet file, read by
    ``datasets`` as every other command reads a local data set (:func:`rlt.data.load_raw`)."""
    from rlt.data import DataArguments, load_raw

    if not Path(path).exists():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    rows = load_raw(DataArguments(dataset_name=str(path))).to_list()
    if not rows:
        raise DataError(f"{path}: no rows")
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


ScoreRow = tuple[str, Any, dict[str, Any], str, str, str, bool]


def prepare_rows(rows: list[dict[str, Any]], args: ScoreArguments, tags: Any) -> list[ScoreRow]:
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
    """Score ``args.input`` into ``args.output`` (on :mod:`rlt.runner`); returns a summary."""
    import torch

    from rlt.formats import get_tags
    from rlt.loading import load_model_and_tokenizer

    if args.batch_size <= 0:
        raise ConfigError(f"batch_size: must be > 0, got {args.batch_size}")
    tags = get_tags(config.tag_format, config.chat_format)
    todo = prepare_rows(read_rows(args.input), args, tags)
    with Job("score", args.output, manifest_settings(args, config), noun="rows") as job:
        device = args.device or job.device
        dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
        student, student_tok = load_model_and_tokenizer(args.student, dtype=dtype, device=device)
        teacher = teacher_tok = None
        if args.teacher:
            teacher, teacher_tok = load_model_and_tokenizer(args.teacher, dtype=dtype, device=device)
            teacher.eval()
        elif config.include_teacher_entropy:
            logger.info(
                "score: no --teacher given: the KL terms cannot be computed (kl_mean/kl_max are null, "
                "reward = r_SS + p)"
            )
        reward = RLTReward(student, student_tok, config, teacher=teacher, teacher_tokenizer=teacher_tok)

        def work(batch: Batch[ScoreRow]) -> list[dict[str, Any]]:
            comps = reward.score_ids(
                [b[3] for b in batch.items],
                [b[4] for b in batch.items],
                [
                    student_tok(b[5], add_special_tokens=False)["input_ids"] if b[5] else []
                    for b in batch.items
                ],
                [b[6] for b in batch.items],
                systems=[b[2].get("system") for b in batch.items],
            )
            return [{**b[2], **c, "id": b[1]} for b, c in zip(batch.items, comps)]

        written = job.run(todo, [t[0] for t in todo], args.batch_size, work)
    summary: dict[str, Any] = {"scored": job.written, "skipped": job.skipped}
    if written is None:
        return summary  # not the main process: its share is written, the main one reports
    rewards = [r["reward"] for r in written if isinstance(r.get("reward"), (int, float))]
    mean = sum(rewards) / len(rewards) if rewards else math.nan
    summary.update(rows=len(written), mean_reward=mean)
    logger.info(f"score: {len(written)} rows in {args.output}, mean reward {mean:.4f}")
    return summary


def main(argv: list[str] | None = None) -> int:
    from rlt.config import parse

    args, config = parse([ScoreArguments, RLTRewardConfig], argv)
    if args.format is not None:
        config.tag_format = args.format
        config.__post_init__()  # validate the alias like the field itself
    run(args, config)
    return 0
