"""Stages 2-3 of a seed: the teachers.

2. **Teacher warm-up.** The teacher starts from the pre-trained student's weights (the
   paper's teacher and student share a base), learns to explain in the teacher chat, and is
   SFT-trained on explanations of mixed styles (``steps``, ``leak``, ``wrong``, ``filler``).
   Nothing tells it which style is good.
3. **Teacher RL** with the RLT reward and the frozen student, through ``rlt train``; with
   ``--kl_ablation`` again with the KL coefficients at 0 (the paper's ablation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlt.demo.common import SeedRun, common_train_args, sft_args, write_jsonl


@dataclass(frozen=True)
class Teachers:
    """Each teacher arm's model directory (``sft_teacher``, ``rlt_teacher``, ``rlt_no_kl_teacher``)
    and the RL runs whose logs the results read (``rlt``, ``no_kl``)."""

    arms: dict[str, Path]
    rl_runs: dict[str, Path]


def warm_up(run: SeedRun, student: Path) -> Path:
    """Stage 2: the student taught to explain (``steps``) in the teacher chat, then warmed up on mixed styles.

    The first part stands in for an instruct model that can already write explanations.
    """
    from rlt import sft

    cfg, root, rows = run.cfg, run.root, run.rows["warmup"]
    plain = [{"question": r["question"], "solution": r["solution"], "reasoning_trace": r["reasoning_trace"]}
             for r in rows]  # fmt: skip
    data = write_jsonl(root / "explain.jsonl", plain)
    init = root / "teacher_init"
    args = sft_args(str(student), data, init, cfg.explain_steps, run.seed, "reasoning_trace")
    run.stage("teacher initialisation", lambda: sft.warmup_main(args), init)
    mixed = run.task.mixed_explanations([r["question"] for r in rows], seed=run.base + 3)
    styled = [{"question": r["question"], "solution": r["solution"], "reasoning_trace": e}
              for r, (_, e) in zip(rows, mixed)]  # fmt: skip
    data = write_jsonl(root / "warmup.jsonl", styled)
    warm = root / "teacher_sft"
    args = sft_args(
        str(init), data, warm, cfg.warmup_steps, run.seed, "reasoning_trace", cfg.warmup_learning_rate
    )
    run.stage("teacher warm-up", lambda: sft.warmup_main(args), warm)
    return warm


def rl_teacher(run: SeedRun, teacher: Path, student: Path, out_dir: Path, kl_coefs: str) -> None:
    """``rlt train`` of ``teacher`` with the RLT reward of the frozen ``student``, KL coefficients ``kl_coefs``."""
    from rlt import train

    cfg = run.cfg
    batch = cfg.rl_questions_per_step * cfg.num_generations
    train.main([
        "--model_name_or_path", str(teacher), "--task", "digits", "--task_size", "2000",
        "--task_seed", str(run.base + 6), "--num_ops", str(cfg.num_ops), "--modulus", str(cfg.modulus),
        "--policy", "teacher", "--reward_funcs", "rlt", "--student_model_name_or_path", str(student),
        "--student_dtype", "float32", "--kl_coefs", *kl_coefs.split(","),
        "--teacher_system_prompt", "", "--student_system_prompt", "", "--chat_format", "compact",
        "--rlt_log_completions_steps", "1", "--rlt_log_completions_num", str(batch),
        "--max_steps", str(cfg.rl_steps), "--per_device_train_batch_size", str(batch),
        "--num_generations", str(cfg.num_generations), "--temperature", "0.7",
        "--max_completion_length", "32", "--learning_rate", str(cfg.rl_learning_rate),
        "--lr_scheduler_type", "constant", "--beta", "0.04", "--loss_type", "grpo",
        "--gradient_checkpointing", "false", "--logging_steps", "1",
        *common_train_args(out_dir, run.seed),
    ])  # fmt: skip


def train_teachers(run: SeedRun, student: Path) -> Teachers:
    """Stages 2-3: the warm-up teacher, the RLT teacher and (``--kl_ablation``) the RLT teacher without KL."""
    warm = warm_up(run, student)
    rlt, no_kl = run.root / "teacher_rlt", run.root / "teacher_rlt_no_kl"
    run.stage(
        "teacher RL (RLT reward)", lambda: rl_teacher(run, warm, student, rlt, "3.0:mean,0.03:max"), rlt
    )
    arms, rl_runs = {"sft_teacher": warm, "rlt_teacher": rlt}, {"rlt": rlt}
    if run.cfg.kl_ablation:
        run.stage(
            "teacher RL (no KL term)", lambda: rl_teacher(run, warm, student, no_kl, "0:mean,0:max"), no_kl
        )
        arms["rlt_no_kl_teacher"], rl_runs["no_kl"] = no_kl, no_kl
    return Teachers(arms, rl_runs)
