"""Confidence for the gate: Wilson score intervals for rates, a seeded paired bootstrap for differences.

Pure functions of counts and per-question values; `confidence` is a fraction (0.95), never a percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from mlops.errors import BadInput


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise BadInput(f"confidence={confidence} must be a fraction in (0, 1), e.g. 0.95")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval."""

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    def describe(self, percent: bool = True) -> str:
        if percent:
            return f"{self.estimate:.1%} [{self.low:.1%}, {self.high:.1%}]"
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def wilson(successes: int, total: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a binomial proportion (sensible at 0/n, n/n and small n)."""
    if total < 0 or not 0 <= successes <= total:
        raise BadInput(f"wilson: need 0 <= successes <= total, got {successes}/{total}")
    z = _z(confidence)
    if total == 0:
        return Interval(math.nan, 0.0, 1.0)
    p = successes / total
    denominator = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def paired_bootstrap(
    first: Sequence[float],
    second: Sequence[float],
    *,
    samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean of `first - second` over paired observations, with a percentile bootstrap interval.

    Questions are resampled with replacement, keeping each question's two values together, so
    what both models find hard cancels out.
    """
    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    if a.shape != b.shape:
        raise BadInput(f"paired bootstrap needs pairs: {a.size} vs {b.size} values")
    if samples < 100:
        raise BadInput(f"bootstrap samples={samples}: use at least 100")
    _z(confidence)
    if a.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    delta = a - b
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, delta.size, size=(samples, delta.size))
    means = delta[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(delta.mean()), float(low), float(high))
