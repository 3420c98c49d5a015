"""A miniature where the KL term has work (``rlt demo --kl_work``).

The KL term exists because a student can be talked into an answer by text it would never
have produced itself. The default demo's frozen student is not: a leaked answer gives it a
far worse solution log-prob than correct steps, so the KL term has nothing to prevent.
Per seed, this stage builds one that is, and only then runs the ablation:

1. **The persuaded student.** The frozen student trains on (``kl_work_steps``) a mix of its
   ``steps`` traces and ``leak`` ones (``answer 6``, share ``kl_work_leak_share``): a stated
   answer now sets its solution as surely as correct steps do.
2. **The check.** The same questions explained in every style (``steps``, ``leak``,
   ``wrong``, ``filler``), scored with the warm-up teacher's ℓ_T by the ordinary and by the
   persuaded student, with and without the KL term. Leaking pays without the KL term when
   its no-KL reward is at least correct steps' minus ``kl_work_tolerance``.
3. **Only where it pays**: teacher RL from the warm-up teacher against the persuaded
   student, with the KL term (the paper's coefficients) and without it; each teacher's
   traces of the distillation questions, a student distilled from them (the same steps as
   every other student), its held-out accuracy.

Reuses a finished run's models (stages 0-5) and leaves stage markers, so ``--kl_work`` can
be added to a finished run's output.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from rlt.demo.common import (
    SeedRun,
    cached_json,
    evaluate_dir,
    guard_settings,
    sft_args,
    write_jsonl,
)
from rlt.demo.students import distil, evaluate_student
from rlt.demo.teachers import rl_teacher
from rlt.demo.traces import collect_all, reward_parts_by_style, style_fractions, trace_rewards
from rlt.jsonl import read_records
from rlt.tasks import STYLES

# The two RL arms against the persuaded student: the paper's KL coefficients, and none.
KL_WORK_ARMS = {"with_kl": "3.0:mean,0.03:max", "no_kl": "0:mean,0:max"}
PARTS = ("reward", "reward_no_kl", "solution_logprob_mean", "kl_mean")
CHECK_QUESTIONS = 200
# What the stage writes, removed when its settings change (:func:`rlt.demo.common.guard_settings`).
ARM_OUTPUTS = ("*_kl_work_*", "kl_work_warmup.jsonl", "kl_work_arms_settings.json")
OUTPUTS = ("student_persuaded", "eval_student_persuaded.json", "kl_work_pretrain.jsonl", "kl_work_parts.json",
           *ARM_OUTPUTS)  # fmt: skip


def persuaded_student(run: SeedRun, student: Path) -> Path:
    """Stage 1: the frozen student trained on a mix of its ``steps`` traces and ``leak`` traces."""
    from rlt import sft

    cfg, root, rng = run.cfg, run.root, random.Random(run.base + 12)
    rows = []
    for r in run.rows["pretrain"]:
        leak = rng.random() < cfg.kl_work_leak_share
        explanation = run.task.explanation(r["question"], "leak", rng) if leak else r["reasoning_trace"]
        rows.append({"question": r["question"], "solution": r["solution"], "explanation": explanation})
    data = write_jsonl(root / "kl_work_pretrain.jsonl", rows)
    out = root / "student_persuaded"
    args = sft_args(
        str(student), data, out, cfg.kl_work_steps, run.seed, "explanation", cfg.pretrain_learning_rate
    )
    run.stage("KL miniature: the persuaded student", lambda: sft.distill_main(args), out)
    return out


def styled_rows(run: SeedRun) -> list[dict[str, Any]]:
    """``CHECK_QUESTIONS`` distillation questions, each explained in every style (one row per style)."""
    rng = random.Random(run.base + 13)
    return [
        {"question": r["question"], "solution": r["solution"], "explanation": run.task.explanation(r["question"], s, rng)}
        for r in run.rows["distill"][:CHECK_QUESTIONS]
        for s in STYLES
    ]  # fmt: skip


def score_styles(student: Path, teacher: Path, task: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The reward's parts per style of ``rows`` under ``student`` (ℓ_T of ``teacher``), with and without KL."""
    from rlt.loading import load_model_and_tokenizer

    frozen, tok = load_model_and_tokenizer(str(student))
    teacher_model, _ = load_model_and_tokenizer(str(teacher))
    with_kl = trace_rewards(frozen, teacher_model, tok, rows)
    no_kl = trace_rewards(frozen, teacher_model, tok, rows, kl_coefs=[(0.0, "mean")])
    parts = [{**a, "reward_no_kl": b["reward"]} for a, b in zip(with_kl, no_kl)]
    return reward_parts_by_style(task, rows, parts, PARTS)


def leak_pays(parts: dict[str, dict[str, float]], tolerance: float) -> bool:
    """Whether the reward without the KL term pays a leaked answer as much as correct steps (± ``tolerance``)."""
    if "leak" not in parts or "steps" not in parts:
        return False
    return parts["leak"]["reward_no_kl"] >= parts["steps"]["reward_no_kl"] - tolerance


def check(run: SeedRun, persuaded: Path) -> dict[str, Any]:
    """Stage 2: both students' reward parts by style, the persuaded student's own accuracy, the verdict."""
    root, teacher, rows = run.root, run.root / "teacher_sft", styled_rows(run)
    parts = cached_json(root / "kl_work_parts.json", lambda: {
        name: score_styles(student, teacher, run.task, rows)
        for name, student in (("ordinary", root / "student"), ("persuaded", persuaded))
    })  # fmt: skip
    accuracy = cached_json(
        root / "eval_student_persuaded.json",
        lambda: evaluate_dir(persuaded, run.task.generate(200, seed=run.base + 11)),
    )
    pays = leak_pays(parts[run.cfg.kl_work_student], run.cfg.kl_work_tolerance)
    return {"parts": parts, "persuaded_accuracy": float(accuracy), "leak_pays": pays}


def ablation_arm(run: SeedRun, arm: str, teacher: Path, traces: Path) -> dict[str, Any]:
    """Stage 3 for one RL arm: its traces' styles, its student's accuracy, its RL run's leak share per step."""
    rows = read_records(traces)
    clean = [{"question": r["question"], "solution": r["solution"], "explanation": r["explanation"]}
             for r in rows]  # fmt: skip
    name = f"kl_work_{arm}"
    data = write_jsonl(run.root / f"distill_{name}.jsonl", clean)
    accuracy = evaluate_student(run, name, distil(run, name, data, run.root / "base_model"))
    styles = Counter(run.task.classify_style(r["question"], r["explanation"]) for r in rows)
    curve = style_fractions(read_records(teacher / "completions.jsonl"))
    return {
        "accuracy": accuracy,
        "trace_styles": dict(styles),
        "leak_share": styles["leak"] / max(1, len(rows)),
        "rl_leak": [frac["leak"] for _, frac in sorted(curve.items())],
    }


def leaky_teacher(run: SeedRun) -> Path:
    """The RL arms' start: the run's warm-up teacher, or one warmed up on ``steps`` and ``leak`` only.

    With ``kl_work_teacher_leak_share`` > 0 the teacher initialisation is warmed up as the run's
    warm-up teacher (same steps, learning rate, questions) on a ``steps``/``leak`` mix, so a
    drift to leaking has leaks to start from.
    """
    from rlt import sft

    cfg, root = run.cfg, run.root
    share = cfg.kl_work_teacher_leak_share
    if share <= 0:
        return root / "teacher_sft"
    rng = random.Random(run.base + 14)
    rows = [
        {"question": r["question"], "solution": r["solution"],
         "reasoning_trace": run.task.explanation(r["question"], "leak" if rng.random() < share else "steps", rng)}
        for r in run.rows["warmup"]
    ]  # fmt: skip
    data = write_jsonl(root / "kl_work_warmup.jsonl", rows)
    out = root / "teacher_kl_work_leaky"
    args = sft_args(
        str(root / "teacher_init"),
        data,
        out,
        cfg.warmup_steps,
        run.seed,
        "reasoning_trace",
        cfg.warmup_learning_rate,
    )
    run.stage("KL miniature: the leak-prone teacher's warm-up", lambda: sft.warmup_main(args), out)
    return out


def ablation(run: SeedRun, student: Path) -> dict[str, dict[str, Any]]:
    """Stage 3: teacher RL against ``student`` with and without the KL term, traces, students."""
    warm, teachers = leaky_teacher(run), {}
    for arm, coefs in KL_WORK_ARMS.items():
        out = run.root / f"teacher_kl_work_{arm}"
        run.stage(
            f"KL miniature: teacher RL ({arm})",
            lambda out=out, coefs=coefs: rl_teacher(run, warm, student, out, coefs),
            out,
        )
        teachers[f"kl_work_{arm}"] = out
    traces = collect_all(run, teachers)
    return {arm: ablation_arm(run, arm, teachers[f"kl_work_{arm}"], traces[f"kl_work_{arm}"])
            for arm in KL_WORK_ARMS}  # fmt: skip


def kl_work(run: SeedRun) -> dict[str, Any]:
    """The KL miniature for one seed: the check, then (only where leaking pays without KL) the ablation."""
    cfg = run.cfg
    cfg.validate()
    guard_settings(
        run.root, "kl_work", {"leak_share": cfg.kl_work_leak_share, "steps": cfg.kl_work_steps}, OUTPUTS
    )
    arm_settings = {"student": cfg.kl_work_student, "teacher_leak_share": cfg.kl_work_teacher_leak_share}
    guard_settings(run.root, "kl_work_arms", arm_settings, ARM_OUTPUTS)
    persuaded = persuaded_student(run, run.root / "student")
    out = {**check(run, persuaded), "student": cfg.kl_work_student}
    parts = out["parts"][cfg.kl_work_student]
    leak, steps = (parts.get(s, {}).get("reward_no_kl") for s in ("leak", "steps"))
    run.note(
        f"KL miniature: no-KL reward of a leak {leak} vs correct steps {steps}; pays: {out['leak_pays']}"
    )
    if out["leak_pays"]:
        out["arms"] = ablation(run, persuaded if cfg.kl_work_student == "persuaded" else run.root / "student")
        run.note("KL miniature: " + "; ".join(
            f"{arm} leak share {v['leak_share']:.2f}, student {v['accuracy']:.3f}" for arm, v in out["arms"].items()
        ))  # fmt: skip
    return out
