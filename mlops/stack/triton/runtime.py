"""One loaded model version: an ONNX Runtime session checked against its Triton config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlops.stack.triton.errors import Code, ServingError
from mlops.stack.triton.model_config import ONNX_TO_TRITON, ConfigError, TensorSpec, fill_io, wire_type


def _spec(node: Any) -> TensorSpec:
    datatype = ONNX_TO_TRITON.get(node.type)
    if datatype is None:
        raise ConfigError(f"tensor '{node.name}' has ONNX type {node.type}, which Triton cannot carry")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or []))
    return TensorSpec(node.name, datatype, shape)


class OnnxModel:
    """A version of a model, ready to infer. Thread-safe: ONNX Runtime sessions allow concurrent runs."""

    def __init__(self, name: str, version: int, config: Any, model_path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ConfigError(f"onnxruntime cannot load {model_path.name}: {exc}") from exc
        self.name = name
        self.version = version
        self.inputs = [_spec(node) for node in self.session.get_inputs()]
        self.outputs = [_spec(node) for node in self.session.get_outputs()]
        fill_io(config, self.inputs, self.outputs)
        self.config = config
        self._inputs = {t.name: t for t in self.inputs}
        self._outputs = {t.name: t for t in self.outputs}

    def metadata(self, versions: Sequence[int]) -> dict[str, Any]:
        """KServe V2 model metadata (the batch dimension is -1 when the config batches)."""
        from tritonclient.grpc import model_config_pb2

        batched = self.config.max_batch_size > 0

        def tensors(declared: Any) -> list[dict[str, Any]]:
            return [
                {
                    "name": t.name,
                    "datatype": wire_type(model_config_pb2.DataType.Name(t.data_type)),
                    "shape": ([-1] if batched else []) + [int(d) for d in t.dims],
                }
                for t in declared
            ]

        return {
            "name": self.name,
            "versions": [str(v) for v in versions],
            "platform": self.config.platform,
            "inputs": tensors(self.config.input),
            "outputs": tensors(self.config.output),
        }

    def batch_size(self, inputs: Mapping[str, np.ndarray]) -> int:
        """The request's batch size: the first dimension when the config batches, else 1."""
        if self.config.max_batch_size <= 0 or not inputs:
            return 1
        first = next(iter(inputs.values()))
        return int(first.shape[0]) if first.ndim else 1

    def _check_shapes(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Shapes against the config's dims (-1 = any), batch dimension first when the config batches."""
        batched = self.config.max_batch_size > 0
        for declared in self.config.input:
            array = inputs.get(declared.name)
            if array is None:
                continue
            expected = ([-1] if batched else []) + [int(d) for d in declared.dims]
            shape = list(array.shape)
            if len(shape) != len(expected) or any(
                e != -1 and e != s for e, s in zip(expected, shape, strict=True)
            ):
                raise ServingError(
                    Code.INVALID_ARG,
                    f"unexpected shape for input '{declared.name}' for model '{self.name}'. "
                    f"Expected {expected}, got {shape}",
                )

    def infer(
        self, inputs: Mapping[str, np.ndarray], requested: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Run the graph; `requested` names the outputs wanted (None or empty: all)."""
        for name, array in inputs.items():
            spec = self._inputs.get(name)
            if spec is None:
                raise ServingError(
                    Code.INVALID_ARG, f"unexpected inference input '{name}' for model '{self.name}'"
                )
            datatype = "BYTES" if array.dtype == np.object_ else _wire(array)
            if datatype != spec.datatype:
                raise ServingError(
                    Code.INVALID_ARG,
                    f"inference input '{name}' data-type is '{datatype}', but model '{self.name}' "
                    f"expects '{spec.datatype}'",
                )
        missing = sorted(set(self._inputs) - set(inputs))
        if missing:
            raise ServingError(
                Code.INVALID_ARG,
                f"expected {len(self._inputs)} inputs but got {len(inputs)} inputs for model "
                f"'{self.name}'; missing {missing}",
            )
        self._check_shapes(inputs)
        limit = self.config.max_batch_size
        if limit > 0:
            for name, array in inputs.items():
                if array.ndim == 0 or array.shape[0] > limit:
                    raise ServingError(
                        Code.INVALID_ARG,
                        f"inference request batch-size must be <= {limit} for '{self.name}' "
                        f"(input '{name}' has shape {list(array.shape)})",
                    )
        names = list(requested) if requested else [t.name for t in self.outputs]
        for name in names:
            if name not in self._outputs:
                raise ServingError(
                    Code.INVALID_ARG, f"unexpected inference output '{name}' for model '{self.name}'"
                )
        feed = {name: _for_onnx(array) for name, array in inputs.items()}
        try:
            results = self.session.run(names, feed)
        except Exception as exc:
            kind = type(exc).__name__
            code = Code.INVALID_ARG if kind in ("InvalidArgument", "InvalidShape") else Code.INTERNAL
            raise ServingError(code, f"onnx runtime error for model '{self.name}': {exc}") from exc
        return {name: np.asarray(value) for name, value in zip(names, results, strict=True)}


def _wire(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return str(np_to_triton_dtype(array.dtype))


def _for_onnx(array: np.ndarray) -> np.ndarray:
    """ONNX Runtime takes string tensors as str objects; BYTES arrive as bytes."""
    if array.dtype != np.object_:
        return array
    flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    return np.array(flat, dtype=np.object_).reshape(array.shape)
