"""RLTRewardConfig and parse_coefs: what is accepted, and the exact message for what is not.

A config error is read by a person who set one field wrong: the message names the field
and the value. Written to kill the survivors of ``scripts/mutation.sh rlt`` that changed
a condition or a message here (docs/testing.md).
"""

from __future__ import annotations

import re

import pytest

from rlt.errors import ConfigError, RewardError
from rlt.rewards.rlt import RLTRewardConfig, _reduce, kl_tokens, normalize_tokens, parse_coefs


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("1.0:mean,,0.01:min", [(1.0, "mean"), (0.01, "min")]),  # an empty part is skipped, not the end
        (" 2:mean , ", [(2.0, "mean")]),
        ([tuple("3:mean"), tuple("0.5:min")], [(3.0, "mean"), (0.5, "min")]),  # HfArgumentParser
        (["1:mean"], [(1.0, "mean")]),
        ([[2, "min"]], [(2.0, "min")]),
        ([(1, " mean ")], [(1.0, "mean")]),
    ],
)
def test_coefficient_forms(value, want):
    assert parse_coefs(value, "f", ("mean", "min")) == want


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.0", "f: '1.0' is not of the form COEF:REDUCTION (e.g. 1.0:mean)"),
        (["1.0"], "f: '1.0' is not of the form COEF:REDUCTION (e.g. 1.0:mean)"),
        ("1.0:mean:x", "f: unknown reduction 'mean:x'; expected one of ['mean', 'min']"),
        (["2:min:x"], "f: unknown reduction 'min:x'; expected one of ['mean', 'min']"),
        (3.0, "f: expected a list of (coef, reduction) pairs, got 3.0"),
        ([(1.0,)], "f: (1.0,) is not a (coef, reduction) pair"),
        ([1.0], "f: 1.0 is not a (coef, reduction) pair"),
        (["x:mean"], "f: coefficient 'x' is not a number"),
        ([(float("nan"), "mean")], "f: coefficient nan is not finite"),
    ],
)
def test_bad_coefficients_are_named(value, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        parse_coefs(value, "f", ("mean", "min"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"solution_coefs": [(1.0, "max")]},
            "solution_coefs: unknown reduction 'max'; expected one of ['mean', 'min']",
        ),
        ({"kl_coefs": [(1.0, "min")]}, "kl_coefs: unknown reduction 'min'; expected one of ['mean', 'max']"),
        ({"student_temperature": float("inf")}, "student_temperature: must be a finite number > 0, got inf"),
        ({"teacher_temperature": "1"}, "teacher_temperature: must be a finite number > 0, got '1'"),
        ({"format_penalty": float("nan")}, "format_penalty: must be finite, got nan"),
        (
            {"chat_format": "chatml"},
            "chat_format: unknown chat format 'chatml'; expected one of ['stratos', 'compact']",
        ),
        (
            {"student_tokenization": "bytes"},
            "student_tokenization: expected one of ['segments', 'canonical'], got 'bytes'",
        ),
        ({"chunk_size": 2.5}, "chunk_size: must be an integer > 0, got 2.5"),
        ({"micro_batch_size": 0}, "micro_batch_size: must be an integer > 0 or None, got 0"),
        ({"micro_batch_size": "4"}, "micro_batch_size: must be an integer > 0 or None, got '4'"),
        ({"empty_term_value": float("inf")}, "empty_term_value: must be finite or None, got inf"),
        ({"padding_side": "top"}, "padding_side: must be 'left' or 'right', got 'top'"),
        ({"normalize_kl": "log"}, "normalize_kl: expected one of [None, 'exp', 'exp_norm'], got 'log'"),
        ({"clip_kl": True}, "clip_kl: must be a finite number or None, got True"),
        (
            {"clip_log_prob": 0},
            "clip_log_prob: must be > 0 (values are clamped to >= -clip_log_prob), got 0.0",
        ),
        ({"use_schulman_kl": 1}, "use_schulman_kl: must be true or false, got 1"),
        (
            {"use_schulman_kl": True, "include_teacher_entropy": False},
            "use_schulman_kl, include_teacher_entropy: the Schulman estimate needs ℓ_T, which "
            "include_teacher_entropy=false leaves out (the release silently ignores it there); set one of them",
        ),
        ({"correctness_bonus": "0.5"}, "correctness_bonus: must be a finite number, got '0.5'"),
        ({"correctness_rollouts": 0}, "correctness_rollouts: must be an integer >= 1, got 0"),
        (
            {"correctness_max_new_tokens": True},
            "correctness_max_new_tokens: must be an integer >= 1, got True",
        ),
    ],
)
def test_bad_config_fields_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        RLTRewardConfig(**{"chat_format": "compact", **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"micro_batch_size": 1},
        {"micro_batch_size": None},
        {"empty_term_value": None},
        {"empty_term_value": -3.0},
        {"correctness_rollouts": 1, "correctness_max_new_tokens": 1},
        {"student_temperature": 1, "teacher_temperature": 0.25},
    ],
)
def test_edge_values_are_accepted(kwargs):
    config = RLTRewardConfig(chat_format="compact", **kwargs)
    for key, value in kwargs.items():
        assert getattr(config, key) == value


@pytest.mark.parametrize("spelling", ["none", "None", " NULL ", "", None])
def test_no_normalisation_has_every_released_spelling(spelling):
    config = RLTRewardConfig(chat_format="compact", normalize_log_prob=spelling, normalize_kl=spelling)
    assert config.normalize_log_prob is None and config.normalize_kl is None


def test_helpers_name_what_they_do_not_know():
    import torch

    with pytest.raises(ConfigError, match=r"^unknown reduction 'median'$"):
        _reduce(torch.zeros(2), "median")
    with pytest.raises(
        ConfigError, match=re.escape("unknown normalisation 'log'; expected one of [None, 'exp', 'exp_norm']")
    ):
        normalize_tokens(torch.zeros(2), "log")
    with pytest.raises(RewardError, match=r"^the KL term needs the teacher's log-probs$"):
        kl_tokens(None, torch.zeros(2), RLTRewardConfig(chat_format="compact"))
