"""The 7B cold-start student-RL recipe parses with `rlt train`'s parser (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cold_start_recipe_parses():
    from rlt.train import parse_train_args

    argv = ["--config", str(ROOT / "recipes/qwen2.5-7b/student_rl_cold_start.yaml"), "--use_cpu", "true",
            "--bf16", "false"]  # fmt: skip
    model, data, grpo, train, _reward = parse_train_args(argv)
    assert model.model_name_or_path == "runs/qwen2.5-7b/student_distill"
    assert train.policy == "student" and train.reward_funcs == ["correctness", "format"]
    assert (data.question_column, data.solution_column, data.chat_format) == ("problem", "answer", "stratos")
    assert grpo.num_generations == 16 and grpo.beta == 0.0 and grpo.loss_type == "grpo"
    # 1 x 8 GPUs x 32 = 256 completions per step: whole groups of 16.
    assert grpo.per_device_train_batch_size * 8 * grpo.gradient_accumulation_steps % grpo.num_generations == 0


def test_cold_start_recipe_on_countdown_overrides_parse():
    """The docs' direct-RL-on-Countdown baseline: the same recipe on the built-in task."""
    from rlt.data import load_rows
    from rlt.train import parse_train_args

    argv = ["--config", str(ROOT / "recipes/qwen2.5-7b/student_rl_cold_start.yaml"), "--use_cpu", "true",
            "--bf16", "false", "--model_name_or_path", "Qwen/Qwen2.5-7B-Instruct", "--dataset_name", "null",
            "--task", "countdown", "--task_size", "4", "--question_column", "question",
            "--solution_column", "solution"]  # fmt: skip
    _model, data, _grpo, _train, _reward = parse_train_args(argv)
    rows = load_rows(data).to_list()
    assert len(rows) == 4 and "Using the numbers" in rows[0]["question"]
