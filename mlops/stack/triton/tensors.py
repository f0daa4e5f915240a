"""Tensors on the wire <-> numpy: raw bytes (gRPC raw contents, HTTP binary extension), typed gRPC
contents and JSON `data`, for every datatype Triton names.

BYTES elements travel as Triton serialises them: each one a 4-byte little-endian length and
its bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlops.stack.triton.errors import Code, ServingError

# gRPC InferTensorContents field holding each datatype when a client sends typed contents
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def numpy_dtype(datatype: str, name: str) -> Any:
    from tritonclient.utils import triton_to_np_dtype

    dtype = triton_to_np_dtype(datatype)
    if dtype is None:
        raise ServingError(Code.INVALID_ARG, f"invalid datatype '{datatype}' of tensor '{name}'")
    return dtype


def element_count(shape: Sequence[int], name: str) -> int:
    if any(int(d) < 0 for d in shape):
        raise ServingError(
            Code.INVALID_ARG, f"tensor '{name}' has a negative dimension in shape {list(shape)}"
        )
    return math.prod(int(d) for d in shape)


def from_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> np.ndarray:
    """Raw little-endian bytes -> array of `shape`."""
    count = element_count(shape, name)
    if datatype == "BYTES":
        from tritonclient.utils import deserialize_bytes_tensor

        try:
            values = deserialize_bytes_tensor(raw) if raw else np.empty(0, dtype=np.object_)
        except Exception as exc:
            raise ServingError(
                Code.INVALID_ARG, f"BYTES input '{name}' is not length-prefixed elements: {exc}"
            ) from exc
        if values.size != count:
            raise ServingError(
                Code.INVALID_ARG,
                f"input '{name}' holds {values.size} BYTES elements, shape {list(shape)} needs {count}",
            )
        return values.reshape(tuple(shape))
    dtype = np.dtype(numpy_dtype(datatype, name))
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise ServingError(
            Code.INVALID_ARG,
            f"unexpected total byte size {len(raw)} for input '{name}', expecting {expected}",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def to_raw(array: np.ndarray) -> bytes:
    """Array -> raw bytes as Triton sends them (BYTES length-prefixed)."""
    if array.dtype == np.object_ or array.dtype.kind in ("S", "U"):
        from tritonclient.utils import serialize_byte_tensor

        serialized = serialize_byte_tensor(np.asarray(array, dtype=np.object_))
        # a 0-d object array holding the bytes (empty array when there are no elements)
        return bytes(serialized.item()) if serialized.size else b""
    return bytes(np.ascontiguousarray(array).tobytes())


def wire_datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    if array.dtype.kind in ("S", "U", "O"):
        return "BYTES"
    datatype = np_to_triton_dtype(array.dtype)
    if datatype is None:
        raise ServingError(Code.INTERNAL, f"output dtype {array.dtype} has no Triton datatype")
    return str(datatype)


def from_contents(name: str, datatype: str, shape: Sequence[int], contents: Any) -> np.ndarray:
    """Typed gRPC `InferTensorContents` -> array."""
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise ServingError(
            Code.INVALID_ARG, f"datatype {datatype} of input '{name}' must be sent as raw_input_contents"
        )
    values = list(getattr(contents, field))
    count = element_count(shape, name)
    if len(values) != count:
        raise ServingError(
            Code.INVALID_ARG,
            f"unexpected number of elements {len(values)} for input '{name}', shape {list(shape)} needs {count}",
        )
    dtype = np.object_ if datatype == "BYTES" else numpy_dtype(datatype, name)
    return np.array(values, dtype=dtype).reshape(tuple(shape))


def from_json(name: str, datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """JSON `data` (flat or nested, row-major) -> array."""
    count = element_count(shape, name)
    if datatype == "BYTES":
        flat = list(np.asarray(data, dtype=np.object_).reshape(-1)) if count else []
        encoded = [v.encode() if isinstance(v, str) else bytes(v) for v in flat]
        array = np.array(encoded, dtype=np.object_)
    else:
        try:
            array = np.asarray(data, dtype=numpy_dtype(datatype, name)).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ServingError(Code.INVALID_ARG, f"input '{name}' data is not {datatype}: {exc}") from exc
    if array.size != count:
        raise ServingError(
            Code.INVALID_ARG,
            f"unexpected number of elements {array.size} for input '{name}', shape {list(shape)} needs {count}",
        )
    return array.reshape(tuple(shape))


def to_json(array: np.ndarray) -> list[Any]:
    """Array -> flat row-major JSON list (BYTES as UTF-8 strings, as Triton answers)."""
    flat = array.reshape(-1)
    if array.dtype.kind in ("S", "O", "U"):
        return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in flat]
    values: list[Any] = flat.tolist()
    return values
