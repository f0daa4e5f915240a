"""Pipeline 1 as one workflow (`vision-e2e`) through `mlops run`: a first model is trained, passes
both gates and is served as `live` (its `release-values` step records the probe figures on the
version); `vision-probe` then sends the held-out probe images to the real Triton stand-in and pushes
PSI and confidence to the real Pushgateway: the same model, the same class mix (PSI 0) and
confidence as at release. A second run whose model does not improve stops at the quality gate,
deploys nothing, and the exit handler still leaves Triton serving exactly `live` and writes the
run's summary to MLflow."""

from __future__ import annotations

import json
from typing import Any

import httpx
import mlflow
import pytest

from mlops.registry import mlflow_registry
from mlops.serving.triton import connect
from tests.conftest import LocalStack
from tests.e2e.conftest import WorkflowRunner, exit_summary

pytestmark = pytest.mark.e2e


def pushed(pushgateway: str, model: str) -> dict[str, float]:
    """metric name -> value of what the Pushgateway holds for `model`."""
    found: dict[str, float] = {}
    for group in httpx.get(f"{pushgateway}/api/v1/metrics", timeout=10).json()["data"]:
        if group["labels"].get("model") != model:
            continue
        for name, family in group.items():
            if isinstance(family, dict) and "metrics" in family and not name.startswith("push_"):
                found[name] = float(family["metrics"][0]["value"])
    return found


@pytest.mark.timeout(1800)  # two trainings, one deployment, one probe: ~3 min on an idle 2-core machine
def test_vision_e2e_releases_is_probed_then_stops_at_the_quality_gate(
    local_stack: LocalStack,
    triton_stack: Any,
    pushgateway_url: str,
    run_workflow: WorkflowRunner,
    model_names: dict[str, str],
) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    onnx_model = model_names["onnx-model-name"]
    params = {
        **model_names,
        "triton-endpoints": triton_stack.grpc_url,
        "model-repository": triton_stack.repository,
    }

    def served() -> list[str]:
        index = connect(triton_stack.grpc_url).repository_index()
        return sorted(e.version for e in index if e.name == onnx_model and e.state == "READY")

    first = run_workflow("vision-e2e", **params)
    assert first.returncode == 0, first.stdout[-4000:]
    assert registry.alias(onnx_model, "live") == "1" and registry.alias(onnx_model, "deploy") == "1"
    assert registry.alias(model_names["model-name"], "champion") == "1"
    assert served() == ["1"]
    summary = exit_summary(first.stdout)
    assert "`live`: - -> v1" in summary, summary  # the exit handler's summary names the release
    tags = registry.tags(onnx_model, "1")
    shares = json.loads(tags["probe.release.class_shares"])
    assert len(shares) == 10 and abs(sum(shares) - 1) < 1e-3
    assert int(tags["probe.release.images"]) == 90  # a quarter of each digit's validation images

    try:
        probed = run_workflow(
            "vision-probe",
            **{
                "onnx-model-name": onnx_model,
                "triton-endpoints": triton_stack.grpc_url,
                "pushgateway-url": pushgateway_url,
            },
        )
        assert probed.returncode == 0, probed.stdout[-4000:]
        figures = pushed(pushgateway_url, onnx_model)
        print(f"vision probe of {onnx_model} v1: {figures}")
        assert figures["mlops_vision_psi"] == pytest.approx(0.0, abs=1e-9)
        assert figures["mlops_vision_mean_confidence"] == pytest.approx(
            float(tags["probe.release.mean_confidence"]), abs=1e-5
        )
        assert figures["mlops_vision_mean_confidence_release"] == pytest.approx(
            float(tags["probe.release.mean_confidence"]), abs=1e-6
        )
        assert figures["mlops_vision_probe_images"] == 90
    finally:
        httpx.delete(f"{pushgateway_url}/metrics/job/mlops-probe/model/{onnx_model}", timeout=10)

    # one epoch instead of three: a model below the champion, as an identical rerun would be too
    # (test_triton_training.py has that case), at a third of the training time
    second = run_workflow("vision-e2e", **params, epochs="1")
    assert second.returncode == 0, second.stdout[-4000:]
    assert "when ('fail' == 'pass'" in second.stdout  # gate 1 said no: deploy skipped
    assert (
        registry.alias(onnx_model, "live") == "1"
        and registry.alias(model_names["model-name"], "champion") == "1"
    )
    assert served() == ["1"]

    runs = mlflow.MlflowClient(local_stack.mlflow_uri).search_runs(
        [mlflow.get_experiment_by_name(f"{onnx_model}-releases").experiment_id]
    )
    assert sorted(r.data.tags["status"] for r in runs) == ["Succeeded", "Succeeded"]
