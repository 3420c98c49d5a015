"""Stages 0-1 of a seed, the set-up: the base model every student starts from, and the frozen student.

0. **Base model.** A tiny model learns single-operation questions (``start 7; +2`` →
   ``7+2=9``): the elementary skill any pretrained LM brings.
1. **Student pre-training.** The base learns to reason on multi-step ``steps`` traces (a
   stand-in for a pretrained reasoning model), then trains on in rounds until it is sound.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlt.demo.common import SeedRun, evaluate_dir, sft_args, write_jsonl
from rlt.tasks import DigitsTask


@dataclass(frozen=True)
class SetUp:
    """The set-up's models and what the frozen student scores by itself, round by round."""

    base_model: Path
    student: Path
    student_accuracy: list[float]


def base_model(run: SeedRun) -> Path:
    """Stage 0: the base model, trained on single-operation questions only.

    Students trained from random weights learn the digit tables and the task at once,
    which made distillation need more than twice the steps.
    """
    from rlt import sft
    from rlt.models import save_tiny_model

    cfg, root = run.cfg, run.root
    init = root / "init_random"
    if not (init / "config.json").exists():
        save_tiny_model(init, cfg.model_size, seed=run.base)
    one_op = DigitsTask(num_ops=1, modulus=cfg.modulus).generate(4000, seed=run.base + 8)
    data = write_jsonl(root / "base.jsonl", [{**r, "explanation": r["reasoning_trace"]} for r in one_op])
    out = root / "base_model"
    args = sft_args(str(init), data, out, cfg.base_steps, run.seed, "explanation")
    run.stage("base model", lambda: sft.distill_main(args), out)
    return out


def pretrained_student(run: SeedRun, base: Path) -> tuple[Path, Path]:
    """Stage 1: the student pre-trained on ``steps`` traces; returns it and its training data."""
    from rlt import sft

    cfg, root = run.cfg, run.root
    rows = [{**r, "explanation": r["reasoning_trace"]} for r in run.rows["pretrain"]]
    data = write_jsonl(root / "pretrain.jsonl", rows)
    student = root / "student"
    args = sft_args(
        str(base), data, student, cfg.pretrain_steps, run.seed, "explanation", cfg.pretrain_learning_rate
    )
    run.stage("student pre-training", lambda: sft.distill_main(args), student)
    return student, data


def train_until_sound(
    run: SeedRun, student: Path, data: Path, check_rows: list[dict[str, Any]]
) -> list[float]:
    """Train the pre-trained student on in rounds until it is sound at the task; its accuracy per round.

    The frozen student is part of the set-up, not of what the demo measures, so it may train
    as long as it needs: a pre-training that stalls on a seed's data order would otherwise
    leave a weak student and weak teachers (they start from it). Stored in
    ``student_accuracy.json``; a resumed run reads it back.
    """
    from rlt import sft

    cfg, log = run.cfg, run.root / "student_accuracy.json"
    if log.exists():
        return json.loads(log.read_text())
    rounds = [evaluate_dir(student, check_rows)]
    while rounds[-1] < cfg.student_min_accuracy and len(rounds) <= cfg.student_extra_rounds:
        more = run.root / "student_more"
        shutil.rmtree(more, ignore_errors=True)
        args = sft_args(
            str(student), data, more, cfg.student_extra_steps, run.seed + len(rounds), "explanation",
            cfg.pretrain_learning_rate,
        )  # fmt: skip
        sft.distill_main(args)
        shutil.rmtree(student)
        more.rename(student)
        (student / ".rlt_stage_done").write_text("")
        rounds.append(evaluate_dir(student, check_rows))
    log.write_text(json.dumps(rounds))
    return rounds


def set_up(run: SeedRun) -> SetUp:
    """Stages 0-1: the base model, then the frozen student, trained until sound."""
    base = base_model(run)
    student, data = pretrained_student(run, base)
    accuracy = train_until_sound(run, student, data, run.task.generate(200, seed=run.base + 11))
    run.note(f"pre-trained student: accuracy {accuracy[-1]:.3f} after {len(accuracy) - 1} extra round(s)")
    return SetUp(base, student, accuracy)
