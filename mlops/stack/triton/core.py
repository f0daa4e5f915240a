"""What the stand-in serves: explicit model control over a Triton repository, routing, statistics.

Semantics follow NVIDIA Triton's in `--model-control-mode=explicit`:

- nothing is loaded until a load request names the model;
- a load reads config.pbtxt and the complete versions, picks versions by `version_policy`,
  loads the new ones *next to* those serving, then switches in one step and drops the versions
  that left the policy. A version whose config did not change (apart from the policy) is kept
  as loaded; a failed load leaves what was serving untouched;
- a request without a version goes to the highest version that is ready;
- unloading a model that is not loaded succeeds and does nothing.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops.stack.triton.errors import Code, ServingError
from mlops.stack.triton.model_config import (
    ConfigError,
    config_from_json,
    default_config,
    fill_io,
    parse_config,
    policy_text,
    select_versions,
    without_version_policy,
)
from mlops.stack.triton.repository import ModelListing, S3ModelRepository
from mlops.stack.triton.runtime import OnnxModel
from mlops.stack.triton.settings import ServerSettings

log = logging.getLogger("triton-standin")

READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"


def release_memory() -> None:
    """Collect now what a dropped model version left in reference cycles (its ONNX Runtime session
    holds the weights), so its memory goes back to the system at once (`mlops up` fixes glibc's
    mmap threshold, `RETURN_FREED_MEMORY`), not at Python's next full collection."""
    gc.collect()


@dataclass(frozen=True)
class Served:
    """The versions of one model that answer requests; replaced whole on every (re)load."""

    config: Any
    versions: dict[int, OnnxModel]


@dataclass
class VersionStats:
    """Counters of one model version, in Triton's units (nanoseconds; metrics show microseconds)."""

    success: int = 0
    success_ns: int = 0
    failure: int = 0
    failure_ns: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    inference_count: int = 0
    execution_count: int = 0
    compute_infer_ns: int = 0
    last_inference_ms: int = 0
    pending: int = 0


class ModelManager:
    """Loads, routes and unloads models; every public method is safe to call from many threads."""

    def __init__(self, repository: S3ModelRepository, work_dir: Path, ort_threads: int = 0) -> None:
        self.repository = repository
        self.work_dir = work_dir
        self.ort_threads = ort_threads
        self._served: dict[str, Served] = {}
        self._states: dict[str, dict[int, tuple[str, str]]] = {}
        self._model_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, int], VersionStats] = {}
        self.settings = ServerSettings()  # trace and log settings, answered over HTTP and gRPC

    # --- repository API -------------------------------------------------------------------
    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Triton's repository index: every model, and per version its state once it was ever loaded."""
        listed = [] if ready_only else self.repository.model_names()
        with self._lock:
            known = {name: dict(states) for name, states in self._states.items()}
        entries: list[dict[str, str]] = []
        for name in sorted(set(listed) | set(known)):
            states = known.get(name, {})
            if not states and not ready_only:
                entries.append({"name": name})
            for version, (state, reason) in sorted(states.items()):
                if ready_only and state != READY:
                    continue
                entry = {"name": name, "version": str(version), "state": state}
                if reason:  # Triton leaves `reason` out when there is none
                    entry["reason"] = reason
                entries.append(entry)
        return entries

    def _model_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._model_locks.setdefault(name, threading.Lock())

    def _set_state(self, name: str, version: int, state: str, reason: str = "") -> None:
        with self._lock:
            self._states.setdefault(name, {})[version] = (state, reason)

    def load(self, name: str, config_json: str | None = None) -> None:
        """Load or reload `name` as its config says; returns once every selected version is ready."""
        with self._model_lock(name):
            started = time.monotonic()
            listing = self.repository.listing(name)
            if not listing.exists:
                raise ServingError(
                    Code.INVALID_ARG,
                    f"failed to load '{name}', failed to poll from model repository {self.repository}",
                )
            try:
                config = self._config(name, listing, config_json)
            except ConfigError as exc:
                raise ServingError(Code.INVALID_ARG, f"failed to load '{name}': {exc}") from exc
            selected = select_versions(config.version_policy, listing.versions)
            if not selected:
                raise ServingError(
                    Code.INVALID_ARG,
                    f"failed to load '{name}', at least one version must be available under the version "
                    f"policy of model '{name}' (policy {policy_text(config.version_policy)}; complete "
                    f"versions: {sorted(listing.versions)})",
                )
            current = self._served.get(name)
            reuse = current is not None and without_version_policy(current.config) == without_version_policy(
                config
            )
            versions: dict[int, OnnxModel] = {}
            for version in selected:
                if reuse and current is not None and version in current.versions:
                    versions[version] = current.versions[version]
                    continue
                self._set_state(name, version, LOADING)
                try:
                    versions[version] = self._load_version(name, version, config, listing)
                except (ServingError, ConfigError) as exc:
                    log.warning("load of %s version %d failed: %s", name, version, exc)
                    self._abandon(name, current, versions, version, str(exc))
                    code = exc.code if isinstance(exc, ServingError) else Code.INVALID_ARG
                    raise ServingError(code, f"failed to load '{name}' version {version}: {exc}") from exc
            top = versions[max(versions)]
            served_config = type(config)()
            served_config.CopyFrom(config)
            fill_io(served_config, top.inputs, top.outputs)
            with self._lock:
                self._served[name] = Served(served_config, versions)
                states = self._states.setdefault(name, {})
                for version in versions:
                    states[version] = (READY, "")
                for version in set(current.versions if current else ()) - set(versions):
                    states[version] = (UNAVAILABLE, "unloaded")
                # a version no longer in the repository (withdrawn after it failed to serve) is forgotten
                for version in [v for v in states if v not in listing.versions]:
                    del states[version]
            dropped = current is not None and bool(set(current.versions) - set(versions))
            current = None
            if dropped:
                release_memory()
            log.info(
                "loaded %s versions %s (policy %s) in %.3fs",
                name,
                sorted(versions),
                policy_text(config.version_policy),
                time.monotonic() - started,
            )

    def _config(self, name: str, listing: ModelListing, config_json: str | None) -> Any:
        if config_json:
            return config_from_json(config_json, name)
        if listing.config_text is not None:
            return parse_config(listing.config_text, name)
        return default_config(name)

    def _load_version(self, name: str, version: int, config: Any, listing: ModelListing) -> OnnxModel:
        own = type(config)()
        own.CopyFrom(config)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # ONNX Runtime reads the file (and any external data) while creating the session; the
        # downloaded copy is not needed after that.
        with tempfile.TemporaryDirectory(prefix=f"{name}-{version}-", dir=self.work_dir) as tmp:
            folder = self.repository.download_version(listing, version, Path(tmp))
            model_file = folder / own.default_model_filename
            if not model_file.is_file():
                raise ConfigError(f"version {version} has no {own.default_model_filename}")
            return OnnxModel(name, version, own, model_file, self.ort_threads)

    def _abandon(
        self, name: str, current: Served | None, tried: Mapping[int, OnnxModel], failed: int, reason: str
    ) -> None:
        """After a failed load: the failed version is UNAVAILABLE, what served before serves on."""
        with self._lock:
            states = self._states.setdefault(name, {})
            states[failed] = (UNAVAILABLE, reason)
            for version in tried:
                if current is not None and version in current.versions:
                    states[version] = (READY, "")
                else:
                    states[version] = (UNAVAILABLE, f"not loaded: version {failed} of the same load failed")

    def unload(self, name: str) -> None:
        """Unload every version; requests already running finish on the versions they hold."""
        with self._model_lock(name), self._lock:
            served = self._served.pop(name, None)
            if served is None:
                return
            states = self._states.setdefault(name, {})
            for version in served.versions:
                states[version] = (UNAVAILABLE, "unloaded")
        versions = sorted(served.versions)
        del served
        release_memory()
        log.info("unloaded %s versions %s", name, versions)

    # --- routing --------------------------------------------------------------------------
    def route(self, name: str, version: str = "") -> tuple[OnnxModel, Served]:
        """The loaded version a request goes to: the given one, or the highest ready one."""
        served = self._served.get(name)
        if version and not version.lstrip("-").isdigit():
            raise ServingError(Code.INVALID_ARG, f"failed to parse model version '{version}' of '{name}'")
        wanted = int(version) if version else -1
        if served is None or not served.versions:
            if name in self._states:
                raise ServingError(
                    Code.UNAVAILABLE, f"Request for unknown model: '{name}' has no available versions"
                )
            raise ServingError(Code.NOT_FOUND, f"Request for unknown model: '{name}' is not found")
        if wanted == -1:
            return served.versions[max(served.versions)], served
        if wanted in served.versions:
            return served.versions[wanted], served
        if wanted in self._states.get(name, {}):
            raise ServingError(
                Code.UNAVAILABLE,
                f"Request for unknown model: '{name}' version {wanted} is not at ready state",
            )
        raise ServingError(
            Code.NOT_FOUND, f"Request for unknown model: '{name}' version {wanted} is not found"
        )

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.route(name, version)
        except ServingError:
            return False
        return True

    def metadata(self, name: str, version: str = "") -> dict[str, Any]:
        model, served = self.route(name, version)
        return model.metadata(sorted(served.versions))

    def config(self, name: str, version: str = "") -> Any:
        _, served = self.route(name, version)
        return served.config

    def infer(
        self,
        name: str,
        version: str,
        inputs: Mapping[str, np.ndarray],
        requested: Sequence[str] | None = None,
    ) -> tuple[OnnxModel, dict[str, np.ndarray]]:
        """Run a request; counts it in the served version's statistics either way."""
        model, _ = self.route(name, version)
        started = time.perf_counter_ns()
        with self._lock:
            self._stats.setdefault((model.name, model.version), VersionStats()).pending += 1
        try:
            outputs = model.infer(inputs, requested)
        except ServingError as exc:
            self._count(model, started, None, "BACKEND" if exc.code == Code.INTERNAL else "OTHER", inputs)
            raise
        except Exception as exc:
            self._count(model, started, None, "BACKEND", inputs)
            raise ServingError(Code.INTERNAL, f"inference of '{name}' failed: {exc}") from exc
        self._count(model, started, time.perf_counter_ns() - started, None, inputs)
        return model, outputs

    def _count(
        self,
        model: OnnxModel,
        started: int,
        compute_ns: int | None,
        failure: str | None,
        inputs: Mapping[str, np.ndarray],
    ) -> None:
        elapsed = time.perf_counter_ns() - started
        with self._lock:
            stats = self._stats.setdefault((model.name, model.version), VersionStats())
            stats.pending -= 1
            if failure is None:
                stats.success += 1
                stats.success_ns += elapsed
                stats.inference_count += model.batch_size(inputs)
                stats.execution_count += 1
                stats.compute_infer_ns += compute_ns or 0
                stats.last_inference_ms = int(time.time() * 1000)
            else:
                stats.failure += 1
                stats.failure_ns += elapsed
                stats.failure_reasons[failure] = stats.failure_reasons.get(failure, 0) + 1

    def statistics(self, name: str = "", version: str = "") -> list[tuple[str, int, VersionStats]]:
        """(model, version, counters) of every loaded version, or of one model/version."""
        if name:
            self.route(name, version)
        rows = []
        with self._lock:
            for model, served in sorted(self._served.items()):
                if name and model != name:
                    continue
                for number in sorted(served.versions):
                    if version and str(number) != version:
                        continue
                    rows.append((model, number, self._stats.setdefault((model, number), VersionStats())))
        return rows
