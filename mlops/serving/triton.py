"""A small Triton client for the deployment steps, over `tritonclient.grpc`.

Written against NVIDIA Triton's documented behaviour (explicit model control: repository
index / load / unload, per-version readiness, KServe-V2 inference). Errors are mapped to the
step contract: a server that cannot be reached is `Transient` (exit 3, retried), a request the
server refuses (unknown model, failed load, bad input) is `BadInput` (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from mlops.errors import BadInput, Transient

# gRPC status codes that mean "the server is not there (yet)" rather than "the request is wrong".
_TRANSIENT_STATUS = (
    "StatusCode.UNAVAILABLE",
    "StatusCode.DEADLINE_EXCEEDED",
    "StatusCode.RESOURCE_EXHAUSTED",
)
_NP_TO_TRITON = {"float32": "FP32", "float16": "FP16", "float64": "FP64", "int64": "INT64", "int32": "INT32"}


@dataclass(frozen=True)
class IndexEntry:
    """One row of the repository index: a model version and its state (READY, UNAVAILABLE, ...)."""

    name: str
    version: str
    state: str
    reason: str = ""


class TritonServer(Protocol):
    """What the deployment steps need from one Triton replica."""

    endpoint: str

    def repository_index(self) -> list[IndexEntry]: ...
    def load(self, model: str) -> None: ...
    def unload(self, model: str) -> None: ...
    def is_model_ready(self, model: str, version: str = "") -> bool: ...
    def infer(self, model: str, version: str, inputs: dict[str, Any]) -> dict[str, Any]: ...


@contextmanager
def _grpc_errors(endpoint: str, what: str) -> Iterator[None]:
    from tritonclient.utils import InferenceServerException

    try:
        yield
    except InferenceServerException as exc:
        status = str(exc.status() or "")
        text = exc.message() or str(exc)
        if (
            status in _TRANSIENT_STATUS
            or "failed to connect" in text.lower()
            or "unavailable" in text.lower()
        ):
            raise Transient(f"Triton {endpoint}: {what}: unreachable ({status or text})") from exc
        raise BadInput(f"Triton {endpoint}: {what}: {text}") from exc


def _state(raw: str) -> str:
    # Triton reports READY / UNAVAILABLE / LOADING / UNLOADING; some KServe servers prefix "State.".
    return raw.rsplit(".", 1)[-1].upper()


class GrpcTriton:
    """A `TritonServer` over gRPC (`host:port`)."""

    def __init__(self, endpoint: str, timeout_s: float = 60.0) -> None:
        import tritonclient.grpc as grpcclient

        self.endpoint = endpoint.removeprefix("grpc://")
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url=self.endpoint)

    def repository_index(self) -> list[IndexEntry]:
        with _grpc_errors(self.endpoint, "repository index"):
            index = self.client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
        return [
            IndexEntry(
                m.get("name", ""), str(m.get("version", "")), _state(m.get("state", "")), m.get("reason", "")
            )
            for m in index.get("models", [])
        ]

    def load(self, model: str) -> None:
        with _grpc_errors(self.endpoint, f"load {model}"):
            self.client.load_model(model, client_timeout=self.timeout_s)

    def unload(self, model: str) -> None:
        with _grpc_errors(self.endpoint, f"unload {model}"):
            self.client.unload_model(model, client_timeout=self.timeout_s)

    def is_model_ready(self, model: str, version: str = "") -> bool:
        from tritonclient.utils import InferenceServerException

        try:
            with _grpc_errors(self.endpoint, f"readiness of {model} v{version or 'default'}"):
                return bool(self.client.is_model_ready(model, version, client_timeout=self.timeout_s))
        except BadInput:
            return False  # Triton answers "not ready" for an unknown model; some servers raise instead
        except InferenceServerException:  # pragma: no cover - mapped above
            return False

    def infer(self, model: str, version: str, inputs: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import tritonclient.grpc as grpcclient

        requests = []
        for name, array in inputs.items():
            data = np.ascontiguousarray(array)
            dtype = _NP_TO_TRITON.get(str(data.dtype))
            if dtype is None:
                raise BadInput(f"input {name}: dtype {data.dtype} not supported here")
            tensor = grpcclient.InferInput(name, list(data.shape), dtype)
            tensor.set_data_from_numpy(data)
            requests.append(tensor)
        with _grpc_errors(self.endpoint, f"infer {model} v{version or 'default'}"):
            result = self.client.infer(model, requests, model_version=version, client_timeout=self.timeout_s)
        response = result.get_response(as_json=True)
        return {out["name"]: result.as_numpy(out["name"]) for out in response.get("outputs", [])}


def connect(endpoint: str) -> TritonServer:
    """A client for one replica (`host:port` of its gRPC endpoint)."""
    return GrpcTriton(endpoint)
