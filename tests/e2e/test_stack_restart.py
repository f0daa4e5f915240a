"""`mlops down` then `mlops up` on a stack of its own: the registry, the S3 objects and what Triton
serves all come back, and `mlops status` finds servers and aliases in agreement."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from mlops.serving.triton import connect
from mlops.stack.manager import free_port
from mlops.stack.services import Ports, client_env
from mlops.storage import sha256_file
from tests.conftest import REPO_ROOT, LocalStack, mlops_run
from tests.tiny_onnx import CONFIG, tiny_model

pytestmark = pytest.mark.e2e

PORT_FIELDS = tuple(f.name for f in dataclasses.fields(Ports))


def mlops(state: Path, ports: Ports, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "COLUMNS": "240",  # rich's tables: full model names in the output
        **{f"MLOPS_{name.upper()}_PORT": str(getattr(ports, name)) for name in PORT_FIELDS},
    }
    result = subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    print(result.stdout[-6000:])
    print(result.stderr[-3000:], file=sys.stderr)
    return result


def register_package(stack: LocalStack, model: str, tmp: Path) -> None:
    """A deployable ONNX version (tiny classifier, config.pbtxt, golden samples) with `deploy` on it."""
    import onnxruntime as ort
    from mlflow import MlflowClient

    from deployment.triton.serving import softmax
    from mlops.registry import mlflow_registry

    folder = tmp / "onnx"
    onnx_path = tiny_model(folder / "model.onnx")
    (folder / "config.pbtxt").write_text(CONFIG)
    inputs = np.random.default_rng(0).standard_normal((4, 3, 4, 4)).astype(np.float32)
    logits = ort.InferenceSession(str(onnx_path)).run(None, {"input": inputs})[0]
    probabilities = softmax(logits).astype(np.float32)
    (folder / "golden").mkdir()
    for name, array in (("inputs.npy", inputs), ("probabilities.npy", probabilities)):
        buffer = io.BytesIO()
        np.save(buffer, array)
        (folder / "golden" / name).write_bytes(buffer.getvalue())
    labels = {
        "input_name": "input",
        "output_name": "logits",
        "expected_index": probabilities.argmax(1).tolist(),
    }
    (folder / "golden" / "labels.json").write_text(json.dumps(labels))
    digest = sha256_file(onnx_path)
    client = MlflowClient(stack.mlflow_uri)
    run = client.create_run(client.create_experiment(f"restart-{uuid.uuid4().hex[:6]}"))
    client.log_artifacts(run.info.run_id, str(folder), "onnx")
    client.set_terminated(run.info.run_id)
    registry = mlflow_registry(stack.mlflow_uri)
    version = registry.register(
        model, f"{run.info.artifact_uri}/onnx", run.info.run_id, {"onnx_sha256": digest}
    )
    registry.move_alias(model, "deploy", version, expect_version=None, reason="restart test")


def ready_versions(grpc: str, model: str) -> list[str]:
    return sorted(
        e.version for e in connect(grpc).repository_index() if e.name == model and e.state == "READY"
    )


@pytest.mark.timeout(1200)
def test_down_then_up_serves_every_model_as_its_live_alias_says(tmp_path: Path) -> None:
    from mlops.registry import mlflow_registry

    ports = Ports(**{name: free_port() for name in PORT_FIELDS})
    state = tmp_path / "stack"
    stack = LocalStack(state, client_env(ports))
    grpc = f"127.0.0.1:{ports.triton_grpc}"
    model = f"restart-{uuid.uuid4().hex[:6]}-onnx"
    assert mlops(state, ports, "up", "--vllm-base", "none").returncode == 0
    try:
        register_package(stack, model, tmp_path)
        deployed = mlops_run(
            stack,
            "triton-deployment",
            tmp_path / "run-state",
            **{"onnx-model-name": model, "triton-endpoints": grpc, "ready-timeout-s": "60"},
        )
        print(deployed.stdout[-8000:])
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        registry = mlflow_registry(stack.mlflow_uri)
        assert registry.alias(model, "live") == "1"
        assert ready_versions(grpc, model) == ["1"]
        healthy = mlops(state, ports, "status")
        assert healthy.returncode == 0 and model in healthy.stdout and "DISAGREES" not in healthy.stdout

        assert mlops(state, ports, "down").returncode == 0
        restarted = mlops(state, ports, "up", "--vllm-base", "none")
        assert restarted.returncode == 0
        assert "triton: post-start step done" in restarted.stdout or ready_versions(grpc, model) == ["1"]

        # MLflow kept the alias, S3 kept the repository, and Triton serves what `live` says
        assert registry.alias(model, "live") == "1"
        assert ready_versions(grpc, model) == ["1"]
        answer = connect(grpc).infer(model, "1", {"input": np.zeros((1, 3, 4, 4), np.float32)})
        assert answer["logits"].shape == (1, 2)
        status = mlops(state, ports, "status")
        assert status.returncode == 0, status.stdout
        assert f"triton {model}" in status.stdout and "DISAGREES" not in status.stdout

        # a server that serves something else is flagged: unload it behind the registry's back
        connect(grpc).unload(model)
        drifted = mlops(state, ports, "status")
        assert drifted.returncode == 1 and "DISAGREES" in drifted.stdout
    finally:
        mlops(state, ports, "down", "--purge")
