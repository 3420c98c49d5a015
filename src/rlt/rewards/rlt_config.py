"""The RLT reward's settings (spec §3): :class:`RLTRewardConfig`, its coefficient parsing and validation.

Every field is checked in ``__post_init__`` with a :class:`~rlt.errors.ConfigError` that names
it, so a recipe's bad value fails before any model loads. :func:`parse_coefs` reads the
``(coef, reduction)`` lists in every spelling a recipe or a command line uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlt.errors import ConfigError
from rlt.formats import CHAT_FORMATS, get_tags

SOLUTION_REDUCTIONS = ("mean", "min")
STUDENT_TOKENIZATIONS = ("segments", "canonical")
KL_REDUCTIONS = ("mean", "max")
# The released TeacherKLBasedReward's per-token transforms (``_make_normalize_fn``).
NORMALIZE_FNS = (None, "exp", "exp_norm")

# --------------------------------------------------------------------------- configuration


def parse_coefs(value: Any, field_name: str, allowed: Sequence[str]) -> list[tuple[float, str]]:
    """Normalise coefficient lists as they arrive from Python, YAML or the command line.

    Accepts ``[(1.0, "mean"), ...]``, ``[[1.0, "mean"], ...]`` (YAML), ``["1.0:mean", ...]``
    and the string form ``"1.0:mean,0.01:min"``; on the command line (``TrlParser``):
    ``--solution_coefs 1.0:mean 0.01:min``. Raises :class:`ConfigError` naming ``field_name``.
    """
    if isinstance(value, str):
        items: list[Any] = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            coef, sep, name = part.partition(":")
            if not sep:
                raise ConfigError(f"{field_name}: {part!r} is not of the form COEF:REDUCTION (e.g. 1.0:mean)")
            items.append((coef, name))
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{field_name}: expected a list of (coef, reduction) pairs, got {value!r}")
    out: list[tuple[float, str]] = []
    for item in items:
        if isinstance(item, tuple) and item and all(isinstance(c, str) and len(c) == 1 for c in item):
            # HfArgumentParser turns `--kl_coefs 3:mean` into tuple("3:mean"), one character each.
            item = "".join(item)
        if isinstance(item, str):
            coef, sep, name = item.partition(":")
            if not sep:
                raise ConfigError(f"{field_name}: {item!r} is not of the form COEF:REDUCTION (e.g. 1.0:mean)")
            item = (coef, name)
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ConfigError(f"{field_name}: {item!r} is not a (coef, reduction) pair")
        coef, name = item
        try:
            coef = float(coef)
        except (TypeError, ValueError):
            raise ConfigError(f"{field_name}: coefficient {coef!r} is not a number") from None
        if not math.isfinite(coef):
            raise ConfigError(f"{field_name}: coefficient {coef!r} is not finite")
        name = str(name).strip()
        if name not in allowed:
            raise ConfigError(f"{field_name}: unknown reduction {name!r}; expected one of {list(allowed)}")
        out.append((coef, name))
    return out


@dataclass
class RLTRewardConfig:
    """Settings of the RLT reward. Defaults are the paper's released values (spec §3)."""

    solution_coefs: list[tuple[float, str]] = field(
        default_factory=lambda: [(1.0, "mean"), (0.01, "min")],
        metadata={"help": "r_SS = Σ coef · reduction(ℓ_S over solution tokens); reductions: mean, min."},
    )
    kl_coefs: list[tuple[float, str]] = field(
        default_factory=lambda: [(3.0, "mean"), (0.03, "max")],
        metadata={"help": "r_KL = Σ coef · reduction(ℓ_T − ℓ_S over explanation tokens); mean, max."},
    )
    student_temperature: float = field(
        default=0.7, metadata={"help": "τ_S: the student's logits are divided by it."}
    )
    teacher_temperature: float = field(
        default=0.7, metadata={"help": "τ_T: the teacher's generation temperature, used for ℓ_T."}
    )
    format_penalty: float = field(
        default=-1.0, metadata={"help": "p: added when the close tag is missing or a token set is empty."}
    )
    tag_format: str = field(default="bespoke", metadata={"help": "Tag set: bespoke or r1."})
    chat_format: str = field(
        default="stratos",
        metadata={"help": "Chat style: stratos (the official prompts and tag padding) or compact."},
    )
    student_tokenization: str = field(
        default="segments",
        metadata={
            "help": "segments: the student sequence is prefix ids | the teacher's sampled explanation ids | "
            "suffix ids (k(t) compares both models on the same tokens). canonical: the whole student text "
            "is re-tokenised, as the released code does, and ℓ_T is recomputed on those tokens."
        },
    )
    chunk_size: int = field(
        default=256,
        metadata={
            "help": "Positions per LM-head chunk: the head's extra memory is 2 × chunk_size × vocab × 4 "
            "bytes (256 × 152k: 311 MB), whatever the number of tokens."
        },
    )
    student_system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "Student system prompt; None = the data set's `system` column where it has one, else "
            "the chat format's default (stratos: STRATOS_SYSTEM_PROMPT); '' = none."
        },
    )
    teacher_system_prompt: str | None = field(
        default=None, metadata={"help": "Teacher system prompt; None = rlt.formats default, '' = none."}
    )
    empty_term_value: float | None = field(
        default=1.0,
        metadata={
            "help": "W: an empty token set scores −W for solution statistics and +W for KL statistics "
            "(plus the format penalty). 1 = the released code; None = log(student vocabulary size)."
        },
    )
    micro_batch_size: int | None = field(
        default=None,
        metadata={"help": "Sequences per forward pass; None = the whole batch in one forward."},
    )
    offload_student: bool = field(
        default=False,
        metadata={
            "help": "Keep the student on CPU between calls and move it to the teacher's device for each "
            "call (saves accelerator memory, costs one host-to-device copy per call)."
        },
    )
    padding_side: str = field(
        default="right",
        metadata={"help": "Padding of the batched forward; the numbers do not depend on it."},
    )
    # The released code's other reward options (TeacherKLBasedReward); every default leaves r unchanged.
    use_schulman_kl: bool = field(
        default=False,
        metadata={
            "help": "k(t) = Δ − 1 + exp(−Δ) with Δ = ℓ_T − ℓ_S (Schulman's k3 estimate, ≥ 0) instead of Δ; the "
            "released use_schulman_kl_estimation."
        },
    )
    normalize_log_prob: str | None = field(
        default=None,
        metadata={
            "help": "Per-token transform of ℓ_S on the solution before its reductions: None (identity), exp "
            "(the probability) or exp_norm (1 − exp(−x)); the released normalize_log_prob_fn (its configs: None)."
        },
    )
    normalize_kl: str | None = field(
        default=None,
        metadata={
            "help": "Per-token transform of k(t) before its reductions: None, exp or exp_norm (1 − exp(−k)); the "
            "released normalize_kl_fn (its configs: None)."
        },
    )
    clip_log_prob: float | None = field(
        default=None,
        metadata={
            "help": "c > 0: each (transformed) solution token's value is clamped to ≥ −c before the reductions; "
            "None = no clipping (the released clip_log_prob; its configs: 100000)."
        },
    )
    clip_kl: float | None = field(
        default=None,
        metadata={
            "help": "Each (transformed) k(t) is clamped to ≤ this value before the reductions; None = no "
            "clipping (the released clip_kl; its configs: 100000)."
        },
    )
    include_teacher_entropy: bool = field(
        default=True,
        metadata={
            "help": "False: the KL term scores −ℓ_S(t) alone (the teacher's log-prob left out, so no teacher "
            "forward and no Schulman estimate); the released include_teacher_think_entropy."
        },
    )
    correctness_bonus: float = field(
        default=0.0,
        metadata={
            "help": "Optional and expensive: coef × the fraction of correctness_rollouts answers the frozen "
            "student gets right after reading the explanation (thinking closed), added to r; one student "
            "generation of correctness_rollouts samples per completion. 0 = off (the paper). The released "
            "correct_generation_coeff, which the release left unimplemented."
        },
    )
    correctness_rollouts: int = field(
        default=8, metadata={"help": "Student answers sampled (at τ_S) per completion for correctness_bonus."}
    )
    correctness_max_new_tokens: int = field(
        default=512, metadata={"help": "Longest student answer for correctness_bonus, in tokens."}
    )

    def __post_init__(self) -> None:
        self.solution_coefs = parse_coefs(self.solution_coefs, "solution_coefs", SOLUTION_REDUCTIONS)
        self.kl_coefs = parse_coefs(self.kl_coefs, "kl_coefs", KL_REDUCTIONS)
        for name in ("student_temperature", "teacher_temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name}: must be a finite number > 0, got {value!r}")
        if not math.isfinite(float(self.format_penalty)):
            raise ConfigError(f"format_penalty: must be finite, got {self.format_penalty!r}")
        try:
            get_tags(self.tag_format)
        except ValueError as err:
            raise ConfigError(f"tag_format: {err}") from None
        if self.chat_format not in CHAT_FORMATS:
            raise ConfigError(
                f"chat_format: unknown chat format {self.chat_format!r}; expected one of {list(CHAT_FORMATS)}"
            )
        if self.student_tokenization not in STUDENT_TOKENIZATIONS:
            raise ConfigError(
                f"student_tokenization: expected one of {list(STUDENT_TOKENIZATIONS)}, got {self.student_tokenization!r}"
            )
        if not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ConfigError(f"chunk_size: must be an integer > 0, got {self.chunk_size!r}")
        if self.micro_batch_size is not None and (
            not isinstance(self.micro_batch_size, int) or self.micro_batch_size <= 0
        ):
            raise ConfigError(
                f"micro_batch_size: must be an integer > 0 or None, got {self.micro_batch_size!r}"
            )
        if self.empty_term_value is not None and not math.isfinite(float(self.empty_term_value)):
            raise ConfigError(f"empty_term_value: must be finite or None, got {self.empty_term_value!r}")
        if self.padding_side not in ("left", "right"):
            raise ConfigError(f"padding_side: must be 'left' or 'right', got {self.padding_side!r}")
        for name in ("normalize_log_prob", "normalize_kl"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
                value = None  # the release accepts the string 'none'
            if isinstance(value, str):
                value = value.strip().lower()
            if value not in NORMALIZE_FNS:
                raise ConfigError(
                    f"{name}: expected one of {list(NORMALIZE_FNS)}, got {getattr(self, name)!r}"
                )
            setattr(self, name, value)
        for name in ("clip_log_prob", "clip_kl"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name}: must be a finite number or None, got {value!r}")
            setattr(self, name, float(value))
        if self.clip_log_prob is not None and self.clip_log_prob <= 0:
            raise ConfigError(
                f"clip_log_prob: must be > 0 (values are clamped to >= -clip_log_prob), got {self.clip_log_prob!r}"
            )
        for name in ("use_schulman_kl", "include_teacher_entropy"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        if self.use_schulman_kl and not self.include_teacher_entropy:
            raise ConfigError(
                "use_schulman_kl, include_teacher_entropy: the Schulman estimate needs ℓ_T, which "
                "include_teacher_entropy=false leaves out (the release silently ignores it there); set one of them"
            )
        if not isinstance(self.correctness_bonus, (int, float)) or not math.isfinite(self.correctness_bonus):
            raise ConfigError(f"correctness_bonus: must be a finite number, got {self.correctness_bonus!r}")
        for name in ("correctness_rollouts", "correctness_max_new_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
