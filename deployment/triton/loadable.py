"""Can a server load this ONNX file as its config.pbtxt describes it? Checked before publishing.

A file whose registered sha256 matches can still be unloadable (corrupt when it was exported and
registered, a graph ONNX Runtime cannot build, tensors named or typed otherwise than the config
says). Such a file must never reach the Triton repository: `check_loadable` runs the `onnx`
checker, builds an ONNX Runtime session and compares the session's inputs and outputs with the
config's (name, data type, dims with the batch axis when `max_batch_size` > 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.errors import BadInput

# Triton's DataType names -> ONNX Runtime's element type names
ORT_TYPES = {
    "TYPE_BOOL": "bool",
    "TYPE_UINT8": "uint8",
    "TYPE_UINT16": "uint16",
    "TYPE_UINT32": "uint32",
    "TYPE_UINT64": "uint64",
    "TYPE_INT8": "int8",
    "TYPE_INT16": "int16",
    "TYPE_INT32": "int32",
    "TYPE_INT64": "int64",
    "TYPE_FP16": "float16",
    "TYPE_FP32": "float",
    "TYPE_FP64": "double",
    "TYPE_STRING": "string",
    "TYPE_BF16": "bfloat16",
}


def parse_config(text: str) -> Any:
    """config.pbtxt as Triton's ModelConfig; BadInput when it does not parse."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise BadInput(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from exc
    return config


def tensor_mismatches(kind: str, declared: Any, actual: Any, batched: bool) -> list[str]:
    """Differences between the config's tensors and the session's (name, type, dims)."""
    from tritonclient.grpc import model_config_pb2

    found = {t.name: t for t in actual}
    problems = []
    wanted = {t.name for t in declared}
    if not wanted:  # Triton's ONNX backend completes a config that declares no tensors from the graph
        return []
    if wanted != set(found):
        return [f"{kind}s {sorted(found)} in the graph, {sorted(wanted)} in config.pbtxt"]
    for tensor in declared:
        session_tensor = found[tensor.name]
        type_name = model_config_pb2.DataType.Name(tensor.data_type)
        expected_type = f"tensor({ORT_TYPES.get(type_name, type_name)})"
        if session_tensor.type != expected_type:
            problems.append(f"{kind} {tensor.name!r} is {session_tensor.type}, config.pbtxt says {type_name}")
        dims = ([-1] if batched else []) + [int(d) for d in tensor.dims]
        shape = list(session_tensor.shape)
        if len(shape) != len(dims) or any(
            isinstance(have, int) and want > 0 and have != want
            for have, want in zip(shape, dims, strict=False)
        ):
            problems.append(f"{kind} {tensor.name!r} has shape {shape}, config.pbtxt says {dims}")
    return problems


def check_loadable(onnx_path: Path, config_text: str, what: str) -> None:
    """BadInput naming `what` unless the file passes the checker, loads in ONNX Runtime and matches the config."""
    import onnx
    import onnxruntime as ort

    config = parse_config(config_text)
    try:
        onnx.checker.check_model(str(onnx_path), full_check=True)
    except Exception as exc:  # the checker raises ValidationError, protobuf DecodeError, ...
        raise BadInput(
            f"{what}: model.onnx ({onnx_path.stat().st_size} bytes) fails the ONNX checker: "
            f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from exc
    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no public base class
        raise BadInput(
            f"{what}: model.onnx does not load in ONNX Runtime: {type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from exc
    batched = config.max_batch_size > 0
    problems = tensor_mismatches("input", config.input, session.get_inputs(), batched) + tensor_mismatches(
        "output", config.output, session.get_outputs(), batched
    )
    if problems:
        raise BadInput(f"{what}: model.onnx does not match its config.pbtxt: " + "; ".join(problems))
