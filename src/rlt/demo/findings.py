"""The paper's two further findings as opt-in stages of a seed (``rlt demo --findings``).

- **E5, cold start.** The student distilled from the RLT teacher's traces, then its own RL
  with the correctness reward, against the same RL from the base model the distilled
  student started from ("RL from scratch"), at the same RL budget (steps, batch, group).
- **E6, transfer.** The digits teachers (warm-up and RLT) explain Countdown questions they
  never saw; a fresh student is distilled from each teacher's Countdown traces and
  evaluated on held-out Countdown questions.

Each stage reuses the seed's finished models (stages 0-5) and leaves stage markers, so
``--findings`` can be added to a finished run's output and only these stages run.
"""

from __future__ import annotations

from pathlib import Path

from rlt.demo.common import (
    COMPACT,
    SeedRun,
    cached_json,
    common_train_args,
    evaluate_dir,
    sft_args,
    write_jsonl,
)
from rlt.jsonl import read_records
from rlt.tasks import CountdownTask


def student_rl(
    run: SeedRun, model: Path, out_dir: Path, steps: int | None = None, lr: float | None = None
) -> None:
    """``rlt train`` of a student from ``model`` with the correctness reward (E5's RL, every arm).

    ``steps`` defaults to ``e5_rl_steps``, ``lr`` to ``rl_learning_rate``; the questions, samples
    and seed are the same for every arm and every caller (:mod:`rlt.demo.cold_starts` too).
    """
    from rlt import train

    cfg, task = run.cfg, run.task
    train.main([
        "--model_name_or_path", str(model), "--task", "digits", "--task_size", "2000",
        "--task_seed", str(run.base + 7), "--num_ops", str(task.num_ops), "--modulus", str(task.modulus),
        "--policy", "student", "--reward_funcs", "correctness", "--chat_format", "compact",
        "--student_system_prompt", "", "--max_steps", str(cfg.e5_rl_steps if steps is None else steps),
        "--per_device_train_batch_size", "64", "--num_generations", "8", "--temperature", "0.7",
        "--max_completion_length", "48", "--learning_rate", str(cfg.rl_learning_rate if lr is None else lr),
        "--lr_scheduler_type", "constant", "--beta", "0", "--loss_type", "grpo",
        "--gradient_checkpointing", "false", "--logging_steps", "1",
        *common_train_args(out_dir, run.seed),
    ])  # fmt: skip


def e5_cold_start(run: SeedRun) -> dict[str, float]:
    """E5: held-out accuracy after student RL from the RLT-distilled student and from the base model."""
    root, out = run.root, {}
    for arm, start in (("cold_start", root / "student_rlt_teacher"), ("from_scratch", root / "base_model")):
        out_dir = root / f"e5_{arm}"
        run.stage(f"E5 student RL ({arm})", lambda start=start, out_dir=out_dir: student_rl(run, start, out_dir),
                  out_dir)  # fmt: skip
        out[arm] = cached_json(
            root / f"eval_e5_{arm}.json", lambda out_dir=out_dir: evaluate_dir(out_dir, run.rows["eval"])
        )
    return out


def countdown_traces(run: SeedRun, arm: str, teacher: Path, rows: list[dict]) -> Path:
    """The ``arm`` teacher's explanations of Countdown ``rows`` (written once, via a ``.partial`` file)."""
    from rlt import collect
    from rlt.loading import load_model_and_tokenizer

    traces = run.root / f"e6_traces_{arm}.jsonl"
    if not traces.exists():
        model, tok = load_model_and_tokenizer(str(teacher))
        partial = traces.with_suffix(".partial")
        collect.collect_traces(
            model, tok, rows, partial, num_traces=1, temperature=0.7, max_new_tokens=32,
            batch_size=128, seed=run.base, tag_format=COMPACT, system_prompt="", progress=False,
        )  # fmt: skip
        partial.rename(traces)
    return traces


def e6_transfer(run: SeedRun) -> dict[str, float]:
    """E6: Countdown accuracy of students distilled from each digits teacher's zero-shot Countdown traces."""
    from rlt import sft

    cfg, root, countdown = run.cfg, run.root, CountdownTask()
    rows = countdown.generate(cfg.e6_questions, seed=run.base + 9)
    eval_rows = countdown.generate(cfg.e6_eval_questions, seed=run.base + 10)
    out = {}
    for arm, teacher in (("sft_teacher", root / "teacher_sft"), ("rlt_teacher", root / "teacher_rlt")):
        traces = countdown_traces(run, arm, teacher, rows)
        clean = [{"question": r["question"], "solution": r["solution"], "explanation": r["explanation"]}
                 for r in read_records(traces)]  # fmt: skip
        data = write_jsonl(root / f"e6_distill_{arm}.jsonl", clean)
        out_dir = root / f"e6_student_{arm}"
        args = sft_args(
            str(root / "base_model"), data, out_dir, cfg.e6_distill_steps, run.seed, "explanation", 6e-3
        )
        # Countdown questions are long English sentences: a longer context than the digits' 256
        args += [
            "--per_device_train_batch_size",
            "16",
            "--max_length",
            "512",
            "--allow_empty_explanation",
            "true",
        ]
        run.stage(f"E6 distil on Countdown ({arm})", lambda args=args: sft.distill_main(args), out_dir)
        out[arm] = cached_json(
            root / f"eval_e6_{arm}.json",
            lambda out_dir=out_dir: evaluate_dir(out_dir, eval_rows, "countdown", 64),
        )
    return out


def run_findings(run: SeedRun) -> dict[str, dict[str, float]]:
    """E5 and E6 for one seed (``--findings``), as ``{"e5": {arm: accuracy}, "e6": {...}}``."""
    findings = {"e5": e5_cold_start(run), "e6": e6_transfer(run)}
    run.note(f"findings: {findings}")
    return findings
