"""training.resnet.onnx_export: export, graph checks, loading, ONNX Runtime sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops.errors import BadInput
from tests.unit.training.factories import ExportedResnet, save_onnx, tiny_onnx_graph
from training.resnet import onnx_export


def test_resnet_exports_with_a_dynamic_batch(exported_resnet: ExportedResnet) -> None:
    assert exported_resnet.exporter == "torchscript"  # opset 17 < 18: the TorchScript exporter goes first
    graph = onnx_export.load_onnx(exported_resnet.path)
    assert onnx_export.describe_problem(graph, exported_resnet.opset) is None
    first = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert first.dim_param and not first.dim_value


def test_describe_problem_accepts_the_promised_graph() -> None:
    assert onnx_export.describe_problem(tiny_onnx_graph(), 17) is None


@pytest.mark.parametrize(
    ("graph_args", "opset", "message"),
    [
        ({"input_name": "x"}, 17, "graph inputs ['x'] / outputs ['logits'], expected ['input'] / ['logits']"),
        ({"output_name": "probs"}, 17, "outputs ['probs']"),
        ({"opset": 16}, 17, "opset 16, expected 17"),
        ({}, 18, "opset 17, expected 18"),
        ({"batch": 1}, 17, "input has a fixed batch dimension 1"),
    ],
)
def test_describe_problem_names_what_is_wrong(
    graph_args: dict[str, object], opset: int, message: str
) -> None:
    problem = onnx_export.describe_problem(tiny_onnx_graph(**graph_args), opset)
    assert problem is not None
    assert message in problem


def test_load_onnx_on_a_truncated_file_is_bad_input(exported_resnet: ExportedResnet, tmp_path: Path) -> None:
    body = exported_resnet.path.read_bytes()
    truncated = tmp_path / "model.onnx"
    truncated.write_bytes(body[: len(body) // 2])
    with pytest.raises(BadInput, match=f"ONNX model {truncated} .* is corrupt or truncated"):
        onnx_export.load_onnx(truncated)


def test_load_onnx_on_garbage_and_missing_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(512))
    with pytest.raises(BadInput, match=r"garbage\.onnx"):
        onnx_export.load_onnx(garbage)
    with pytest.raises(BadInput, match="ONNX model not found"):
        onnx_export.load_onnx(tmp_path / "missing.onnx")


def test_load_onnx_runs_the_checker(tmp_path: Path) -> None:
    graph = tiny_onnx_graph()
    graph.graph.node[2].input[1] = "no_such_tensor"  # Gemm reads a tensor nobody produces
    with pytest.raises(BadInput, match="corrupt or truncated"):
        onnx_export.load_onnx(save_onnx(graph, tmp_path / "bad.onnx"))


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_ort_session_levels(level: str, tmp_path: Path) -> None:
    import numpy as np

    session = onnx_export.ort_session(
        save_onnx(tiny_onnx_graph(), tmp_path / "m.onnx"), threads=1, optimization=level
    )
    (logits,) = session.run(["logits"], {"input": np.zeros((3, 3, 8, 8), dtype=np.float32)})
    assert logits.shape == (3, 2)


def test_ort_session_unknown_level_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"'fast' is not one of \['all', 'basic', 'disable', 'extended'\]"):
        onnx_export.ort_session(tmp_path / "never-read.onnx", optimization="fast")


def test_ort_session_on_a_corrupt_file_is_bad_input(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(BadInput, match="ONNX Runtime cannot load"):
        onnx_export.ort_session(broken)


def test_export_that_no_exporter_manages_is_bad_input(tmp_path: Path) -> None:
    import torch

    class Unexportable(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("cannot trace me")

    path = tmp_path / "model.onnx"
    with pytest.raises(
        BadInput, match="ONNX export at opset 17 failed: torchscript: RuntimeError: cannot trace me"
    ):
        onnx_export.export_onnx(Unexportable(), 8, path, 17)
    assert not path.exists()
