"""training.resnet.quality_gate: decide, then register and move `champion`, on an in-memory registry."""

from __future__ import annotations

import pytest

from mlops.errors import BadInput
from mlops.registry import InMemoryBackend, Registry
from training.resnet import quality_gate

MODEL, ALIAS = "resnet18-test", "champion"


@pytest.fixture
def registry() -> Registry:
    return Registry(InMemoryBackend(), actor="test")


def decide(registry: Registry, accuracy: float, threshold: float = 0.9, min_improvement: float = 0.0):
    return quality_gate.decide_and_register(
        registry,
        model=MODEL,
        alias=ALIAS,
        accuracy=accuracy,
        threshold=threshold,
        min_improvement=min_improvement,
        source=f"mlflow-artifacts:/run-{accuracy}/checkpoint",
        run_id=f"run-{accuracy}",
        extra_tags={"dataset_sha256": "abc"},
    )


def versions(registry: Registry) -> dict[str, dict[str, object]]:
    backend = registry.backend
    assert isinstance(backend, InMemoryBackend)
    return backend.versions.get(MODEL, {})


def test_first_model_above_threshold_becomes_champion(registry: Registry) -> None:
    outcome = decide(registry, 0.95)
    assert outcome.verdict.passed
    assert (outcome.version, outcome.champion_before, outcome.champion_after) == ("1", None, "1")
    assert registry.alias(MODEL, ALIAS) == "1"
    tags = registry.tags(MODEL, "1")
    assert tags[quality_gate.ACCURACY_TAG] == "0.95"
    assert tags[quality_gate.GATE_TAG] == "pass"
    assert tags["dataset_sha256"] == "abc"
    assert registry.source(MODEL, "1") == "mlflow-artifacts:/run-0.95/checkpoint"
    assert [(e.from_version, e.to_version) for e in registry.history(MODEL)] == [(None, "1")]


def test_below_threshold_registers_nothing(registry: Registry) -> None:
    outcome = decide(registry, 0.5)
    assert not outcome.verdict.passed
    assert "best_val_accuracy=0.5 >= 0.9: FAILED" in outcome.verdict.reason
    assert outcome.version == ""
    assert versions(registry) == {}
    assert registry.alias(MODEL, ALIAS) is None


def test_equal_to_champion_is_not_an_improvement(registry: Registry) -> None:
    decide(registry, 0.95)
    outcome = decide(registry, 0.95)
    assert not outcome.verdict.passed
    assert "improvement_over_champion" in outcome.verdict.reason
    assert (outcome.champion_before, outcome.champion_after) == ("1", "1")
    assert list(versions(registry)) == ["1"]


def test_better_model_replaces_champion_guarded(registry: Registry) -> None:
    decide(registry, 0.92)
    outcome = decide(registry, 0.96)
    assert outcome.verdict.passed
    assert registry.alias(MODEL, ALIAS) == "2"
    assert [(e.from_version, e.to_version) for e in registry.history(MODEL)] == [(None, "1"), ("1", "2")]


def test_min_improvement_is_required(registry: Registry) -> None:
    decide(registry, 0.92)
    assert not decide(registry, 0.93, min_improvement=0.02).verdict.passed
    assert decide(registry, 0.95, min_improvement=0.02).verdict.passed


@pytest.mark.parametrize(("accuracy", "threshold"), [(93.0, 0.9), (0.93, 90.0)])
def test_percent_is_bad_input_and_changes_nothing(
    registry: Registry, accuracy: float, threshold: float
) -> None:
    with pytest.raises(BadInput, match="looks like a percent"):
        decide(registry, accuracy, threshold)
    assert versions(registry) == {}
    assert registry.history(MODEL) == []


def test_champion_without_a_usable_accuracy_tag_is_bad_input(registry: Registry) -> None:
    version = registry.register(MODEL, "s3://x", None, {})
    registry.move_alias(MODEL, ALIAS, version, expect_version=None, reason="by hand")
    with pytest.raises(BadInput, match="has no 'best_val_accuracy' tag"):
        decide(registry, 0.99)
    registry.tag_version(MODEL, version, {quality_gate.ACCURACY_TAG: "high"})
    with pytest.raises(BadInput, match="is not a number"):
        decide(registry, 0.99)
    assert list(versions(registry)) == [version]
