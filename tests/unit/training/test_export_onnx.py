"""training.resnet.export_onnx: the smoke test of an export and the export run's failure handling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.errors import BadInput
from tests.unit.training.factories import ExportedResnet, save_onnx, tiny_onnx_graph
from training.resnet import export_onnx


def test_smoke_test_runs_two_batch_sizes(exported_resnet: ExportedResnet) -> None:
    export_onnx.smoke_test(exported_resnet.path, exported_resnet.side, num_classes=2)
    with pytest.raises(BadInput, match=r"gives shape \(1, 2\).*expected \(1, 5\)"):
        export_onnx.smoke_test(exported_resnet.path, exported_resnet.side, num_classes=5)


class RecordingClient:
    """The MlflowClient calls log_export_run makes, recorded; `fail_on` makes one of them raise."""

    def __init__(self, fail_on: str = "") -> None:
        self.fail_on = fail_on
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.run_tags: dict[str, str] = {}

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name == self.fail_on:
            raise RuntimeError(f"{name} failed")

    def get_experiment_by_name(self, name: str) -> None:
        self._call("get_experiment_by_name", name)

    def create_experiment(self, name: str) -> str:
        self._call("create_experiment", name)
        return "7"

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str) -> Any:
        from types import SimpleNamespace

        self._call("create_run", experiment_id, run_name)
        self.run_tags = tags
        return SimpleNamespace(info=SimpleNamespace(run_id="run-1"))

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self._call("log_param", run_id, key, value)

    def log_metric(self, run_id: str, key: str, value: float) -> None:
        self._call("log_metric", run_id, key, value)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        self._call("log_artifacts", run_id, local_dir, artifact_path)

    def set_terminated(self, run_id: str, status: str) -> None:
        self._call("set_terminated", run_id, status)


def _log(client: RecordingClient, tmp_path: Path) -> str:
    graph = tiny_onnx_graph()
    save_onnx(graph, tmp_path / "onnx" / "model.onnx")
    cfg = export_onnx.Config(model_name="m", experiment="exp")
    return export_onnx.log_export_run(
        client, cfg, "3", "src-run", "d" * 64, "torchscript", graph, tmp_path / "onnx"
    )


def test_export_run_carries_its_provenance(tmp_path: Path) -> None:
    client = RecordingClient()
    assert _log(client, tmp_path) == "run-1"
    assert client.run_tags["source_version"] == "3"
    assert client.run_tags["onnx_sha256"] == "d" * 64
    names = [name for name, _ in client.calls]
    assert names[:3] == ["get_experiment_by_name", "create_experiment", "create_run"]
    params = {args[1]: args[2] for name, args in client.calls if name == "log_param"}
    assert (params["opset"], params["exporter"], params["onnx_ir_version"]) == (17, "torchscript", 8)
    assert ("log_artifacts", ("run-1", str(tmp_path / "onnx"), "onnx")) in client.calls
    assert "set_terminated" not in names  # the caller finishes the run after its last metric


def test_a_failed_upload_marks_the_export_run_failed(tmp_path: Path) -> None:
    client = RecordingClient(fail_on="log_artifacts")
    with pytest.raises(RuntimeError, match="log_artifacts failed"):
        _log(client, tmp_path)
    assert client.calls[-1] == ("set_terminated", ("run-1", "FAILED"))
