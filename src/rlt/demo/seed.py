"""One seed of the demo, as its list of stages (:func:`run_seed`), and the numbers it returns."""

from __future__ import annotations

import time
from typing import Any

from rlt.demo.arguments import DemoArguments
from rlt.demo.cold_starts import cold_starts
from rlt.demo.common import Report, SeedRun
from rlt.demo.findings import run_findings
from rlt.demo.kl_work import kl_work
from rlt.demo.setup_models import SetUp, set_up
from rlt.demo.students import Students, teach_students
from rlt.demo.teachers import Teachers, train_teachers
from rlt.demo.traces import collect_all, reward_parts_by_style, style_fractions


def _print_report(seed: int, message: str) -> None:
    print(f"[seed {seed}] {message}")


def run_seed(cfg: DemoArguments, seed: int, report: Report = _print_report) -> dict[str, Any]:
    """Every stage of one seed, in order; finished stages are skipped (see :mod:`rlt.demo.common`)."""
    run = SeedRun.start(cfg, seed, report)
    setup = set_up(run)  # 0-1: the base model; the frozen student, trained until sound
    teachers = train_teachers(run, setup.student)  # 2-3: warm-up teacher, RLT teacher(s)
    traces = collect_all(run, teachers.arms)  # 4a: every teacher explains the distillation questions
    students = teach_students(run, setup, teachers, traces)  # 4b-5: read out, distil, evaluate
    findings = run_findings(run) if cfg.findings else {}  # E5, E6
    if cfg.cold_starts:  # E5 as the paper means it: cold start vs cold start under the same RL
        findings["cold_starts"] = cold_starts(run)
    if cfg.kl_work:  # a frozen student a stated answer persuades; the KL ablation against it
        findings["kl_work"] = kl_work(run)
    return seed_results(run, setup, teachers, students, findings)


def _rl_history(run_dir: Any) -> dict[str, list[float]]:
    """The RLT reward and its two terms per logged RL step, from the trainer's state."""
    import json

    state = json.loads((run_dir / "trainer_state.json").read_text())
    out: dict[str, list[float]] = {"reward": [], "solution_logprob_mean": [], "kl_mean": []}
    for entry in state["log_history"]:
        if "rlt/reward" in entry:
            for key in out:
                out[key].append(float(entry.get(f"rlt/{key}", float("nan"))))
    return out


def seed_results(
    run: SeedRun, setup: SetUp, teachers: Teachers, students: Students, findings: dict[str, Any]
) -> dict[str, Any]:
    """One seed's entry of ``results.json`` (:func:`rlt.demo.results.aggregate` pools the seeds)."""
    from rlt.jsonl import read_records

    rl_runs = teachers.rl_runs
    return {
        "findings": findings,
        "seed": run.seed,
        "accuracy": students.accuracy,
        "trace_read_out": students.trace_read,
        "reward_vs_read_out": students.reward_vs_read,
        "reward_parts_by_style": (
            reward_parts_by_style(run.task, *zip(*students.traced)) if students.traced else {}
        ),
        "trace_styles": students.styles,
        "student_accuracy": setup.student_accuracy,
        "rl": {name: _rl_history(d) for name, d in rl_runs.items()},
        "styles": {
            name: {str(k): v for k, v in style_fractions(read_records(d / "completions.jsonl")).items()}
            for name, d in rl_runs.items()
        },
        "elapsed_s": time.time() - run.started,
    }
