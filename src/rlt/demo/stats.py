"""The demo's paired statistics over seeds: every arm of a seed shares its base, student and data.

:func:`paired` gives per-seed differences, a one-sided sign test, a seeded bootstrap interval
(the same on every machine) and the effect size d_z; a claim holds when every seed agrees and
the interval excludes 0 (a tie is not a win).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


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
        """The claim a > b holds: every seed agrees and the interval excludes 0."""
        return self.wins == len(self.diffs) and self.ci[0] > 0

    def describe(self) -> str:
        dz = "n/a" if self.d_z is None else f"{self.d_z:.2f}"
        return (
            f"per-seed difference {self.mean:+.3f} (95 % bootstrap CI {self.ci[0]:+.3f} … {self.ci[1]:+.3f}); "
            f"{self.wins}/{len(self.diffs)} seeds, one-sided sign test p = {self.sign_p:.3f}; effect size d_z = {dz}"
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
