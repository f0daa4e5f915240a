"""`triton-training` end to end on the local stack: first run (the session's `trained_resnet`, whose
model the deployment tests serve) sets both aliases, an identical second run is rejected by the
quality gate and moves nothing; bad input fails fast and moves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.registry import mlflow_registry
from tests.conftest import LocalStack, mlops_run
from tests.e2e.conftest import TrainedResnet, WorkflowRunner

pytestmark = pytest.mark.e2e


def _versions(client: MlflowClient, model: str) -> list[str]:
    return sorted(v.version for v in client.search_model_versions(f"name='{model}'"))


def test_train_twice_second_rejected(local_stack: LocalStack, trained_resnet: TrainedResnet) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    client = MlflowClient(local_stack.mlflow_uri)
    model_names = trained_resnet.names
    model, onnx_model = model_names["model-name"], model_names["onnx-model-name"]

    first = trained_resnet.first
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Succeeded" in first.stdout
    champion = registry.alias(model, "champion")
    deploy = registry.alias(onnx_model, "deploy")
    assert champion == "1" and deploy == "1"
    tags = registry.tags(onnx_model, deploy)
    assert tags["source_version"] == champion
    assert float(tags["max_abs_diff"]) <= 1e-5
    accuracy = float(registry.tags(model, champion)["best_val_accuracy"])
    assert 0.85 <= accuracy <= 1.0  # a fraction, above the local threshold

    second = mlops_run(local_stack, "triton-training", trained_resnet.state_dir, **model_names)
    print(second.stdout[-20000:])
    assert second.returncode == 0, second.stdout[-3000:]
    assert "no improvement" in second.stdout or "improvement_over_champion" in second.stdout
    assert "Skipped" in second.stdout  # export and validate did not run
    assert registry.alias(model, "champion") == champion
    assert registry.alias(onnx_model, "deploy") == deploy
    assert _versions(client, model) == ["1"] and _versions(client, onnx_model) == ["1"]
    assert [(e.alias, e.to_version) for e in registry.history(model)] == [("champion", "1")]


def test_single_class_dataset_fails_fast_and_moves_nothing(
    local_stack: LocalStack, run_workflow: WorkflowRunner, model_names: dict[str, str], tmp_path: Path
) -> None:
    from PIL import Image

    for split in ("train", "val"):
        folder = tmp_path / "data" / split / "only-class"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folder / f"{i}.png")
    result = run_workflow("triton-training", data_source=str(tmp_path / "data"), **model_names)
    assert result.returncode != 0
    assert "exit code 2" in result.stdout
    assert "only one class ('only-class')" in result.stdout
    assert "not retried" in result.stdout and "attempt 2/" not in result.stdout  # bad input is never retried
    client = MlflowClient(local_stack.mlflow_uri)
    assert client.search_registered_models(filter_string=f"name='{model_names['model-name']}'") == []


def test_mlflow_unreachable_is_retried_then_fails(
    run_workflow: WorkflowRunner, model_names: dict[str, str]
) -> None:
    result = run_workflow("triton-training", mlflow_tracking_uri="http://127.0.0.1:9", **model_names)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "exit code 3" in output
    assert "transient failure" in output
    assert "attempt 4/4" in output  # retried by the template's retryStrategy (limit 3), then failed
    assert "Workflow" in output and "Failed" in output


def test_misspelt_params_file_key_is_refused_before_anything_runs(
    local_stack: LocalStack, run_workflow: WorkflowRunner, model_names: dict[str, str], tmp_path: Path
) -> None:
    params = tmp_path / "p.yaml"
    local = (Path(__file__).parents[2] / "workflows" / "params" / "local.yaml").read_text()
    params.write_text(local + 'treshold: "0.995"\n')  # the gate would run at the default otherwise
    result = run_workflow("triton-training", params_file=str(params), **model_names)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"--params {params}: treshold: no workflow in" in result.stderr
    assert "(did you mean 'threshold'?)" in result.stderr
    assert "nothing was run" in result.stderr
    assert not (tmp_path / "state" / "runs").exists()  # no node started
    client = MlflowClient(local_stack.mlflow_uri)
    for name in model_names.values():  # nothing registered, so no alias moved
        assert client.search_registered_models(filter_string=f"name='{name}'") == []
