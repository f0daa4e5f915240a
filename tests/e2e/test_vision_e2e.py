"""Pipeline 1 as one workflow (`vision-e2e`) through `mlops run`: a first model is trained, passes
both gates and is served as `live`; a second run whose model does not improve stops at the
quality gate, deploys nothing, and the exit handler still leaves Triton serving exactly `live`
and writes the run's summary to MLflow."""

from __future__ import annotations

from typing import Any

import mlflow
import pytest

from mlops.registry import mlflow_registry
from mlops.serving.triton import connect
from tests.conftest import LocalStack
from tests.e2e.conftest import WorkflowRunner

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(1800)  # two trainings and one deployment: ~3 min on an idle 2-core machine
def test_vision_e2e_releases_then_stops_at_the_quality_gate(
    local_stack: LocalStack, triton_stack: Any, run_workflow: WorkflowRunner, model_names: dict[str, str]
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
    assert "`live`: - -> v1" in first.stdout  # the exit handler's summary names the release

    second = run_workflow("vision-e2e", **params)
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
