"""Pipeline 1's serving half on the local stack: models trained by `triton-training` (the session's
two runs, `trained_resnet` and `other_trained_resnet`, registered again under names private to each
test) -> deployment -> inference through tritonclient -> a second deployment -> rollback, with
aliases and served versions checked at each stage; and the faults that must leave `live` and the
served model as they were. Training itself: test_triton_training.py and test_vision_e2e.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployment.triton.repository import served_versions
from mlops.registry import Registry, mlflow_registry
from mlops.serving.triton import connect
from mlops.storage import S3Store, S3Url
from tests.conftest import LocalStack
from tests.e2e.conftest import TrainedResnet, WorkflowRunner, register_copy

pytestmark = pytest.mark.e2e


def _triton_params(triton_stack: Any, model_names: dict[str, str]) -> dict[str, str]:
    return {
        "onnx-model-name": model_names["onnx-model-name"],
        "triton-endpoints": triton_stack.grpc_url,
        "model-repository": triton_stack.repository,
    }


def _served(triton_stack: Any, model: str) -> list[str]:
    server = connect(triton_stack.grpc_url)
    return sorted(e.version for e in server.repository_index() if e.name == model and e.state == "READY")


def _answer(triton_stack: Any, model: str, version: str = "") -> np.ndarray:
    server = connect(triton_stack.grpc_url)
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return server.infer(model, version, {"input": batch})["logits"]


def _aliases(registry: Registry, model: str) -> tuple[str | None, str | None]:
    return registry.alias(model, "live"), registry.alias(model, "previous")


@pytest.mark.timeout(1800)  # three deployments, two rollbacks: ~3 min on an idle 2-core machine
def test_deploy_redeploy_rollback(
    local_stack: LocalStack,
    triton_stack: Any,
    run_workflow: WorkflowRunner,
    model_names: dict[str, str],
    trained_resnet: TrainedResnet,
    other_trained_resnet: TrainedResnet,
    tmp_path: Path,
) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    onnx_model = model_names["onnx-model-name"]
    triton_name = onnx_model  # the package is served under the ONNX model's name
    params = _triton_params(triton_stack, model_names)

    trained = register_copy(registry, (trained_resnet.onnx_model, "1"), onnx_model)
    registry.move_alias(onnx_model, "deploy", trained, reason="e2e: a trained model")
    assert trained == "1"

    first = run_workflow("triton-deployment", **params)
    assert first.returncode == 0, first.stdout[-4000:]
    assert _aliases(registry, onnx_model) == ("1", None)
    assert registry.tags(onnx_model, "1")["triton_version"] == "1"
    assert _served(triton_stack, triton_name) == ["1"]
    v1_logits = _answer(triton_stack, triton_name)
    assert v1_logits.shape == (2, 10)

    # a second, different model (another seed), as gate 2 would hand it over
    retrained = register_copy(registry, (other_trained_resnet.onnx_model, "1"), onnx_model)
    registry.move_alias(onnx_model, "deploy", retrained, reason="e2e: a retrained model")
    assert retrained == "2"

    second = run_workflow("triton-deployment", **params)
    assert second.returncode == 0, second.stdout[-4000:]
    assert _aliases(registry, onnx_model) == ("2", "1")
    assert _served(triton_stack, triton_name) == ["2"]  # reconcile unloaded v1 after the switch
    assert not np.allclose(_answer(triton_stack, triton_name), v1_logits)

    unchanged = run_workflow("triton-deployment", **params)  # `deploy` is already live: nothing to do
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]
    assert "nothing to deploy" in unchanged.stdout and "Skipped" in unchanged.stdout
    assert _aliases(registry, onnx_model) == ("2", "1")
    assert _served(triton_stack, triton_name) == ["2"]

    rollback = run_workflow("triton-rollback", **params)
    assert rollback.returncode == 0, rollback.stdout[-4000:]
    assert _aliases(registry, onnx_model) == ("1", None)
    assert _served(triton_stack, triton_name) == ["1"]
    np.testing.assert_allclose(_answer(triton_stack, triton_name), v1_logits, rtol=1e-5, atol=1e-6)
    history = [
        (e.alias, e.to_version) for e in registry.history(onnx_model) if e.alias in ("live", "previous")
    ]
    assert history[-2:] == [("live", "1"), ("previous", None)]

    again = run_workflow("triton-rollback", **params)  # idempotent
    assert again.returncode == 0, again.stdout[-3000:]
    assert "nothing to do" in again.stdout
    assert _aliases(registry, onnx_model) == ("1", None)
    assert _served(triton_stack, triton_name) == ["1"]

    # a wrong model: v1's ONNX registered with v2's golden samples. Verify fails on the served
    # model, the onExit handler serves `live` again, no alias moves.
    wrong = _register_mismatched_package(
        local_stack, registry, onnx_model, onnx_from="1", golden_from="2", tmp=tmp_path
    )
    registry.move_alias(onnx_model, "deploy", wrong, reason="e2e: wrong model")
    bad = run_workflow("triton-deployment", **params)
    assert bad.returncode != 0
    assert "verification failed" in bad.stdout + bad.stderr
    assert _aliases(registry, onnx_model) == ("1", None)
    assert _served(triton_stack, triton_name) == ["1"]
    np.testing.assert_allclose(_answer(triton_stack, triton_name), v1_logits, rtol=1e-5, atol=1e-6)


def _register_mismatched_package(
    local_stack: LocalStack, registry: Registry, model: str, *, onnx_from: str, golden_from: str, tmp: Path
) -> str:
    """A new version whose model.onnx (with matching checksums) comes from one version, golden/ from another."""
    from mlflow import MlflowClient

    from mlops.tracking import download_artifacts

    package = download_artifacts(registry.source(model, onnx_from), tmp / "onnx-source")
    other = download_artifacts(registry.source(model, golden_from), tmp / "golden-source")
    shutil.rmtree(package / "golden")
    shutil.copytree(other / "golden", package / "golden")
    client = MlflowClient(local_stack.mlflow_uri)
    experiment = client.create_experiment(f"e2e-wrong-{model}")
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(package), "onnx")
    client.set_terminated(run.info.run_id)
    return register_copy(
        registry, (model, onnx_from), model, artifact=(f"{run.info.artifact_uri}/onnx", run.info.run_id)
    )


def test_deploy_without_deploy_alias_fails_and_changes_nothing(
    triton_stack: Any, run_workflow: WorkflowRunner, model_names: dict[str, str]
) -> None:
    result = run_workflow("triton-deployment", **_triton_params(triton_stack, model_names))
    assert result.returncode != 0
    assert "exit code 2" in result.stdout and "has no alias 'deploy'" in result.stdout
    assert "attempt 2/" not in result.stdout  # bad input is never retried


def test_rollback_without_previous_is_bad_input(
    triton_stack: Any, run_workflow: WorkflowRunner, model_names: dict[str, str]
) -> None:
    result = run_workflow("triton-rollback", **_triton_params(triton_stack, model_names))
    assert result.returncode != 0
    assert "nothing to roll back to" in result.stdout + result.stderr


def test_checksum_mismatch_and_unreachable_server_leave_live_alone(
    local_stack: LocalStack,
    triton_stack: Any,
    run_workflow: WorkflowRunner,
    model_names: dict[str, str],
    trained_resnet: TrainedResnet,
) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    onnx_model = model_names["onnx-model-name"]
    params = _triton_params(triton_stack, model_names)
    version = register_copy(registry, (trained_resnet.onnx_model, "1"), onnx_model)
    registry.move_alias(onnx_model, "deploy", version, reason="e2e: a trained model")
    assert run_workflow("triton-deployment", **params).returncode == 0
    assert _aliases(registry, onnx_model) == ("1", None)

    # the registered checksum no longer matches the artifact: refused at fetch, nothing published
    original = registry.tags(onnx_model, "1")["onnx_sha256"]
    registry.tag_version(onnx_model, "1", {"onnx_sha256": "0" * 64})
    tampered = run_workflow("triton-deployment", **params)
    assert tampered.returncode != 0
    assert "checksum mismatch" in tampered.stdout + tampered.stderr
    assert _aliases(registry, onnx_model) == ("1", None)
    registry.tag_version(onnx_model, "1", {"onnx_sha256": original})

    # server unreachable: exit 3, retried, then the workflow fails; live and the served model stay
    root = S3Url.parse(triton_stack.repository)
    store = S3Store(local_stack.s3_endpoint)
    versions_before = store.list(root.join(onnx_model))
    down = run_workflow("triton-deployment", **{**params, "triton-endpoints": "127.0.0.1:9", "force": "true"})
    assert down.returncode != 0
    assert "exit code 3" in down.stdout and "attempt 4/4" in down.stdout
    assert _aliases(registry, onnx_model) == ("1", None)
    assert _served(triton_stack, onnx_model) == ["1"]
    assert len(store.list(root.join(onnx_model))) > len(versions_before)  # version 2 published, never served
    config = store.get_bytes(root.join(onnx_model, "config.pbtxt")).decode()
    assert served_versions(config) == [1]  # the handler put the served set back to `live`
