"""The demo's paired statistics over seeds: every arm of a seed shares its base, student and data.

:func:`paired` gives per-seed differences, a one-sided sign test, a seeded bootstrap interval
(the same on every machine) and the effect size d_z. A claim holds when every seed agrees (a
tie is not a win); the other figures are reported beside the verdict, they do not decide it.
With every per-seed difference positive, every bootstrap resample's mean is positive too, so the
interval excludes 0 whenever every seed agrees: it adds no condition. With 3 seeds the strongest
one-sided sign test is p = 1/8 = 0.125; 6 seeds reach 1/64 = 0.016.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def mean_curve(curves: list[list[float]]) -> list[float]:
    """The step-wise mean of ``curves``, as long as the shortest."""
    n = min((len(c) for c in curves), default=0)
    return [statistics.fmean(c[i] for c in curves) for i in range(n)]


@dataclass(frozen=True)
class Paired:
    """A paired comparison of two arms over seeds (every arm of a seed shares its base, student, data).

    ``diffs`` are the per-seed differences ``a − b``; ``wins`` how many are > 0; ``sign_p`` the
    one-sided sign-test p-value P(≥ wins of n | no effect) (ties count against the claim);
    ``ci`` the 95 % percentile bootstrap interval of the mean difference (resampling seeds,
    10,000 draws, a fixed generator: the same interval on every machine); ``d_z`` the paired
    effect size mean/sd of the differences (None below two seeds or with sd 0).
    """

    diffs: tuple[float, ...]
    wins: int
    sign_p: float
    ci: tuple[float, float]
    d_z: float | None

    @property
    def mean(self) -> float:
        return statistics.fmean(self.diffs)

    @property
    def held(self) -> bool:
        """The claim a > b holds: every seed agrees (a tie is not a win).

        (The bootstrap interval then excludes 0 as well: every resample is a mean of positive
        differences. It is reported, not tested.)
        """
        return len(self.diffs) > 0 and self.wins == len(self.diffs)

    def short(self) -> str:
        """The paired figure in a few words: ``3/3 seeds, +0.397 (p = 0.125)``."""
        return f"{self.wins}/{len(self.diffs)} seeds, {self.mean:+.3f} (p = {self.sign_p:.3f})"

    def describe(self) -> str:
        dz = "n/a" if self.d_z is None else f"{self.d_z:.2f}"
        return (
            f"{self.wins}/{len(self.diffs)} seeds agree (one-sided sign test p = {self.sign_p:.3f}); "
            f"mean per-seed difference {self.mean:+.3f} (95 % bootstrap CI {self.ci[0]:+.3f} … {self.ci[1]:+.3f}); "
            f"effect size d_z = {dz}"
        )


class Claim(tuple):
    """A claim as ``(claim, held, evidence)``; ``label`` and ``figure`` say it in a few words
    (the terminal's claims table: the claim's short name and its paired figure)."""

    label: str
    figure: str

    def __new__(cls, claim: str, held: bool, evidence: str, *, label: str, figure: str) -> Claim:
        self = super().__new__(cls, (claim, held, evidence))
        self.label, self.figure = label, figure
        return self


RULE = (
    "A claim holds when every seed agrees (a tie is not a win). With 3 seeds the strongest one-sided "
    "sign test is p = 0.125 (`--seeds 6` reaches p = 0.016); the mean difference, its bootstrap "
    "interval and d_z are reported beside the verdict and do not decide it."
)


def paired(a: list[float], b: list[float], draws: int = 10_000) -> Paired:
    """:class:`Paired` statistics of ``a`` against ``b`` (same seeds, same order)."""
    import random
    from math import comb

    diffs = tuple(x - y for x, y in zip(a, b))
    n = len(diffs)
    wins = sum(d > 0 for d in diffs)
    sign_p = sum(comb(n, k) for k in range(wins, n + 1)) / 2**n
    rng = random.Random(0)
    means = sorted(statistics.fmean(rng.choices(diffs, k=n)) for _ in range(draws))
    ci = (means[int(0.025 * draws)], means[int(0.975 * draws) - 1])
    sd = statistics.stdev(diffs) if n > 1 else 0.0
    return Paired(diffs, wins, sign_p, ci, statistics.fmean(diffs) / sd if sd > 0 else None)


def trend(values: list[float]) -> float:
    """Mean of the last quarter minus mean of the first quarter of a series."""
    q = max(1, len(values) // 4)
    return statistics.fmean(values[-q:]) - statistics.fmean(values[:q])
