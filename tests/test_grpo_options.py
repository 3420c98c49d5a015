"""The GRPO options a TRL user turns, each for 2 steps of `rlt train` with the RLT reward.

The tiny teacher recipe (recipes/tiny/teacher_rlt.yaml) on a random tiny teacher and
student; one option changed per case. Every case checks that the option reached TRL, that
the two steps trained with finite losses and logged the reward, and that every ℓ_T the
reward was handed (the KL term's teacher log-probs) equals the policy's own log-probs of
the sampled ids at that moment: the policy as sampled, whichever path (TRL's
``old_per_token_logps``, TRL's forward, or the reward's) produced them. A TRL upgrade that
breaks one of these options, or hands the reward stale log-probs under one, fails here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from policy_logprobs import check_against_policy_forward

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes/tiny/teacher_rlt.yaml")

# 4 completions a step (2 questions x 2), 12 new tokens at most.
FAST = ["--task_size", "16", "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "2",
        "--max_completion_length", "12", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
        "--rlt_log_completions_steps", "0"]  # fmt: skip

# case id -> (extra flags, {trainer attribute or args field: expected value})
CASES = {
    "loss_grpo": (["--loss_type", "grpo"], {"loss_type": "grpo"}),
    "loss_dapo": (["--loss_type", "dapo"], {"loss_type": "dapo"}),
    "loss_dr_grpo": (["--loss_type", "dr_grpo"], {"loss_type": "dr_grpo"}),
    "loss_bnpo": (["--loss_type", "bnpo"], {"loss_type": "bnpo"}),
    "loss_cispo": (["--loss_type", "cispo"], {"loss_type": "cispo"}),
    "scale_rewards_batch": (["--scale_rewards", "batch"], {"scale_rewards": "batch"}),
    "scale_rewards_none": (["--scale_rewards", "none"], {"scale_rewards": "none"}),
    "num_iterations_2": (["--num_iterations", "2"], {"num_iterations": 2}),
    "steps_per_generation_2": (
        ["--steps_per_generation", "2", "--per_device_train_batch_size", "2"],
        {"args.steps_per_generation": 2},
    ),
    "is_level_sequence": (
        ["--importance_sampling_level", "sequence", "--num_iterations", "2"],
        {"importance_sampling_level": "sequence"},
    ),
    "mask_truncated": (["--mask_truncated_completions", "true"], {"mask_truncated_completions": True}),
    "top_entropy_quantile": (["--top_entropy_quantile", "0.5"], {"top_entropy_quantile": 0.5}),
    "beta_0": (["--beta", "0", "--sync_ref_model", "false"], {"beta": 0.0, "ref_model": None}),
    "gradient_checkpointing": (
        ["--gradient_checkpointing", "true", "--gradient_checkpointing_kwargs", '{"use_reentrant": false}'],
        {"args.gradient_checkpointing": True},
    ),
}


def _attr(trainer, name: str):
    obj = trainer
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("case", list(CASES))
def test_grpo_option_trains_two_steps_with_the_rlt_reward(case, tiny_model_dir, tiny_student_dir, tmp_path):
    from rlt.train import build_trainer, parse_train_args

    extra, expected = CASES[case]
    argv = ["--config", RECIPE, "--model_name_or_path", tiny_model_dir, "--student_model_name_or_path",
            tiny_student_dir, "--output_dir", str(tmp_path / case), *FAST, *extra]  # fmt: skip
    trainer = build_trainer(*parse_train_args(argv))
    for name, value in expected.items():
        assert _attr(trainer, name) == value, name
    compared: list[float] = []
    check_against_policy_forward(trainer, compared)
    trainer.train()
    assert trainer.state.global_step == 2
    history = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in history] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in history)
    # the reward is logged at the steps that generated (one of two when a generation serves two steps)
    rewarded = [h for h in history if "rlt/reward" in h]
    assert rewarded and all(math.isfinite(h["rlt/reward"]) and "rlt/kl_mean" in h for h in rewarded)
    # ℓ_T came from the policy as sampled: handed over (TRL's log-probs, or TRL's forward) and equal
    # to the policy's own forward, or computed by the reward with the policy itself as its teacher
    sources = dict(trainer.rlt_teacher_source_counts)
    assert sum(sources.values()) >= 1 and set(sources) <= {"captured", "trainer", "reward"}
    if set(sources) - {"reward"}:
        assert compared and max(compared) <= 1e-4
    if "reward" in sources:
        assert trainer.rlt_reward.teacher is trainer.model
