"""Stages 4b-5 of a seed, the students: each arm's traces read out, distilled into a fresh base, evaluated.

Per arm (``no_explanation`` first, then each teacher): the frozen student's read-out of the
traces and their rewards (:mod:`rlt.demo.traces`), a fresh copy of the base model trained on
the traces (the same steps for every arm), and that student's held-out accuracy, writing
its own reasoning.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlt.demo.common import COMPACT, SeedRun, sft_args, write_jsonl
from rlt.demo.setup_models import SetUp
from rlt.demo.teachers import Teachers
from rlt.demo.traces import read_out, trace_rewards
from rlt.jsonl import read_records


@dataclass
class Students:
    """What the students and their traces measured, per arm."""

    accuracy: dict[str, float] = field(default_factory=dict)
    trace_read: dict[str, float] = field(default_factory=dict)
    reward_vs_read: list[tuple[float, float]] = field(default_factory=list)
    # every teacher's trace with its reward parts
    traced: list[tuple[dict[str, Any], dict[str, float]]] = field(default_factory=list)
    styles: dict[str, dict[str, int]] = field(default_factory=dict)


def read_traces(
    run: SeedRun, arm: str, rows: list[dict[str, Any]], student: Path, teacher: Path
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """The frozen student's read-out of an arm's traces and each trace's reward parts (cached as JSON).

    The read-out is free of distillation luck: the frozen student is given each trace as its
    thinking and only writes the answer. The rewards are for E4: each trace's RLT reward
    against whether the frozen student, given it, answers right.
    """
    from rlt.loading import load_model_and_tokenizer

    read_path = run.root / f"read_{arm}.json"
    if not read_path.exists() or "correct" not in json.loads(read_path.read_text()):
        frozen, ftok = load_model_and_tokenizer(str(student))
        read_path.write_text(json.dumps(read_out(frozen, ftok, run.task, rows)))
    read = json.loads(read_path.read_text())
    reward_path = run.root / f"rewards_{arm}.json"
    parts = json.loads(reward_path.read_text()) if reward_path.exists() else None
    if not parts or not isinstance(parts[0], dict):  # missing, or an older run's bare rewards
        frozen, ftok = load_model_and_tokenizer(str(student))
        teacher_model, _ = load_model_and_tokenizer(str(teacher))
        parts = trace_rewards(frozen, teacher_model, ftok, rows)
        reward_path.write_text(json.dumps(parts))
    return read, parts


def distil(run: SeedRun, arm: str, data: Path, base_model: Path) -> Path:
    """A fresh copy of the base model trained on ``data``, exactly what the teacher wrote (empty included)."""
    from rlt import sft

    cfg, out_dir = run.cfg, run.root / f"student_{arm}"
    args = sft_args(
        str(base_model), data, out_dir, cfg.distill_steps, run.seed, "explanation", cfg.distill_learning_rate
    )
    args += ["--allow_empty_explanation", "true"]
    run.stage(f"distil ({arm})", lambda: sft.distill_main(args), out_dir)
    return out_dir


def evaluate_student(run: SeedRun, arm: str, model_dir: Path) -> float:
    """The student's held-out accuracy, writing its own reasoning; a resumed run reads ``eval_<arm>.json``."""
    from rlt import evaluate
    from rlt.loading import load_model_and_tokenizer

    eval_path = run.root / f"eval_{arm}.json"
    if eval_path.exists():  # a resumed run does not evaluate a finished student again
        run.report(run.seed, f"evaluate ({arm}) (done before, skipped)")
        return float(json.loads(eval_path.read_text())["accuracy"])
    model, tok = load_model_and_tokenizer(str(model_dir))
    res = run.stage(
        f"evaluate ({arm})",
        lambda: evaluate.evaluate_model(
            model, tok, run.rows["eval"], "digits", num_samples=1, max_new_tokens=48, batch_size=128,
            tag_format=COMPACT, system_prompt="", progress=False,
        ),
    )  # fmt: skip
    eval_path.write_text(json.dumps(res))
    return float(res["accuracy"])


def teach_students(run: SeedRun, setup: SetUp, teachers: Teachers, traces: dict[str, Path]) -> Students:
    """Stages 4b-5 for every arm: read-out and rewards of its traces, distillation, evaluation."""
    out = Students()
    for arm in ("no_explanation", *teachers.arms):
        rows = read_records(traces[arm])
        out.styles[arm] = dict(
            Counter(run.task.classify_style(r["question"], r["explanation"]) for r in rows)
        )
        clean = [{"question": r["question"], "solution": r["solution"], "explanation": r["explanation"]}
                 for r in rows]  # fmt: skip
        data = write_jsonl(run.root / f"distill_{arm}.jsonl", clean)
        if arm != "no_explanation":
            read, parts = read_traces(run, arm, rows, setup.student, teachers.arms[arm])
            out.trace_read[arm] = read["accuracy"]
            out.reward_vs_read += [(p["reward"], float(c)) for p, c in zip(parts, read["correct"])]
            out.traced += list(zip(rows, parts))
        out.accuracy[arm] = evaluate_student(run, arm, distil(run, arm, data, setup.base_model))
        run.note(f"{arm}: accuracy {out.accuracy[arm]:.3f}; trace styles {out.styles[arm]}")
    return out
