"""E5 as the paper means it (``rlt demo --cold_starts``): cold start against cold start, under the same RL.

The paper's claim is about RL: a student cold-started on the RLT teacher's traces ends its
own RL better than one cold-started on other traces, at the same RL budget. Per seed, each
distilled student of stage 4b-5 (the RLT teacher's, the warm-up teacher's and the
no-explanation student) is the start of the same student RL (:func:`rlt.demo.findings.student_rl`:
correctness reward, the same questions, samples, seed, learning rate and ``cold_start_rl_steps``),
and is evaluated on the seed's held-out questions before (its stage-5 evaluation) and after.

The stage reuses a finished run's students and leaves stage markers, so ``--cold_starts``
can be added to a finished run's output and only these stages run.
"""

from __future__ import annotations

import json

from rlt.demo.common import SeedRun, cached_json, evaluate_dir, guard_settings
from rlt.demo.findings import student_rl

# The cold starts compared, in report order: each is the distilled student ``student_<arm>``.
COLD_START_ARMS = ("rlt_teacher", "sft_teacher", "no_explanation")


def _before(run: SeedRun, arm: str) -> float:
    """The distilled student's held-out accuracy before RL (its stage-5 evaluation file)."""
    return float(json.loads((run.root / f"eval_{arm}.json").read_text())["accuracy"])


def cold_start_rl(run: SeedRun, arm: str) -> dict[str, float]:
    """``arm``'s distilled student, then the student RL: ``{"before": ..., "after": ...}``."""
    start, out_dir = run.root / f"student_{arm}", run.root / f"e5c_{arm}"
    if not (start / ".rlt_stage_done").exists():
        raise FileNotFoundError(f"--cold_starts needs the distilled student {start} (stages 4b-5)")
    run.stage(
        f"E5 student RL after the {arm} cold start",
        lambda: student_rl(
            run, start, out_dir, run.cfg.cold_start_rl_steps, run.cfg.cold_start_learning_rate
        ),
        out_dir,
    )
    after = cached_json(run.root / f"eval_e5c_{arm}.json", lambda: evaluate_dir(out_dir, run.rows["eval"]))
    return {"before": _before(run, arm), "after": float(after)}


def cold_starts(run: SeedRun) -> dict[str, dict[str, float]]:
    """Every cold start's accuracy before and after the same student RL, ``{arm: {before, after}}``."""
    guard_settings(
        run.root,
        "cold_starts",
        {"steps": run.cfg.cold_start_rl_steps, "lr": run.cfg.cold_start_learning_rate},
        ("e5c_*", "eval_e5c_*"),
    )
    out = {arm: cold_start_rl(run, arm) for arm in COLD_START_ARMS}
    run.note("cold starts (before → after RL): " + "; ".join(
        f"{arm} {v['before']:.3f} → {v['after']:.3f}" for arm, v in out.items()
    ))  # fmt: skip
    return out
