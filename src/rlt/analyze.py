"""`rlt analyze`: how a trace set's RLT reward relates to student outcomes, per question.

Inputs: a scored trace set (``rlt score`` or ``rlt collect --score_with`` output: rows with
``question`` and ``reward``, or the component named by ``--reward_key``) and per-question
student outcomes (``rlt eval``'s ``samples.jsonl``, or its directory: rows with ``question``
and ``correct``). They are joined on the question text: a question's reward is the mean
over its traces, its outcome the mean of ``correct`` over its samples; questions found
in only one file are counted and left out.

Output: the table of reward bins (quartiles by default: the questions sorted by reward,
split into ``bins`` groups of sizes differing by at most one) against the mean outcome,
and the Pearson and Spearman (Pearson of average ranks) correlations, printed and written
to ``out_dir`` as ``summary.json``, ``table.md`` and ``reward_vs_outcome.png``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- statistics


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None when fewer than 2 points or either variable is constant."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"{n} x values but {len(y)} y values")
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the average ranks (ties handled as scipy does)."""
    return pearson(average_ranks(x), average_ranks(y))


def reward_bins(pairs: Sequence[tuple[float, float]], bins: int = 4) -> list[dict[str, Any]]:
    """``(reward, outcome)`` pairs sorted by reward, split into ``bins`` consecutive groups.

    Group sizes differ by at most one, the larger ones first (``numpy.array_split``); each
    group: ``bin`` (1 = lowest rewards), ``n``, ``reward_min``, ``reward_max``,
    ``reward_mean``, ``outcome_mean``.
    """
    ordered = sorted(pairs, key=lambda p: p[0])
    n = len(ordered)
    k = min(bins, n)
    out = []
    start = 0
    for b in range(k):
        size = n // k + (1 if b < n % k else 0)
        group = ordered[start : start + size]
        start += size
        rewards = [r for r, _ in group]
        out.append(
            {
                "bin": b + 1,
                "n": len(group),
                "reward_min": min(rewards),
                "reward_max": max(rewards),
                "reward_mean": sum(rewards) / len(group),
                "outcome_mean": sum(o for _, o in group) / len(group),
            }
        )
    return out


# --------------------------------------------------------------------------- inputs


def _read_jsonl(path: str | Path, what: str) -> list[dict[str, Any]]:
    """The records of ``path`` (a directory: its ``samples.jsonl``), errors naming ``what`` it is.

    :func:`rlt.jsonl.read_records` reads them; a finished file's last line without a newline is
    a record here too (``read_records`` takes it for a write cut short and leaves it out).
    """
    from rlt.jsonl import read_records

    p = Path(path)
    if p.is_dir():
        p = p / "samples.jsonl"
    if not p.exists():
        raise DataError(f"{what}: {p} does not exist")
    try:
        rows = read_records(p)
        tail = p.read_bytes().rsplit(b"\n", 1)[-1].strip()
        if tail:
            rows.append(json.loads(tail))
    except DataError as err:
        raise DataError(f"{what}: {err}") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{what}: {p}: the last line is not valid JSON ({err.msg})") from None
    return rows


def per_question(rows: Sequence[dict[str, Any]], key: str, what: str) -> tuple[dict[str, float], int]:
    """``{question: mean of row[key]}`` over rows that have a number there; and how many rows were used."""
    sums: dict[str, list[float]] = defaultdict(list)
    used = 0
    for i, row in enumerate(rows):
        if "question" not in row:
            raise DataError(f"{what}: row {i} has no 'question' (columns: {sorted(row)})")
        value = row.get(key)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        sums[str(row["question"])].append(float(value))
        used += 1
    if rows and not used:
        raise DataError(f"{what}: no row has a number in {key!r} (columns: {sorted(rows[0])})")
    return {q: sum(v) / len(v) for q, v in sums.items()}, used


# --------------------------------------------------------------------------- the command


@dataclass
class AnalyzeArguments:
    """Arguments of `rlt analyze`."""

    traces: str = field(
        metadata={
            "help": "Scored traces: `rlt score` (or `rlt collect --score_with`) JSONL with question, reward."
        }
    )
    outcomes: str = field(
        metadata={
            "help": "Student outcomes: `rlt eval`'s samples.jsonl (or its --out directory): question, correct."
        }
    )
    out_dir: str = field(
        default="analyze_out", metadata={"help": "Where summary.json, table.md and the plot go."}
    )
    reward_key: str = field(
        default="reward",
        metadata={
            "help": "The trace column to relate to the outcome (reward, or a component such as kl_mean)."
        },
    )
    outcome_key: str = field(default="correct", metadata={"help": "The outcome column of the samples."})
    bins: int = field(default=4, metadata={"help": "Reward bins of the table (4 = quartiles)."})


def analyze(args: AnalyzeArguments) -> dict[str, Any]:
    """Join, bin, correlate; write ``summary.json``, ``table.md`` and the plot; return the summary."""
    if args.bins < 1:
        raise ConfigError(f"bins: must be >= 1, got {args.bins}")
    traces = _read_jsonl(args.traces, "traces")
    samples = _read_jsonl(args.outcomes, "outcomes")
    rewards, n_traces = per_question(traces, args.reward_key, "traces")
    outcomes, n_samples = per_question(samples, args.outcome_key, "outcomes")
    questions = sorted(set(rewards) & set(outcomes))
    if len(questions) < 2:
        raise DataError(
            f"only {len(questions)} question(s) appear in both {args.traces} ({len(rewards)} questions) and "
            f"{args.outcomes} ({len(outcomes)} questions); the files are joined on the question text"
        )
    pairs = [(rewards[q], outcomes[q]) for q in questions]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    summary = {
        "traces": str(args.traces),
        "outcomes": str(args.outcomes),
        "reward_key": args.reward_key,
        "outcome_key": args.outcome_key,
        "num_questions": len(questions),
        "num_traces": n_traces,
        "num_samples": n_samples,
        "questions_only_in_traces": len(set(rewards) - set(outcomes)),
        "questions_only_in_outcomes": len(set(outcomes) - set(rewards)),
        "pearson": pearson(xs, ys),
        "spearman": spearman(xs, ys),
        "bins": reward_bins(pairs, args.bins),
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    table = format_table(summary)
    (out / "table.md").write_text(table + "\n")
    plot(pairs, summary, out / "reward_vs_outcome.png")
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def format_table(summary: dict[str, Any]) -> str:
    """The bins table and the correlations, as markdown."""
    key, okey = summary["reward_key"], summary["outcome_key"]
    lines = [
        f"| {key} bin | questions | {key} range | mean {key} | mean {okey} |",
        "| --- | --- | --- | --- | --- |",
    ]
    for b in summary["bins"]:
        lines.append(
            f"| {b['bin']} | {b['n']} | {b['reward_min']:.3f} … {b['reward_max']:.3f} | "
            f"{b['reward_mean']:.3f} | {b['outcome_mean']:.3f} |"
        )
    lines += [
        "",
        f"{summary['num_questions']} questions in both files ({summary['questions_only_in_traces']} only in the "
        f"traces, {summary['questions_only_in_outcomes']} only in the outcomes); "
        f"Pearson {_fmt(summary['pearson'])}, Spearman {_fmt(summary['spearman'])}",
    ]
    return "\n".join(lines)


def plot(pairs: Sequence[tuple[float, float]], summary: dict[str, Any], path: Path) -> None:
    """Per-question scatter of reward vs outcome, with each bin's means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.scatter([p[0] for p in pairs], [p[1] for p in pairs], s=12, alpha=0.5, label="questions")
        bins = summary["bins"]
        ax.plot(
            [b["reward_mean"] for b in bins],
            [b["outcome_mean"] for b in bins],
            "o-",
            color="C3",
            label="bin means",
        )
        ax.set_xlabel(f"mean {summary['reward_key']} of the question's traces")
        ax.set_ylabel(f"mean {summary['outcome_key']}")
        ax.set_title(f"Pearson {_fmt(summary['pearson'])}, Spearman {_fmt(summary['spearman'])}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """`rlt analyze`: print the reward-bin table and the correlations; write them to ``out_dir``."""
    from rlt.config import parse

    (args,) = parse([AnalyzeArguments], argv)
    summary = analyze(args)
    print(format_table(summary))
    logger.info(f"analyze: wrote summary.json, table.md and reward_vs_outcome.png to {args.out_dir}")
    return 0


__all__ = [
    "AnalyzeArguments",
    "analyze",
    "average_ranks",
    "format_table",
    "main",
    "pearson",
    "per_question",
    "reward_bins",
    "spearman",
]
