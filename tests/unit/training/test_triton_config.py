"""training.resnet.triton_config: config.pbtxt from the graph, checked against Triton's ModelConfig."""

from __future__ import annotations

import pytest

from mlops.errors import BadInput
from tests.unit.training.factories import ExportedResnet, tiny_onnx_graph
from training.resnet import triton_config
from training.resnet.onnx_export import load_onnx


def test_config_of_the_exported_resnet(exported_resnet: ExportedResnet) -> None:
    from tritonclient.grpc import model_config_pb2

    graph = load_onnx(exported_resnet.path)
    text = triton_config.render_config(graph, "resnet18-onnx", max_batch_size=8, dynamic_batching=True)
    config = triton_config.parse_config(text)
    assert isinstance(config, model_config_pb2.ModelConfig)
    assert (config.name, config.platform, config.backend) == (
        "resnet18-onnx",
        "onnxruntime_onnx",
        "onnxruntime",
    )
    assert config.max_batch_size == 8
    assert config.HasField("dynamic_batching")
    (tensor_in,) = config.input
    (tensor_out,) = config.output
    assert (tensor_in.name, list(tensor_in.dims), tensor_in.data_type) == (
        "input",
        [3, exported_resnet.side, exported_resnet.side],
        model_config_pb2.TYPE_FP32,
    )
    assert (tensor_out.name, list(tensor_out.dims), tensor_out.data_type) == (
        "logits",
        [2],
        model_config_pb2.TYPE_FP32,
    )


def test_text_is_stable_and_readable() -> None:
    text = triton_config.render_config(tiny_onnx_graph(classes=3), "tiny", 4)
    assert text == (
        'name: "tiny"\n'
        'platform: "onnxruntime_onnx"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 4\n"
        'input [\n  {\n    name: "input"\n    data_type: TYPE_FP32\n    dims: [ 3, 8, 8 ]\n  }\n]\n'
        'output [\n  {\n    name: "logits"\n    data_type: TYPE_FP32\n    dims: [ 3 ]\n  }\n]\n'
        "dynamic_batching { }\n"
    )


def test_without_batching_the_batch_dim_stays_and_no_dynamic_batching() -> None:
    text = triton_config.render_config(tiny_onnx_graph(), "tiny", max_batch_size=0, dynamic_batching=True)
    config = triton_config.parse_config(text)
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [-1, 3, 8, 8]
    assert list(config.output[0].dims) == [-1, 2]


def test_dynamic_batching_can_be_left_out() -> None:
    text = triton_config.render_config(tiny_onnx_graph(), "tiny", max_batch_size=16, dynamic_batching=False)
    assert "dynamic_batching" not in text
    assert triton_config.parse_config(text).max_batch_size == 16


def test_half_precision_graph_maps_to_fp16() -> None:
    import numpy as np
    import onnx
    from tritonclient.grpc import model_config_pb2

    graph = tiny_onnx_graph(
        elem_type=onnx.TensorProto.FLOAT16,
        weights=np.zeros((2, 3), dtype=np.float16),
        bias=np.zeros(2, dtype=np.float16),
    )
    config = triton_config.parse_config(triton_config.render_config(graph, "half"))
    assert [t.data_type for t in (*config.input, *config.output)] == [model_config_pb2.TYPE_FP16] * 2


def test_type_triton_cannot_carry_is_bad_input() -> None:
    import numpy as np
    import onnx

    graph = tiny_onnx_graph(
        elem_type=onnx.TensorProto.COMPLEX64,
        weights=np.zeros((2, 3), dtype=np.complex64),
        bias=np.zeros(2, dtype=np.complex64),
    )
    with pytest.raises(BadInput, match="has ONNX type COMPLEX64, which Triton cannot carry"):
        triton_config.render_config(graph, "complex")


def test_fixed_batch_graph_cannot_be_batched() -> None:
    with pytest.raises(
        BadInput,
        match="input 'input' has shape \\[1, 3, 8, 8\\]: its first dimension must be a dynamic batch",
    ):
        triton_config.render_config(tiny_onnx_graph(batch=1), "tiny", max_batch_size=8)
    text = triton_config.render_config(tiny_onnx_graph(batch=1), "tiny", max_batch_size=0)
    assert list(triton_config.parse_config(text).input[0].dims) == [1, 3, 8, 8]


@pytest.mark.parametrize("name", ["", 'quo"te', "a/b"])
def test_unusable_model_names(name: str) -> None:
    with pytest.raises(BadInput, match="Triton model name"):
        triton_config.render_config(tiny_onnx_graph(), name)


def test_negative_max_batch_size() -> None:
    with pytest.raises(BadInput, match="max_batch_size -1 must be >= 0"):
        triton_config.render_config(tiny_onnx_graph(), "tiny", max_batch_size=-1)


def test_text_that_does_not_parse() -> None:
    with pytest.raises(BadInput, match="does not parse as a Triton ModelConfig"):
        triton_config.parse_config('name: "x"\nmax_batch_sise: 3\n')


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (('name: "tiny"', 'name: "other"'), "name 'other' != 'tiny'"),
        (("max_batch_size: 4", "max_batch_size: 8"), "max_batch_size 8 != 4"),
        (("dynamic_batching { }\n", ""), "dynamic_batching does not match"),
        (('name: "logits"', 'name: "probs"'), "outputs [TensorSpec(name='probs'"),
        (
            ("dims: [ 3, 8, 8 ]", "dims: [ 3, 16, 16 ]"),
            "inputs [TensorSpec(name='input', data_type='TYPE_FP32', dims=(3, 16, 16))]",
        ),
        (("data_type: TYPE_FP32\n    dims: [ 2 ]", "data_type: TYPE_FP16\n    dims: [ 2 ]"), "outputs"),
        (('platform: "onnxruntime_onnx"', 'platform: "tensorrt_plan"'), "platform/backend 'tensorrt_plan'"),
    ],
)
def test_validate_rejects_a_config_that_does_not_match(edit: tuple[str, str], problem: str) -> None:
    graph = tiny_onnx_graph()
    text = triton_config.render_config(graph, "tiny", 4)
    assert edit[0] in text
    with pytest.raises(BadInput, match=r"config\.pbtxt does not match the ONNX graph") as caught:
        triton_config.validate_config(text.replace(edit[0], edit[1]), graph, "tiny", 4, True)
    assert problem in str(caught.value)


def test_validate_rejects_a_config_for_another_graph() -> None:
    text = triton_config.render_config(tiny_onnx_graph(classes=2), "tiny", 4)
    with pytest.raises(BadInput, match="outputs"):
        triton_config.validate_config(text, tiny_onnx_graph(classes=10), "tiny", 4, True)
