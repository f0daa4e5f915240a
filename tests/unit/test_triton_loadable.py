"""An ONNX file is checked as a server would load it before it may enter the Triton repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployment.triton.loadable import check_loadable
from mlops.errors import BadInput
from tests.tiny_onnx import CONFIG, tiny_model


def test_a_loadable_model_that_matches_its_config_passes(tmp_path: Path) -> None:
    check_loadable(tiny_model(tmp_path / "model.onnx"), CONFIG, "tiny v1")


def test_a_truncated_file_fails_the_checker(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "model.onnx")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadInput, match=r"tiny v1: model.onnx \(\d+ bytes\) fails the ONNX checker"):
        check_loadable(path, CONFIG, "tiny v1")


def test_a_graph_onnx_runtime_cannot_build_is_refused(tmp_path: Path) -> None:
    # valid ONNX (ops of a custom domain are not checked) that no ONNX Runtime kernel implements
    path = tiny_model(tmp_path / "model.onnx", op="Frobnicate", domain="com.example")
    with pytest.raises(BadInput, match=r"tiny v1: model\.onnx does not load in ONNX Runtime"):
        check_loadable(path, CONFIG, "tiny v1")


def test_tensors_other_than_the_config_says_are_refused(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "model.onnx")
    renamed = CONFIG.replace('name: "input"', 'name: "images"')
    with pytest.raises(BadInput, match=r"inputs \['input'\] in the graph, \['images'\] in config.pbtxt"):
        check_loadable(path, renamed, "tiny v1")
    retyped = CONFIG.replace(
        'output { name: "logits" data_type: TYPE_FP32', 'output { name: "logits" data_type: TYPE_INT64'
    )
    with pytest.raises(BadInput, match=r"output 'logits' is tensor\(float\), config.pbtxt says TYPE_INT64"):
        check_loadable(path, retyped, "tiny v1")
    reshaped = CONFIG.replace("dims: [2]", "dims: [10]")
    with pytest.raises(BadInput, match=r"output 'logits' has shape \['N', 2\], config.pbtxt says \[-1, 10\]"):
        check_loadable(path, reshaped, "tiny v1")


def test_a_config_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not parse as Triton's ModelConfig"):
        check_loadable(tiny_model(tmp_path / "model.onnx"), "max_batch_size: eight", "tiny v1")


def test_a_config_without_tensors_is_completed_from_the_graph_as_triton_does(tmp_path: Path) -> None:
    check_loadable(tiny_model(tmp_path / "model.onnx"), 'name: "tiny"\nmax_batch_size: 8\n', "tiny v1")
