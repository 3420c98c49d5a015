"""Numerics beyond the reward's own tests: a GRPO group whose rewards are all equal."""

import math

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from rlt.models import tiny_model


class _Recording(GRPOTrainer):
    """Keeps the advantages TRL computed, so the test can look at them directly."""

    seen: list[torch.Tensor] = []

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.seen.append(out["advantages"].detach().clone())
        return out


def test_all_rewards_equal_in_a_group_give_zero_advantages_not_nan(tmp_path):
    # std of a constant group is 0: TRL's (r - mean) / (std + eps) must give 0, never 0/0.
    model, tok = tiny_model("tiny", seed=0)
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, max_completion_length=4,
        max_steps=1, use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1,
        gradient_checkpointing=False, beta=0.0,
    )  # fmt: skip
    data = Dataset.from_dict({"prompt": ["start 1; +2", "start 3; *4"] * 2})

    def constant(completions, **kwargs):
        return [0.5] * len(completions)

    trainer = _Recording(
        model=model, processing_class=tok, reward_funcs=[constant], args=args, train_dataset=data
    )
    trainer.train()
    (adv,) = trainer.seen
    assert torch.equal(adv, torch.zeros_like(adv))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
