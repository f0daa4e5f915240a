"""Confidence intervals against known values: Wilson score intervals and the seeded paired bootstrap."""

from __future__ import annotations

import math

import pytest

from evaluation.stats import paired_bootstrap, wilson
from mlops.errors import BadInput


@pytest.mark.parametrize(
    ("k", "n", "confidence", "low", "high"),
    [
        (8, 10, 0.95, 0.4902, 0.9433),  # textbook value (Wilson 1927; e.g. Newcombe 1998, table I)
        (0, 10, 0.95, 0.0, 0.2775),
        (10, 10, 0.95, 0.7225, 1.0),
        (81, 263, 0.95, 0.2553, 0.3662),  # Newcombe 1998, example (a)
        (8, 10, 0.90, 0.5408, 0.9315),  # by hand: z=1.6449, centre 0.7361, half-width 0.1953
    ],
)
def test_wilson_interval_matches_known_values(
    k: int, n: int, confidence: float, low: float, high: float
) -> None:
    interval = wilson(k, n, confidence)
    assert interval.estimate == pytest.approx(k / n)
    assert interval.low == pytest.approx(low, abs=5e-4)
    assert interval.high == pytest.approx(high, abs=5e-4)


def test_wilson_of_nothing_is_unknown_and_bad_counts_are_refused() -> None:
    empty = wilson(0, 0)
    assert math.isnan(empty.estimate) and (empty.low, empty.high) == (0.0, 1.0)
    with pytest.raises(BadInput):
        wilson(11, 10)
    with pytest.raises(BadInput, match="fraction"):
        wilson(8, 10, confidence=95)


def test_paired_bootstrap_of_identical_answers_is_exactly_zero() -> None:
    same = [1.0, 0.0, 1.0, 1.0, 0.0] * 10
    interval = paired_bootstrap(same, same, samples=500, seed=1)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero()


def test_paired_bootstrap_is_seeded_and_brackets_the_difference() -> None:
    candidate = [1.0] * 30 + [0.0] * 10
    live = [1.0] * 20 + [0.0] * 20
    first = paired_bootstrap(candidate, live, samples=2000, seed=7)
    again = paired_bootstrap(candidate, live, samples=2000, seed=7)
    assert first == again
    assert first.estimate == pytest.approx(0.25)
    # 10 of 40 questions improved, none regressed: the normal approximation gives 0.25 +- 0.135
    assert first.low == pytest.approx(0.25 - 1.96 * math.sqrt(0.25 * 0.75 / 40), abs=0.03)
    assert first.high == pytest.approx(0.25 + 1.96 * math.sqrt(0.25 * 0.75 / 40), abs=0.03)
    assert first.excludes_zero()


def test_paired_bootstrap_refuses_unpaired_input() -> None:
    with pytest.raises(BadInput, match="pairs"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(BadInput, match="samples"):
        paired_bootstrap([1.0], [0.0], samples=10)
    assert math.isnan(paired_bootstrap([], []).estimate)
