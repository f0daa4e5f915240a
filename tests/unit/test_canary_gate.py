"""The canary analysis: the pure gate, its PromQL, the cluster split's rewrite, and the steps' effects
(weight back to 0 and `canary-failed` on a failed analysis, live untouched) over in-memory parts."""

from __future__ import annotations

import re

import pytest

from deployment.vllm import canary_analysis, canary_shift
from deployment.vllm.canary import CanaryBounds, SlotFigures, canary_gate, slot_queries
from deployment.vllm.traffic import rewrite_targets, weight_of
from mlops.errors import BadInput
from mlops.registry import InMemoryBackend, Registry
from tests.unit.test_vllm_slots import MemoryReplica

MODEL = "mistral-7b-lora"
GOOD = SlotFigures(requests=100, errors=0, e2e_p95_s=1.0, ttft_p95_s=0.2)


def gate(candidate: SlotFigures, live: SlotFigures = GOOD, **bounds: float) -> dict[str, bool]:
    verdict = canary_gate(candidate, live, CanaryBounds(**bounds))
    return {c.name: c.passed for c in verdict.checks}


def test_a_candidate_like_live_passes_every_check() -> None:
    verdict = canary_gate(GOOD, GOOD, CanaryBounds())
    assert verdict.passed and {c.name for c in verdict.checks} == {
        "candidate_requests",
        "candidate_error_rate",
        "candidate_e2e_p95_s",
        "candidate_ttft_p95_s",
        "error_rate_increase",
        "e2e_p95_ratio",
        "ttft_p95_ratio",
    }
    assert all(c.value <= c.bound for c in verdict.checks if c.op == "<=")


def test_candidate_errors_fail_the_absolute_and_the_relative_check() -> None:
    checks = gate(SlotFigures(100, 5, 1.0, 0.2))
    assert checks["candidate_error_rate"] is False and checks["error_rate_increase"] is False


def test_slower_than_live_fails_the_ratio_within_the_slo() -> None:
    checks = gate(SlotFigures(100, 0, 1.0, 0.5), max_ttft_ratio=1.2)  # 0.5 s is under 2 s, 2.5x live
    assert checks["candidate_ttft_p95_s"] is True and checks["ttft_p95_ratio"] is False
    assert checks["e2e_p95_ratio"] is True


def test_too_few_candidate_requests_is_no_evidence_and_fails() -> None:
    verdict = canary_gate(SlotFigures(3, 0, 1.0, 0.2), GOOD, CanaryBounds(min_requests=20))
    assert not verdict.passed and "candidate_requests=3 >= 20: FAILED" in verdict.reason


def test_without_live_traffic_only_absolute_bounds_apply_and_the_reason_says_so() -> None:
    verdict = canary_gate(GOOD, SlotFigures(0, 0, None, None), CanaryBounds())
    assert verdict.passed and "absolute bounds only" in verdict.reason
    assert "e2e_p95_ratio" not in {c.name for c in verdict.checks}


@pytest.mark.parametrize(
    "bounds",
    [
        CanaryBounds(max_error_rate=5.0),
        CanaryBounds(max_ttft_ratio=0.0),
        CanaryBounds(max_e2e_p95_s=float("nan")),
    ],
)
def test_a_bound_outside_its_domain_is_bad_input(bounds: CanaryBounds) -> None:
    with pytest.raises(BadInput):
        canary_gate(GOOD, GOOD, bounds)


def test_queries_select_one_slot_of_the_public_name() -> None:
    queries = slot_queries("aws-rag-qa", "aws-rag-qa-candidate", 75)
    for promql in queries.values():
        assert (
            'model_name="aws-rag-qa",target_model_name="aws-rag-qa-candidate"' in promql and "[75s]" in promql
        )
    assert queries["ttft_p95_s"].startswith(
        "histogram_quantile(0.95, sum by (le) (rate(inference_objective_request_ttft"
    )


REWRITE = {
    "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
    "kind": "InferenceModelRewrite",
    "metadata": {"name": "aws-rag-qa", "resourceVersion": "7"},
    "spec": {
        "poolRef": {"group": "inference.networking.k8s.io", "name": "vllm"},
        "rules": [
            {
                "matches": [{"model": {"type": "Exact", "value": "aws-rag-qa"}}],
                "targets": [{"modelRewrite": "aws-rag-qa-live"}],
            }
        ],
    },
}


@pytest.mark.parametrize(
    ("weight", "targets"),
    [
        (0, [{"modelRewrite": "aws-rag-qa-live"}]),
        (
            10,
            [
                {"modelRewrite": "aws-rag-qa-live", "weight": 90},
                {"modelRewrite": "aws-rag-qa-candidate", "weight": 10},
            ],
        ),
        (100, [{"modelRewrite": "aws-rag-qa-candidate"}]),
    ],
)
def test_the_cluster_rewrite_splits_the_public_name(weight: int, targets: list[dict[str, object]]) -> None:
    updated = rewrite_targets(REWRITE, "aws-rag-qa", weight)
    assert updated["spec"]["rules"][0]["targets"] == targets
    assert updated["metadata"]["resourceVersion"] == "7"  # the update is refused if someone else edited it
    assert weight_of(updated, "aws-rag-qa") == weight
    assert REWRITE["spec"]["rules"][0]["targets"] == [{"modelRewrite": "aws-rag-qa-live"}]  # a copy


def test_a_rewrite_without_a_rule_for_the_name_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no rule matching other"):
        rewrite_targets(REWRITE, "other", 10)


# --- the steps, over in-memory registry, split and Prometheus --------------------------------------


class MemorySplit:
    where = "memory://split"

    def __init__(self, weight: int = 0) -> None:
        self.weight = weight
        self.history: list[int] = []

    def candidate_weight(self) -> int:
        return self.weight

    def set_candidate_weight(self, weight: int) -> None:
        self.weight = weight
        self.history.append(weight)


class MemoryPrometheus:
    """Answers the slot queries with fixed figures per target (what Prometheus would compute)."""

    def __init__(self, figures: dict[str, SlotFigures]) -> None:
        self.figures = figures

    def query(self, promql: str, at: float) -> float | None:
        target = re.search(r'target_model_name="([^"]+)"', promql)
        assert target is not None
        figures = self.figures[target.group(1)]
        for name in ("error_total", "ttft", "duration", "total"):
            if f"inference_objective_request_{name}" in promql:
                return {
                    "error_total": figures.errors,
                    "ttft": figures.ttft_p95_s,
                    "duration": figures.e2e_p95_s,
                    "total": figures.requests,
                }[name]
        raise AssertionError(promql)


def registry_with_canary() -> Registry:
    registry = Registry(InMemoryBackend(), actor="test")
    for _ in range(2):
        registry.register(MODEL, "s3://x", None, {})
    registry.move_alias(MODEL, "live", "1", reason="setup")
    for alias in ("staged", "eval-passed", "perf-passed"):
        registry.move_alias(MODEL, alias, "2", reason="setup")
    return registry


def analysis_config(weight: int, **extra: object) -> canary_analysis.Config:
    return canary_analysis.Config(
        model_name=MODEL,
        weight=weight,
        canary_window_s=0,
        canary_pad_s=0,
        prometheus_url="http://unused",
        **extra,
    )


def test_a_failed_analysis_moves_traffic_back_then_records_canary_failed_and_leaves_live() -> None:
    registry, split = registry_with_canary(), MemorySplit(10)
    prometheus = MemoryPrometheus(
        {
            "aws-rag-qa-candidate": SlotFigures(30, 30, 0.1, None),
            "aws-rag-qa-live": SlotFigures(270, 0, 1.0, 0.2),
        }
    )
    result = canary_analysis.run(analysis_config(10), registry, split, prometheus)
    assert result.outputs["verdict"] == "fail" and split.history == [0]
    assert registry.alias(MODEL, "canary-failed") == "2" and registry.alias(MODEL, "canary-passed") is None
    assert registry.alias(MODEL, "live") == "1" and registry.alias(MODEL, "staged") == "2"
    tags = registry.tags(MODEL, "2")
    assert tags["canary.w10.verdict"] == "fail" and tags["canary.w10.candidate.error_rate"] == "1"
    assert registry.history(MODEL)[-1].alias == "canary-failed"  # audited like every move


def test_a_passing_step_only_tags_and_the_last_records_canary_passed() -> None:
    registry, split = registry_with_canary(), MemorySplit(50)
    prometheus = MemoryPrometheus({"aws-rag-qa-candidate": GOOD, "aws-rag-qa-live": GOOD})
    assert canary_analysis.run(analysis_config(50), registry, split, prometheus).outputs["verdict"] == "pass"
    assert registry.alias(MODEL, "canary-passed") is None and split.history == []
    assert registry.tags(MODEL, "2")["canary.w50.verdict"] == "pass"
    canary_analysis.run(analysis_config(100, record_pass=True), registry, split, prometheus)
    assert registry.alias(MODEL, "canary-passed") == "2" and split.history == []


def test_a_bad_bound_is_refused_before_any_traffic_or_move() -> None:
    registry, split = registry_with_canary(), MemorySplit(10)
    with pytest.raises(BadInput, match=r"max_error_rate=5.0 is outside 0\.\.1"):
        canary_analysis.run(
            analysis_config(10, canary_max_error_rate=5.0), registry, split, MemoryPrometheus({})
        )
    assert split.history == [] and registry.alias(MODEL, "canary-failed") is None


def replicas(candidate: str | None = "/ad/mistral-7b-lora/2") -> list[MemoryReplica]:
    loaded = {"aws-rag-qa-live": "/ad/mistral-7b-lora/1"}
    if candidate:
        loaded["aws-rag-qa-candidate"] = candidate
    return [MemoryReplica("a", loaded), MemoryReplica("b", loaded)]


def test_a_canary_starts_only_with_both_verdicts_a_live_and_the_slots_in_place() -> None:
    cfg = canary_shift.Config(model_name=MODEL, weight=10)
    registry = registry_with_canary()
    assert canary_shift.ready_version(registry, cfg, replicas()) == ("2", "1")
    with pytest.raises(BadInput, match="aws-rag-qa-candidate serves nothing, not v2"):
        canary_shift.ready_version(registry, cfg, replicas(candidate=None))
    registry.move_alias(MODEL, "perf-passed", None, reason="test")
    with pytest.raises(BadInput, match="perf-passed is at no version"):
        canary_shift.ready_version(registry, cfg, replicas())
    first = Registry(InMemoryBackend(), actor="test")
    first.register(MODEL, "s3://x", None, {})
    for alias in ("staged", "eval-passed", "perf-passed"):
        first.move_alias(MODEL, alias, "1", reason="setup")
    with pytest.raises(BadInput, match="no live version"):
        canary_shift.ready_version(first, cfg, replicas())


def test_a_shift_that_may_not_start_leaves_the_split_alone_and_back_to_live_always_works() -> None:
    registry, split = registry_with_canary(), MemorySplit(0)
    registry.move_alias(MODEL, "eval-passed", None, reason="test")
    cfg = canary_shift.Config(model_name=MODEL, weight=10)
    with pytest.raises(BadInput, match="eval-passed is at no version"):
        canary_shift.run(cfg, registry, split, replicas())
    assert split.history == []
    registry.move_alias(MODEL, "eval-passed", "2", reason="test")
    assert canary_shift.run(cfg, registry, split, replicas()).outputs == {"weight": "10", "version": "2"}
    back = canary_shift.run(canary_shift.Config(model_name=MODEL, weight=0), registry, split, replicas(None))
    assert back.outputs["weight"] == "0" and split.history == [10, 0]
