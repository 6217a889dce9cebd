"""The statistics of a paired evaluation: Mean@K, Pass@K and a paired bootstrap interval of a difference.

Pure functions over rewards, seeded: the same inputs with the same seed always give the same interval. Resampling
runs in numpy blocks (1000 problems x 2000 resamples in milliseconds), so a server's event loop is not held up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["better", "worse", "inconclusive"]
"""How one arm compares with another: the whole 95% interval of the difference above zero, below it, or neither."""

BOOTSTRAP_METHOD = "paired bootstrap over problems (percentile interval)"
"""How intervals are computed, as reports state it."""


def mean_at_k(rewards: Sequence[Sequence[float]]) -> float:
    """Mean reward over every sample of every problem (0 when there are none)."""
    every = [reward for samples in rewards for reward in samples]
    return sum(every) / len(every) if every else 0.0


def pass_at_k(rewards: Sequence[Sequence[float]]) -> float:
    """Share of problems with at least one sample scoring 1 (0 when there are no problems)."""
    if not rewards:
        return 0.0
    return sum(1 for samples in rewards if any(reward >= 1.0 for reward in samples)) / len(rewards)


def problem_mean(samples: Sequence[float]) -> float:
    """Mean reward of one problem's samples."""
    return sum(samples) / len(samples) if samples else 0.0


def problem_pass(samples: Sequence[float]) -> float:
    """1.0 when one of the problem's samples scored 1, else 0.0."""
    return 1.0 if any(reward >= 1.0 for reward in samples) else 0.0


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A confidence interval of a mean difference."""

    low: float
    high: float

    @property
    def verdict(self) -> Verdict:
        """``better`` when the interval lies above zero, ``worse`` below it, else ``inconclusive``."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "inconclusive"

    def as_list(self) -> list[float]:
        """``[low, high]``, as JSON reports carry it."""
        return [self.low, self.high]


def paired_bootstrap(
    differences: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile interval of the mean of per-problem differences, resampling problems with replacement.

    The problem is the unit: each problem's K samples stay together, so the interval reflects how much the
    result depends on which problems were drawn. With fewer than two problems, or when every difference is the
    same, the interval is the single observed mean.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples!r}")
    count = len(differences)
    if count == 0:
        return Interval(low=0.0, high=0.0)
    if all(value == differences[0] for value in differences):
        return Interval(low=differences[0], high=differences[0])
    rng = np.random.default_rng(seed)
    values = np.asarray(differences, dtype=np.float64)
    means = np.concatenate(
        [values[rng.integers(0, count, size=(block, count))].mean(axis=1) for block in _blocks(resamples, count)]
    )
    means.sort()
    tail = (1 - confidence) / 2
    low_index = min(resamples - 1, max(0, int(tail * resamples)))
    high_index = min(resamples - 1, max(0, int((1 - tail) * resamples) - 1))
    return Interval(low=float(means[low_index]), high=float(means[high_index]))


def _blocks(resamples: int, count: int) -> list[int]:
    """Resample counts per block, so that one block holds about a million draws."""
    size = max(1, 1_000_000 // max(count, 1))
    return [min(size, resamples - start) for start in range(0, resamples, size)]


def sign_flip_p_value(differences: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of a paired randomization test: flip each difference's sign at random.

    Under "no difference" each problem's difference is as likely negative as positive. Exact (all 2^n sign
    patterns) up to 12 problems, else Monte Carlo with the usual +1 correction.
    """
    values = np.asarray([value for value in differences if value != 0], dtype=np.float64)
    if values.size == 0:
        return 1.0
    observed = abs(float(values.sum()))
    tolerance = 1e-12 * max(1.0, observed)
    count = int(values.size)
    if count <= 12:
        patterns = np.arange(1 << count)[:, None] >> np.arange(count)[None, :] & 1
        totals = np.abs(np.where(patterns == 1, values, -values).sum(axis=1))
        return float(np.count_nonzero(totals >= observed - tolerance)) / (1 << count)
    rng = np.random.default_rng(seed)
    extreme = 0
    for block in _blocks(resamples, count):
        signs = rng.integers(0, 2, size=(block, count)) * 2 - 1
        extreme += int(np.count_nonzero(np.abs((signs * values).sum(axis=1)) >= observed - tolerance))
    return (extreme + 1) / (resamples + 1)
