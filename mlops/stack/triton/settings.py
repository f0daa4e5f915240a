"""Triton's trace and log settings, kept and answered as Triton answers them (nothing is traced).

`tritonclient`'s `get_trace_settings` / `update_trace_settings` / `get_log_settings` /
`update_log_settings` work against the stand-in: values are validated, stored per server (and per
model for trace settings) and returned. The stand-in writes no trace files; its log follows
`--log-level`. Shared memory is answered separately (status: no regions; register: not supported).
"""

from __future__ import annotations

import threading
from typing import Any

from mlops.stack.triton.errors import Code, ServingError

TRACE_DEFAULTS: dict[str, list[str]] = {
    "trace_level": ["OFF"],
    "trace_rate": ["1000"],
    "trace_count": ["-1"],
    "log_frequency": ["0"],
    "trace_file": [""],
    "trace_mode": ["triton"],
}
TRACE_LEVELS = {"OFF", "TIMESTAMPS", "TENSORS"}
LOG_DEFAULTS: dict[str, bool | int | str] = {
    "log_file": "",
    "log_info": True,
    "log_warning": True,
    "log_error": True,
    "log_verbose_level": 0,
    "log_format": "default",
}
SHARED_MEMORY_UNSUPPORTED = (
    "shared memory is not supported by the Triton stand-in: send tensors in the request "
    "(binary tensor data over HTTP, raw contents over gRPC)"
)


class ServerSettings:
    """Trace settings (server-wide, and per model on top of them) and log settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trace: dict[str, list[str]] = {k: list(v) for k, v in TRACE_DEFAULTS.items()}
        self._model_trace: dict[str, dict[str, list[str]]] = {}
        self._log: dict[str, bool | int | str] = dict(LOG_DEFAULTS)

    def trace(self, model: str = "", update: dict[str, Any] | None = None) -> dict[str, list[str]]:
        """The trace settings of `model` ('' = the server's) after applying `update` (None clears a key)."""
        with self._lock:
            if update:
                target = self._model_trace.setdefault(model, {}) if model else self._trace
                for key, value in update.items():
                    if key not in TRACE_DEFAULTS:
                        raise ServingError(Code.INVALID_ARG, f"unknown trace setting '{key}'")
                    if value is None:
                        target.pop(key, None) if model else target.__setitem__(key, list(TRACE_DEFAULTS[key]))
                        continue
                    values = [str(v) for v in (value if isinstance(value, list) else [value])]
                    if key == "trace_level" and not set(values) <= TRACE_LEVELS:
                        raise ServingError(
                            Code.INVALID_ARG, f"trace_level must be among {sorted(TRACE_LEVELS)}"
                        )
                    if key in ("trace_rate", "trace_count", "log_frequency") and not all(
                        v.lstrip("-").isdigit() for v in values
                    ):
                        raise ServingError(Code.INVALID_ARG, f"{key} must be an integer, got {values}")
                    target[key] = values
            merged = {k: list(v) for k, v in self._trace.items()}
            merged.update({k: list(v) for k, v in self._model_trace.get(model, {}).items()})
            return merged

    def log(self, update: dict[str, Any] | None = None) -> dict[str, bool | int | str]:
        """The log settings after applying `update` (each value of the type its default has)."""
        with self._lock:
            for key, value in (update or {}).items():
                if key not in LOG_DEFAULTS:
                    raise ServingError(Code.INVALID_ARG, f"unknown log setting '{key}'")
                if type(value) is not type(LOG_DEFAULTS[key]):
                    raise ServingError(
                        Code.INVALID_ARG,
                        f"log setting '{key}' takes a {type(LOG_DEFAULTS[key]).__name__}, got {value!r}",
                    )
                self._log[key] = value
            return dict(self._log)
