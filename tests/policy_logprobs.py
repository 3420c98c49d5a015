"""A check for the RLT trainer's tests: every ℓ_T the reward is handed equals the policy's own forward."""

from __future__ import annotations

from typing import Any


def check_against_policy_forward(trainer: Any, seen: list[float] | None = None) -> None:
    """Wrap ``trainer.rlt_reward`` so that each ℓ_T handed to it is compared with its own policy forward.

    ℓ_T arrives either with the ids it scores (TRL's sampled log-probs) or through the trainer's
    forward (``teacher_logprobs_fn``); both are asserted equal (1e-4) to the reward's own forward
    with the policy as its teacher. ``seen`` collects each comparison's largest difference, so a
    test can tell that some comparison ran.
    """
    import torch

    reward = trainer.rlt_reward
    score_ids, fn = reward.score_ids, reward.teacher_logprobs_fn

    def own_forward(prompt_ids: Any, explanation_ids: Any) -> Any:
        held = reward.teacher
        reward.teacher = trainer.model  # the policy itself, however the trainer hands ℓ_T over
        try:
            return reward.compute_teacher_logprobs(prompt_ids, explanation_ids)
        finally:
            reward.teacher = held

    def compare(got: Any, want: Any, explanation_ids: Any) -> None:
        for a, b, ids in zip(got, want, explanation_ids):
            torch.testing.assert_close(a[: len(ids)], b, atol=1e-4, rtol=1e-4)
            if seen is not None:
                seen.append(float((a[: len(ids)] - b).abs().max()) if len(ids) else 0.0)

    def checked(questions, solutions, explanation_ids, closed, teacher_logprobs=None, teacher_prompt_ids=None,
                systems=None):  # fmt: skip
        if teacher_logprobs is not None:
            prompt_ids = reward.teacher_prompt_ids(questions, solutions)
            compare(teacher_logprobs, own_forward(prompt_ids, explanation_ids), explanation_ids)
        return score_ids(questions, solutions, explanation_ids, closed, teacher_logprobs, teacher_prompt_ids,
                         systems)  # fmt: skip

    reward.score_ids = checked
    if fn is not None:  # the trainer's own forward, called by the reward on the ids it scores

        def checked_fn(prompt_ids: Any, explanation_ids: Any) -> Any:
            got = fn(prompt_ids, explanation_ids)
            compare(got, own_forward(prompt_ids, explanation_ids), explanation_ids)
            return got

        reward.teacher_logprobs_fn = checked_fn
