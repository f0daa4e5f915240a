"""ONNX export, loading and ONNX Runtime sessions for the ResNet pipeline.

The exported graph has one input `input` (N, 3, H, W) float32 and one output `logits` (N, classes),
with a symbolic batch dimension so Triton can batch requests.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import BadInput

if TYPE_CHECKING:
    import onnx
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[io.StringIO]:
    """Capture the exporters' progress prints, warnings and logged tracebacks; they are reported on failure."""
    buffer = io.StringIO()
    loggers = [
        logging.getLogger(name) for name in ("onnxscript", "torch.onnx", "torch.export", "torch._dynamo")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def load_onnx(path: Path) -> onnx.ModelProto:
    """Load and check an ONNX file; a truncated or corrupt file is BadInput naming the file."""
    import onnx

    if not path.is_file():
        raise BadInput(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise BadInput(
            f"ONNX model {path} ({path.stat().st_size} bytes) is corrupt or truncated: "
            f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from exc
    if not model.graph.node:
        raise BadInput(f"ONNX model {path} has an empty graph")
    return model


def describe_problem(model: onnx.ModelProto, opset: int) -> str | None:
    """Why an exported graph is not the one we promise (names, opset, dynamic batch), or None."""
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        return f"graph inputs {inputs} / outputs {outputs}, expected [{INPUT_NAME!r}] / [{OUTPUT_NAME!r}]"
    if _opset(model) != opset:
        return f"opset {_opset(model)}, expected {opset}"
    for value in (model.graph.input[0], model.graph.output[0]):
        first = value.type.tensor_type.shape.dim[0]
        if first.HasField("dim_value") and first.dim_value > 0:
            return f"{value.name} has a fixed batch dimension {first.dim_value}"
    return None


DYNAMO_MIN_OPSET = 18


def _export_dynamo(model: nn.Module, example: Any, path: Path, opset: int) -> None:
    import torch

    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim(BATCH_DIM)},),
        opset_version=opset,
        external_data=False,
        verbose=False,
        report=False,
    )


def _export_torchscript(model: nn.Module, example: Any, path: Path, opset: int) -> None:
    import torch

    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
        opset_version=opset,
        do_constant_folding=True,
    )


def export_onnx(model: nn.Module, image_size: int, path: Path, opset: int) -> str:
    """Export `model` (eval mode) with a dynamic batch axis; returns the exporter that produced a clean graph.

    From opset 18 the dynamo exporter is tried first; below 18 (it cannot down-convert
    ResNet's ReduceMean) the TorchScript exporter goes first. The other is the fallback.
    """
    import torch

    model.eval()
    example = torch.zeros(2, 3, image_size, image_size)
    attempts: list[str] = []
    exporters = [("dynamo", _export_dynamo), ("torchscript", _export_torchscript)]
    if opset < DYNAMO_MIN_OPSET:
        exporters.reverse()
    for name, exporter in exporters:
        path.unlink(missing_ok=True)
        with _quiet_exporter() as captured:
            try:
                exporter(model, example, path, opset)
            except Exception as exc:
                attempts.append(f"{name}: {type(exc).__name__}: {str(exc).strip()[:300]}")
                continue
        try:
            problem = describe_problem(load_onnx(path), opset)
        except BadInput as exc:
            problem = str(exc)
        if problem is None:
            return name
        attempts.append(f"{name}: {problem}")
        print(f"ONNX export with the {name} exporter rejected: {problem}", flush=True)
        logging.getLogger(__name__).debug(captured.getvalue())
    path.unlink(missing_ok=True)
    raise BadInput(f"ONNX export at opset {opset} failed: " + " | ".join(attempts))


def ort_session(path: Path, threads: int = 0, optimization: str = "all") -> Any:
    """An ONNX Runtime CPU session; `optimization` is one of ORT's documented graph optimisation levels."""
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise BadInput(f"ORT graph optimisation {optimization!r} is not one of {sorted(levels)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    if threads > 0:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BadInput(
            f"ONNX Runtime cannot load {path}: {type(exc).__name__}: {str(exc).strip()[:300]}"
        ) from exc
