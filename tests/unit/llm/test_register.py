"""Registration after the loss gate, on an in-memory registry: guarded, idempotent, nothing on fail or error."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mlops.errors import AliasConflict, BadInput
from mlops.registry import InMemoryBackend, Registry
from training.llm.register import adapter_rank, decide_and_register

MODEL = "mistral-7b-lora"


def _decide(registry: Registry, loss: float = 0.7, sha: str = "aaa", **kwargs: Any) -> Any:
    options = {
        "model": MODEL,
        "alias": "candidate",
        "eval_loss": loss,
        "perplexity": math.exp(loss) if math.isfinite(loss) else loss,
        "max_eval_loss": 1.0,
        "max_perplexity": 2.5,
        "source": "mlflow-artifacts:/1/run/artifacts/adapter",
        "run_id": "run",
        "adapter_sha256": sha,
        "tags": {"lora_rank": "16"},
    } | kwargs
    return decide_and_register(registry, **options)


def test_a_pass_registers_and_moves_candidate_with_an_audit_entry() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    outcome = _decide(registry)
    assert outcome.verdict.passed and outcome.registered and outcome.version == "1"
    assert registry.alias(MODEL, "candidate") == "1"
    tags = registry.tags(MODEL, "1")
    assert tags["gate.loss"] == "pass" and tags["adapter_sha256"] == "aaa" and tags["lora_rank"] == "16"
    assert float(tags["eval_loss"]) == 0.7
    assert [(e.alias, e.from_version, e.to_version) for e in registry.history(MODEL)] == [
        ("candidate", None, "1")
    ]


def test_a_fail_registers_nothing_and_leaves_candidate() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    _decide(registry)
    outcome = _decide(registry, loss=1.4, sha="bbb")
    assert not outcome.verdict.passed and outcome.version == "" and not outcome.registered
    assert registry.alias(MODEL, "candidate") == "1"
    assert registry.backend.versions[MODEL].keys() == {"1"}  # type: ignore[attr-defined]


def test_a_better_adapter_moves_candidate_from_the_old_version() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    _decide(registry)
    outcome = _decide(registry, loss=0.6, sha="bbb")
    assert outcome.version == "2" and outcome.alias_before == "1"
    assert registry.alias(MODEL, "candidate") == "2"
    assert registry.tags(MODEL, "2")["alias.candidate.from"] == "1"


def test_the_same_adapter_again_registers_nothing() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    _decide(registry)
    outcome = _decide(registry)
    assert outcome.verdict.passed and not outcome.registered and outcome.version == "1"
    assert registry.backend.versions[MODEL].keys() == {"1"}  # type: ignore[attr-defined]
    assert len(registry.history(MODEL)) == 1


def test_a_nan_loss_is_bad_input_and_registers_nothing() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    with pytest.raises(BadInput, match="eval_loss is nan"):
        _decide(registry, loss=math.nan)
    assert registry.backend.versions == {}  # type: ignore[attr-defined]
    assert registry.alias(MODEL, "candidate") is None


class _RacingBackend(InMemoryBackend):
    """Another workflow moves `candidate` between our read and our move."""

    def create_version(self, model: str, source: str, run_id: str | None, tags: dict[str, str]) -> str:
        version = super().create_version(model, source, run_id, tags)
        other = super().create_version(model, "elsewhere", None, {})
        self.set_alias(model, "candidate", other)
        return version


def test_a_candidate_moved_meanwhile_is_not_overwritten() -> None:
    registry = Registry(_RacingBackend(), actor="test")
    with pytest.raises(AliasConflict, match="someone else moved it"):
        _decide(registry)
    assert registry.alias(MODEL, "candidate") == "2"  # the other workflow's choice stands


@pytest.mark.parametrize(
    ("config", "rank"),
    [({"r": 8}, 8), ({"r": 8, "rank_pattern": {"q_proj": 32}}, 32), ({"r": "16", "rank_pattern": None}, 16)],
)
def test_adapter_rank_is_the_largest_rank(config: dict[str, Any], rank: int) -> None:
    assert adapter_rank(config) == rank


def test_an_adapter_config_without_a_rank_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no usable rank"):
        adapter_rank({"lora_alpha": 16})
