"""Fetching a registered ONNX package from the real MLflow server: what is refused, and why."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from deployment.triton.package import fetch_package, load_golden
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.storage import sha256_file
from tests.conftest import LocalStack
from tests.tiny_onnx import CONFIG, tiny_model

pytestmark = pytest.mark.integration


def _register(local_stack: LocalStack, files: dict[str, bytes], tags: dict[str, str]) -> tuple[Registry, str]:
    """A version of a fresh model whose source is a run's `onnx/` folder holding `files`."""
    import tempfile

    client = MlflowClient(local_stack.mlflow_uri)
    run = client.create_run(client.create_experiment(f"pkg-{uuid.uuid4().hex[:8]}"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        client.log_artifacts(run.info.run_id, tmp, "onnx")
    client.set_terminated(run.info.run_id)
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = f"pkg-{uuid.uuid4().hex[:8]}"
    registry.register(model, f"{run.info.artifact_uri}/onnx", run.info.run_id, tags)
    return registry, model


def _golden() -> dict[str, bytes]:
    import io

    import numpy as np

    def npy(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    labels = {"input_name": "input", "output_name": "logits", "expected_index": [0]}
    return {
        "golden/inputs.npy": npy(np.zeros((1, 3, 4, 4), np.float32)),
        "golden/probabilities.npy": npy(np.ones((1, 2), np.float32) / 2),
        "golden/labels.json": json.dumps(labels).encode(),
    }


def test_a_complete_package_is_fetched_and_verified(local_stack: LocalStack, tmp_path: Path) -> None:
    model_bytes = tiny_model(tmp_path / "m").read_bytes()
    digest = sha256_file(tmp_path / "m")
    files = {
        "model.onnx": model_bytes,
        "config.pbtxt": CONFIG.encode(),
        "meta.json": json.dumps({"onnx_sha256": digest}).encode(),
    }
    registry, model = _register(local_stack, {**files, **_golden()}, {"onnx_sha256": digest})
    package = fetch_package(registry, model, "1", tmp_path / "fetched")
    assert package.sha256 == digest and package.onnx.read_bytes() == model_bytes
    assert package.triton_model_name == model
    inputs, probabilities, labels = load_golden(package.golden)
    assert (
        inputs.shape == (1, 3, 4, 4) and probabilities.shape == (1, 2) and labels["output_name"] == "logits"
    )


def test_an_artifact_without_onnx_is_bad_input(local_stack: LocalStack, tmp_path: Path) -> None:
    registry, model = _register(local_stack, {"config.pbtxt": b'name: "x"'}, {"onnx_sha256": "0" * 64})
    with pytest.raises(BadInput, match=r"has no model.onnx in its artifacts \(found: config.pbtxt\)"):
        fetch_package(registry, model, "1", tmp_path / "fetched")


def test_a_checksum_mismatch_is_bad_input(local_stack: LocalStack, tmp_path: Path) -> None:
    files = {"model.onnx": b"abc", "config.pbtxt": b'name: "x"'}
    registry, model = _register(local_stack, files, {"onnx_sha256": "0" * 64})
    with pytest.raises(BadInput, match="checksum mismatch"):
        fetch_package(registry, model, "1", tmp_path / "fetched")


def test_a_version_without_a_recorded_checksum_is_refused(local_stack: LocalStack, tmp_path: Path) -> None:
    registry, model = _register(local_stack, {"model.onnx": b"abc", "config.pbtxt": b"x"}, {})
    with pytest.raises(BadInput, match="records no sha256"):
        fetch_package(registry, model, "1", tmp_path / "fetched")


def test_missing_golden_samples_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="golden samples missing"):
        load_golden(tmp_path)


def _broken_but_registered(local_stack: LocalStack, tmp_path: Path) -> tuple[Registry, str, str]:
    """A version whose registered sha256 matches a model.onnx that no server can load (truncated)."""
    data = tiny_model(tmp_path / "m").read_bytes()
    broken = data[: len(data) // 2]
    (tmp_path / "broken").write_bytes(broken)
    digest = sha256_file(tmp_path / "broken")
    files = {"model.onnx": broken, "config.pbtxt": CONFIG.encode(), **_golden()}
    registry, model = _register(local_stack, files, {"onnx_sha256": digest})
    registry.move_alias(model, "deploy", "1", expect_version=None, reason="test")
    return registry, model, digest


@pytest.mark.parametrize("step", ["fetch", "publish"])
def test_an_unloadable_onnx_with_a_matching_checksum_is_refused_before_publishing(
    local_stack: LocalStack, tmp_path: Path, step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """fetch and publish: exit 2 naming the problem; nothing in the repository; no alias moved."""
    from deployment.triton import fetch, publish
    from mlops.storage import S3Store, S3Url

    registry, model, digest = _broken_but_registered(local_stack, tmp_path)
    store = S3Store()
    store.ensure_bucket("it-models")
    root = S3Url("it-models", f"loadable-{uuid.uuid4().hex[:6]}")
    args = ["--model-name", model, "--model-repository", str(root)]
    if step == "fetch":
        code = fetch.main(args)
    else:
        code = publish.main([*args, "--version", "1", "--sha256", digest])
    assert code == 2
    err = capsys.readouterr().err
    assert f"bad input: {model} v1: model.onnx" in err and "fails the ONNX checker" in err, err
    assert store.list(root) == []  # nothing staged, copied or committed
    assert registry.alias(model, "deploy") == "1"
    assert registry.alias(model, "live") is None
