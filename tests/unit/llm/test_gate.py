"""The loss gate: finite eval_loss and perplexity at or under their bounds; impossible metrics refused."""

from __future__ import annotations

import math

import pytest

from mlops.errors import BadInput
from training.llm.gate import loss_gate


def test_passes_when_both_are_within_bounds() -> None:
    verdict = loss_gate(0.72, math.exp(0.72), 1.0, 2.5)
    assert verdict.passed and verdict.label == "pass"
    assert [(c.name, c.op, c.passed) for c in verdict.checks] == [
        ("eval_loss", "<=", True),
        ("perplexity", "<=", True),
    ]


def test_the_seed_defaults_reject_a_perplexity_above_two() -> None:
    verdict = loss_gate(0.72, math.exp(0.72), 1.0, 2.0)
    assert not verdict.passed
    assert verdict.reason == "perplexity=2.05443 <= 2: FAILED"


def test_a_loss_above_the_bound_fails_and_says_so() -> None:
    verdict = loss_gate(1.5, math.exp(1.5), 1.0, 10.0)
    assert not verdict.passed and verdict.reason.startswith("eval_loss=1.5 <= 1: FAILED")


def test_a_value_on_the_bound_passes() -> None:
    assert loss_gate(1.0, math.e, 1.0, math.e).passed


@pytest.mark.parametrize(
    ("loss", "perplexity", "message"),
    [
        (math.nan, math.nan, "eval_loss is nan"),
        (0.5, math.inf, "perplexity is inf"),
        (-0.1, math.exp(-0.1), "negative"),
        (0.0, 0.5, "below 1"),
        (0.5, 3.0, "is not exp"),
        ("x", 1.0, "must be a number"),
    ],
)
def test_impossible_metrics_are_bad_input(loss: float, perplexity: float, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        loss_gate(loss, perplexity, 1.0, 2.0)


def test_impossible_bounds_are_bad_input() -> None:
    with pytest.raises(BadInput, match="impossible"):
        loss_gate(0.5, math.exp(0.5), 1.0, 0.9)
