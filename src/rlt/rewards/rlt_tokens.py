"""The RLT reward's token arithmetic (spec §3): per-token KL and solution values, normalised, clipped, reduced.

Pure functions of log-prob tensors and a :class:`~rlt.rewards.rlt_config.RLTRewardConfig`;
no model runs here (:mod:`rlt.rewards.rlt` places and calls the models).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlt.errors import ConfigError, RewardError
from rlt.rewards.rlt_config import NORMALIZE_FNS, RLTRewardConfig


def _reduce(values: torch.Tensor, name: str) -> float:
    if name == "mean":
        return float(values.double().mean())
    if name == "min":
        return float(values.min())
    if name == "max":
        return float(values.max())
    raise ConfigError(f"unknown reduction {name!r}")


def _weighted(stats: dict[str, float], coefs: Sequence[tuple[float, str]]) -> float:
    return float(sum(c * stats[name] for c, name in coefs))


def normalize_tokens(
    values: torch.Tensor, fn: str | None, clip_min: float | None = None, clip_max: float | None = None
) -> torch.Tensor:
    """The released ``_make_normalize_fn`` (temperature 1): transform each token, then clamp.

    ``None``: ``x``; ``exp``: ``exp(x)``; ``exp_norm``: ``1 − exp(−x)``; then ``x ≥ clip_min``
    and ``x ≤ clip_max`` where given. Clipping applies to the *transformed* values, as there.
    """
    if fn == "exp":
        values = torch.exp(values)
    elif fn == "exp_norm":
        values = 1 - torch.exp(-values)
    elif fn is not None:
        raise ConfigError(f"unknown normalisation {fn!r}; expected one of {list(NORMALIZE_FNS)}")
    if clip_min is not None:
        values = torch.clamp(values, min=clip_min)
    if clip_max is not None:
        values = torch.clamp(values, max=clip_max)
    return values


def kl_tokens(teacher: torch.Tensor | None, student: torch.Tensor, config: RLTRewardConfig) -> torch.Tensor:
    """Per-token KL term on the explanation, before its reductions (spec §3 and the release's options).

    ``k = ℓ_T − ℓ_S`` (Schulman's ``k − 1 + exp(−k)`` with ``use_schulman_kl``), or ``−ℓ_S``
    without the teacher's term (``include_teacher_entropy=False``); then ``normalize_kl``
    and ``clip_kl``.
    """
    if config.include_teacher_entropy:
        if teacher is None:
            raise RewardError("the KL term needs the teacher's log-probs")
        k = teacher - student
        if config.use_schulman_kl:
            k = k - 1 + torch.exp(-k)
    else:
        k = -student
    return normalize_tokens(k, config.normalize_kl, clip_max=config.clip_kl)


def solution_tokens(student: torch.Tensor, config: RLTRewardConfig) -> torch.Tensor:
    """Per-token solution values before the reductions: ``ℓ_S``, ``normalize_log_prob``, ``clip_log_prob``."""
    clip = None if config.clip_log_prob is None else -config.clip_log_prob
    return normalize_tokens(student, config.normalize_log_prob, clip_min=clip)
