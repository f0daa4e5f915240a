"""Triton `config.pbtxt` generated from an ONNX graph, and its validation.

Names, element types and shapes are read from the graph, never typed by hand, so the
config cannot drift from the model. The text is checked by parsing it into Triton's own
`ModelConfig` protobuf and comparing it field by field with the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.errors import BadInput

if TYPE_CHECKING:
    import onnx

# ONNX TensorProto element type name -> Triton data type
ONNX_TO_TRITON = {
    "FLOAT": "TYPE_FP32",
    "FLOAT16": "TYPE_FP16",
    "BFLOAT16": "TYPE_BF16",
    "DOUBLE": "TYPE_FP64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "BOOL": "TYPE_BOOL",
    "STRING": "TYPE_STRING",
}
PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as Triton sees it: dims exclude the batch dim when batching."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def _specs(values: Any, initializers: set[str], batching: bool, kind: str) -> list[TensorSpec]:
    import onnx

    specs = []
    for value in values:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise BadInput(
                f"graph {kind} {value.name!r} is not a tensor; Triton's ONNX backend needs tensors"
            )
        tensor = value.type.tensor_type
        onnx_type = onnx.TensorProto.DataType.Name(tensor.elem_type)
        if onnx_type not in ONNX_TO_TRITON:
            raise BadInput(
                f"graph {kind} {value.name!r} has ONNX type {onnx_type}, which Triton cannot carry"
            )
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
        if batching:
            if not dims or dims[0] != -1:
                raise BadInput(
                    f"graph {kind} {value.name!r} has shape {dims}: its first dimension must be a dynamic batch "
                    "dimension when max_batch_size > 0 (export with a dynamic batch axis, or use max_batch_size 0)"
                )
            dims = dims[1:]
        specs.append(TensorSpec(value.name, ONNX_TO_TRITON[onnx_type], tuple(dims)))
    return specs


def graph_specs(model: onnx.ModelProto, max_batch_size: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) of the graph in Triton terms."""
    if max_batch_size < 0:
        raise BadInput(f"max_batch_size {max_batch_size} must be >= 0")
    initializers = {t.name for t in model.graph.initializer}
    batching = max_batch_size > 0
    inputs = _specs(model.graph.input, initializers, batching, "input")
    outputs = _specs(model.graph.output, set(), batching, "output")
    if not inputs or not outputs:
        raise BadInput("the ONNX graph has no inputs or no outputs")
    return inputs, outputs


def _tensor_block(specs: list[TensorSpec]) -> str:
    blocks = []
    for spec in specs:
        dims = ", ".join(str(d) for d in spec.dims)
        blocks.append(
            f'  {{\n    name: "{spec.name}"\n    data_type: {spec.data_type}\n    dims: [ {dims} ]\n  }}'
        )
    return ",\n".join(blocks)


def render_config(
    model: onnx.ModelProto, name: str, max_batch_size: int = 32, dynamic_batching: bool = True
) -> str:
    """The config.pbtxt text for serving `model` as Triton model `name`."""
    if not name or '"' in name or "/" in name:
        raise BadInput(f"Triton model name {name!r} is empty or contains '\"' or '/'")
    inputs, outputs = graph_specs(model, max_batch_size)
    lines = [
        f'name: "{name}"',
        f'platform: "{PLATFORM}"',
        f'backend: "{BACKEND}"',
        f"max_batch_size: {max_batch_size}",
        f"input [\n{_tensor_block(inputs)}\n]",
        f"output [\n{_tensor_block(outputs)}\n]",
    ]
    if dynamic_batching and max_batch_size > 0:
        lines.append("dynamic_batching { }")
    text = "\n".join(lines) + "\n"
    validate_config(text, model, name, max_batch_size, dynamic_batching)
    return text


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text into Triton's ModelConfig protobuf; BadInput if it does not parse."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise BadInput(f"config.pbtxt does not parse as a Triton ModelConfig: {exc}") from exc
    return config


def validate_config(
    text: str, model: onnx.ModelProto, name: str, max_batch_size: int, dynamic_batching: bool
) -> Any:
    """Parse `text` and check it describes `model` exactly; returns the ModelConfig."""
    from tritonclient.grpc import model_config_pb2

    config = parse_config(text)
    inputs, outputs = graph_specs(model, max_batch_size)
    problems = []
    if config.name != name:
        problems.append(f"name {config.name!r} != {name!r}")
    if config.platform != PLATFORM or config.backend != BACKEND:
        problems.append(f"platform/backend {config.platform!r}/{config.backend!r}")
    if config.max_batch_size != max_batch_size:
        problems.append(f"max_batch_size {config.max_batch_size} != {max_batch_size}")
    if config.HasField("dynamic_batching") != (dynamic_batching and max_batch_size > 0):
        problems.append("dynamic_batching does not match the request")
    for kind, declared, expected in (("input", config.input, inputs), ("output", config.output, outputs)):
        seen = [
            TensorSpec(t.name, model_config_pb2.DataType.Name(t.data_type), tuple(int(d) for d in t.dims))
            for t in declared
        ]
        if seen != expected:
            problems.append(f"{kind}s {seen} != graph {expected}")
    if problems:
        raise BadInput("config.pbtxt does not match the ONNX graph: " + "; ".join(problems))
    return config
