"""Triton's model configuration (config.pbtxt) as the stand-in reads it: parse, check, version policy.

The schema is Triton's own `ModelConfig` protobuf (from tritonclient), so a config that parses
here parses in NVIDIA Triton. Only ONNX models are served (platform `onnxruntime_onnx` or
backend `onnxruntime`); everything else is refused at load time with a message saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

ONNX_PLATFORM = "onnxruntime_onnx"
ONNX_BACKEND = "onnxruntime"
DEFAULT_MODEL_FILENAME = "model.onnx"

# ONNX Runtime's type strings -> Triton's wire datatypes (KServe V2 names).
ONNX_TO_TRITON = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(bfloat16)": "BF16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


class ConfigError(ValueError):
    """The configuration cannot be served as written (Triton refuses such a load too)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model graph: name, Triton datatype, shape (-1 = any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def config_type(datatype: str) -> str:
    """Wire datatype (`FP32`) -> config enum name (`TYPE_FP32`); BYTES is TYPE_STRING in configs."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def wire_type(config_data_type: str) -> str:
    """Config enum name (`TYPE_FP32`) -> wire datatype (`FP32`)."""
    return "BYTES" if config_data_type == "TYPE_STRING" else config_data_type.removeprefix("TYPE_")


def parse_config(text: str, model_name: str) -> Any:
    """config.pbtxt text -> Triton `ModelConfig`, with name, platform and version policy filled in.

    Raises ConfigError for text that does not parse, a name that is not the directory's,
    a non-ONNX platform and a `latest` policy of zero versions.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"config.pbtxt of '{model_name}' is not a Triton ModelConfig: {exc}") from exc
    return complete_config(config, model_name)


def config_from_json(text: str, model_name: str) -> Any:
    """A config given with a load request (`parameters.config`, JSON as Triton takes it)."""
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        json_format.Parse(text, config)
    except json_format.ParseError as exc:
        raise ConfigError(f"the config given for '{model_name}' is not a Triton ModelConfig: {exc}") from exc
    return complete_config(config, model_name)


def default_config(model_name: str) -> Any:
    """What Triton's auto-complete starts from when a model directory has no config.pbtxt."""
    from tritonclient.grpc import model_config_pb2

    return complete_config(model_config_pb2.ModelConfig(), model_name)


def complete_config(config: Any, model_name: str) -> Any:
    """Fill the fields Triton fills before loading; refuse what the stand-in cannot serve."""
    if config.name and config.name != model_name:
        raise ConfigError(
            f"model configuration name '{config.name}' does not match the model directory '{model_name}'"
        )
    config.name = model_name
    if config.platform and config.platform != ONNX_PLATFORM:
        raise ConfigError(
            f"platform '{config.platform}' of '{model_name}' is not served by the stand-in "
            f"(only {ONNX_PLATFORM}); NVIDIA Triton would load it"
        )
    if config.backend and config.backend != ONNX_BACKEND:
        raise ConfigError(
            f"backend '{config.backend}' of '{model_name}' is not served by the stand-in (only {ONNX_BACKEND})"
        )
    config.platform = ONNX_PLATFORM
    config.backend = ONNX_BACKEND
    if config.max_batch_size < 0:
        raise ConfigError(f"max_batch_size of '{model_name}' must be >= 0, got {config.max_batch_size}")
    policy = config.version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice is None:
        policy.latest.num_versions = 1
    elif choice == "latest" and policy.latest.num_versions < 1:
        raise ConfigError(f"version_policy latest of '{model_name}' must serve at least one version")
    if not config.default_model_filename:
        config.default_model_filename = DEFAULT_MODEL_FILENAME
    complete_instance_groups(config, model_name)
    optimization = config.optimization
    for pinned in (optimization.input_pinned_memory, optimization.output_pinned_memory):
        if not pinned.enable:
            pinned.enable = True  # Triton's default: enabled
    return config


def complete_instance_groups(config: Any, model_name: str) -> None:
    """Triton's normalisation on a machine without GPUs: one group `<model>_0` of one CPU instance when
    none is given; a given group gets its name, `KIND_CPU` for `KIND_AUTO`, and count 1 when unset."""
    from tritonclient.grpc import model_config_pb2

    group_type = model_config_pb2.ModelInstanceGroup
    if not config.instance_group:
        config.instance_group.add()
    for number, group in enumerate(config.instance_group):
        if group.kind == group_type.KIND_GPU:
            raise ConfigError(
                f"instance group {number} of '{model_name}' asks for a GPU; the stand-in has none"
            )
        if not group.name:
            group.name = f"{model_name}_{number}"
        if group.kind == group_type.KIND_AUTO:
            group.kind = group_type.KIND_CPU
        if group.count < 1:
            group.count = 1


def select_versions(policy: Any, available: Iterable[int]) -> list[int]:
    """The versions a `ModelVersionPolicy` serves out of the available (complete) ones, ascending.

    latest N: the N highest; all: every one; specific: the listed ones that exist (Triton skips
    a listed version whose directory is missing, with an error in its log).
    """
    versions = sorted({v for v in available if v > 0})
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return versions
    if choice == "specific":
        wanted = {int(v) for v in policy.specific.versions}
        return [v for v in versions if v in wanted]
    count = policy.latest.num_versions if choice == "latest" else 1
    return versions[-count:] if count > 0 else []


def policy_text(policy: Any) -> str:
    """A short human form of a version policy, for messages."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return "all"
    if choice == "specific":
        return f"specific {sorted(int(v) for v in policy.specific.versions)}"
    return f"latest {policy.latest.num_versions if choice == 'latest' else 1}"


def without_version_policy(config: Any) -> bytes:
    """The config's bytes with the policy cleared: equal bytes mean loaded versions can be kept."""
    copy = type(config)()
    copy.CopyFrom(config)
    copy.ClearField("version_policy")
    return bytes(copy.SerializeToString(deterministic=True))


def fill_io(config: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
    """Check the config's inputs/outputs against the graph, and add those it leaves out (auto-complete).

    Declared tensors must exist in the graph with the same datatype; with max_batch_size > 0
    the graph's first dimension is the batch and is not part of `dims`.
    """
    from tritonclient.grpc import model_config_pb2

    batched = config.max_batch_size > 0
    for declared, graph, kind in ((config.input, inputs, "input"), (config.output, outputs, "output")):
        by_name = {t.name: t for t in graph}
        for tensor in declared:
            if tensor.name not in by_name:
                raise ConfigError(
                    f"unable to load model '{config.name}', configuration expects {kind} '{tensor.name}' "
                    f"but the model has {sorted(by_name)}"
                )
            expected = config_type(by_name[tensor.name].datatype)
            actual = model_config_pb2.DataType.Name(tensor.data_type)
            if actual != expected:
                raise ConfigError(
                    f"unable to load model '{config.name}', configuration expects datatype {actual} for "
                    f"{kind} '{tensor.name}', model provides {expected}"
                )
        present = {t.name for t in declared}
        for spec in graph:
            if spec.name in present:
                continue
            added = declared.add()
            added.name = spec.name
            added.data_type = model_config_pb2.DataType.Value(config_type(spec.datatype))
            added.dims.extend(spec.shape[1:] if batched and spec.shape else spec.shape)


_INT64_TYPES = {3, 4, 6, 16, 18}  # FieldDescriptor.TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64


def to_json_dict(message: Any) -> dict[str, Any]:
    """A protobuf message as Triton's HTTP API writes it: snake_case names, 64-bit integers as numbers.

    (protobuf's own JSON writes int64 as strings: `dims: ["3", "32"]`.)
    """
    from google.protobuf import json_format

    data: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return _numbers(message.DESCRIPTOR, data)


def _numbers(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            continue
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if field.message_type is not None:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                target = entry.fields_by_name["value"]
                if target.message_type is not None:
                    data[key] = {k: _numbers(target.message_type, v) for k, v in value.items()}
                elif target.type in _INT64_TYPES:
                    data[key] = {k: int(v) for k, v in value.items()}
            elif repeated:
                data[key] = [_numbers(entry, v) for v in value]
            else:
                data[key] = _numbers(entry, value)
        elif field.type in _INT64_TYPES:
            data[key] = [int(v) for v in value] if repeated else int(value)
    return data
