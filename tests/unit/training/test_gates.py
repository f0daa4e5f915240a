"""The ResNet gates: quality (training.resnet.gates) and ONNX equivalence (mlops.gates)."""

from __future__ import annotations

import math

import pytest

from mlops.errors import BadInput
from mlops.gates import equivalence_gate
from training.resnet.gates import quality_gate


def test_first_model_needs_only_the_threshold() -> None:
    verdict = quality_gate(0.93, 0.9)
    assert verdict.passed and verdict.label == "pass"
    assert [c.name for c in verdict.checks] == ["best_val_accuracy"]


def test_below_threshold_fails_with_reason() -> None:
    verdict = quality_gate(0.85, 0.9)
    assert not verdict.passed
    assert "best_val_accuracy=0.85 >= 0.9: FAILED" in verdict.reason


def test_equal_to_champion_is_not_an_improvement() -> None:
    verdict = quality_gate(0.95, 0.9, champion_accuracy=0.95)
    assert not verdict.passed
    assert [c.name for c in verdict.checks] == ["best_val_accuracy", "improvement_over_champion"]
    assert verdict.checks[0].passed and not verdict.checks[1].passed


def test_min_improvement_is_required() -> None:
    assert not quality_gate(0.955, 0.9, champion_accuracy=0.95, min_improvement=0.01).passed
    assert quality_gate(0.97, 0.9, champion_accuracy=0.95, min_improvement=0.01).passed


@pytest.mark.parametrize(
    ("accuracy", "threshold", "match"),
    [
        (93.0, 0.9, "percent"),
        (0.93, 90, "percent"),
        (math.nan, 0.9, "not a finite"),
        (-0.1, 0.9, "outside 0..1"),
    ],
)
def test_bad_numbers_are_bad_input(accuracy: float, threshold: float, match: str) -> None:
    with pytest.raises(BadInput, match=match):
        quality_gate(accuracy, threshold)


def test_percent_champion_is_bad_input() -> None:
    with pytest.raises(BadInput, match="champion"):
        quality_gate(0.9, 0.5, champion_accuracy=91.0)


def test_equivalence_gate_lists_both_checks() -> None:
    ok = equivalence_gate(3e-6, 1e-5, 0)
    assert ok.passed and len(ok.checks) == 2
    too_far = equivalence_gate(2e-5, 1e-5, 0)
    assert not too_far.passed and "max_abs_diff" in too_far.reason
    mismatch = equivalence_gate(0.0, 1e-5, 1)
    assert not mismatch.passed and "argmax_mismatches" in mismatch.reason


def test_equivalence_gate_refuses_nan() -> None:
    with pytest.raises(BadInput):
        equivalence_gate(math.nan, 1e-5, 0)


def test_verdict_as_dict_is_serialisable() -> None:
    import json

    data = quality_gate(0.93, 0.9).as_dict()
    assert json.loads(json.dumps(data))["checks"][0]["bound"] == 0.9


def test_negative_min_improvement_accepts_a_bounded_regression() -> None:
    assert quality_gate(0.93, 0.9, champion_accuracy=0.95, min_improvement=-0.05).passed
    assert not quality_gate(0.93, 0.9, champion_accuracy=0.95, min_improvement=-0.01).passed
    assert quality_gate(0.91, 0.9, champion_accuracy=0.99, min_improvement=-1).passed
    assert not quality_gate(
        0.89, 0.9, champion_accuracy=0.5, min_improvement=-1
    ).passed  # threshold still holds
    with pytest.raises(BadInput, match=r"-1\.\.1"):
        quality_gate(0.95, 0.9, champion_accuracy=0.9, min_improvement=-2)
