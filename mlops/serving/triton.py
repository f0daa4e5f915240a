"""NVIDIA Triton (or the local stand-in) behind a small Protocol: repository API, readiness, inference.

`connect("host:8001")` talks gRPC through `tritonclient`. Behaviour follows Triton's
documentation, and what servers disagree on is normalised here, once:

- index states are Triton's plain words (`READY`, `UNAVAILABLE`, ...), never `State.READY`;
- `is_model_ready` of an unknown model or version is False, whether the server answers false
  or refuses the question;
- `unload` returns once the model no longer answers (Triton unloads asynchronously) and is a
  no-op for a model that is not loaded;
- a server that cannot be reached, times out or fails internally raises `Transient` (exit 3,
  retried); an unknown model, a bad request or a load the server refuses raises `BadInput`.
  gRPC says UNAVAILABLE both for "connection refused" and for "model not ready", so an
  UNAVAILABLE answer is told apart by asking the server whether it is live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from mlops.errors import BadInput, Transient

T = TypeVar("T")

# gRPC codes that say "the infrastructure failed, try again"; all others are the request's fault
_TRANSIENT = {"DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNKNOWN", "CANCELLED"}


class IndexEntry(NamedTuple):
    """One row of the repository index; version and state are '' for a model never loaded."""

    name: str
    version: str
    state: str
    reason: str = ""


class TritonServer(Protocol):
    """What deployment steps need from one Triton replica."""

    endpoint: str

    def repository_index(self) -> list[IndexEntry]: ...
    def load(self, model: str) -> None: ...
    def unload(self, model: str) -> None: ...
    def is_model_ready(self, model: str, version: str | int = "") -> bool: ...
    def infer(
        self, model: str, version: str | int, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]: ...
    def model_config(self, model: str) -> dict[str, Any]: ...


def normalise_state(state: str) -> str:
    """`State.READY` (MLServer), `ready`, `READY` -> `READY`."""
    return state.rsplit(".", 1)[-1].upper()


class GrpcTritonServer:
    """One replica over gRPC. Timeouts in seconds; loads may take long for big models."""

    def __init__(
        self,
        endpoint: str,
        timeout_s: float = 30.0,
        load_timeout_s: float = 600.0,
        unload_timeout_s: float = 60.0,
    ) -> None:
        import tritonclient.grpc as grpcclient

        address = endpoint.strip().removeprefix("grpc://")
        if not address or "/" in address:
            raise BadInput(f"Triton gRPC endpoint must be host:port, got {endpoint!r}")
        self.endpoint = address
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self.unload_timeout_s = unload_timeout_s
        self.client = grpcclient.InferenceServerClient(url=address)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> GrpcTritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- errors ---------------------------------------------------------------------------
    def _live(self) -> bool:
        from tritonclient.utils import InferenceServerException

        try:
            return bool(self.client.is_server_live(client_timeout=min(self.timeout_s, 5.0)))
        except InferenceServerException:
            return False

    def _call(self, what: str, call: Callable[[], T]) -> T:
        from tritonclient.utils import InferenceServerException

        try:
            return call()
        except InferenceServerException as exc:
            raise self._classify(what, exc) from exc

    def _classify(self, what: str, exc: Any) -> Exception:
        code = str(exc.status() or "").removeprefix("StatusCode.")
        message = f"{what} on Triton {self.endpoint}: [{code or 'no status'}] {exc.message()}"
        if code in _TRANSIENT or not code:
            return Transient(message)
        if code == "UNAVAILABLE" and not self._live():
            return Transient(f"Triton {self.endpoint} is unreachable ({what}): {exc.message()}")
        return BadInput(message)

    # --- the Protocol ---------------------------------------------------------------------
    def repository_index(self) -> list[IndexEntry]:
        index = self._call(
            "repository index", lambda: self.client.get_model_repository_index(client_timeout=self.timeout_s)
        )
        return [
            IndexEntry(m.name, m.version, normalise_state(m.state) if m.state else "", m.reason)
            for m in index.models
        ]

    def load(self, model: str) -> None:
        """Load or reload `model` as its config.pbtxt says; returns when the server has finished."""
        self._call(
            f"loading {model}", lambda: self.client.load_model(model, client_timeout=self.load_timeout_s)
        )

    def unload(self, model: str) -> None:
        """Unload every version of `model` and wait until it no longer answers."""
        self._call(
            f"unloading {model}", lambda: self.client.unload_model(model, client_timeout=self.timeout_s)
        )
        wait_until(
            lambda: not self.is_model_ready(model), self.unload_timeout_s, f"{model} still ready after unload"
        )

    def is_model_ready(self, model: str, version: str | int = "") -> bool:
        try:
            return bool(
                self._call(
                    f"readiness of {model}",
                    lambda: self.client.is_model_ready(model, str(version), client_timeout=self.timeout_s),
                )
            )
        except BadInput:  # servers that refuse the question about an unknown model
            return False

    def infer(
        self, model: str, version: str | int, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Every output of one request ('' version = the server's default: the highest ready one)."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import np_to_triton_dtype

        tensors = []
        for name, value in inputs.items():
            array = np.ascontiguousarray(value)
            datatype = "BYTES" if array.dtype.kind in ("O", "S", "U") else np_to_triton_dtype(array.dtype)
            if datatype is None:
                raise BadInput(f"input {name!r} has dtype {array.dtype}, which Triton cannot carry")
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array.astype(np.object_) if datatype == "BYTES" else array)
            tensors.append(tensor)
        what = f"inference on {model} " + (f"v{version}" if version else "(default version)")
        result = self._call(
            what,
            lambda: self.client.infer(
                model, tensors, model_version=str(version), client_timeout=self.timeout_s
            ),
        )
        return {output.name: result.as_numpy(output.name) for output in result.get_response().outputs}

    def model_config(self, model: str, version: str | int = "") -> dict[str, Any]:
        """The config the server serves `model` with, as Triton's HTTP API writes it."""
        from mlops.stack.triton.model_config import to_json_dict

        answer = self._call(
            f"config of {model}",
            lambda: self.client.get_model_config(model, str(version), client_timeout=self.timeout_s),
        )
        return to_json_dict(answer.config)


def connect(endpoint: str) -> TritonServer:
    """A client for one replica's gRPC endpoint (`host:port`)."""
    return GrpcTritonServer(endpoint)


class _NotYet(Exception):
    pass


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str | Callable[[], str], poll_s: float = 0.1
) -> float:
    """Poll `condition` until true; seconds waited. Transient(`what`) after `timeout_s`; errors propagate."""
    import time

    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    started = time.monotonic()

    def attempt() -> None:
        if not condition():
            raise _NotYet()

    try:
        for attempt_context in Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(poll_s),
            retry=retry_if_exception_type(_NotYet),
            reraise=True,
        ):
            with attempt_context:
                attempt()
    except _NotYet:
        message = what() if callable(what) else what
        raise Transient(f"{message} (waited {timeout_s:g}s)") from None
    return time.monotonic() - started


def wait_ready(
    server: TritonServer, model: str, versions: Iterable[str | int], timeout_s: float, poll_s: float = 0.1
) -> float:
    """Seconds until every listed version of `model` is ready on `server`; Transient after `timeout_s`."""
    pending = [str(v) for v in versions] or [""]

    def all_ready() -> bool:
        pending[:] = [v for v in pending if not server.is_model_ready(model, v)]
        return not pending

    return wait_until(all_ready, timeout_s, lambda: f"{model} version(s) {pending} not ready", poll_s)
