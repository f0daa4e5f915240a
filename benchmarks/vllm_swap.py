"""Swapping the adapter behind a served LoRA name, under load, against restarting vLLM to change it.

On the running local stack (`mlops up` with vLLM; two registered `mistral-7b-lora` versions on the
served base, which `make demo` leaves behind): loads one version under a slot name of its own and
starts streaming clients on that name without pause. First a steady phase with no swap (the
steady-state TTFT), then the slot is swapped `SWAPS` times between the two versions, each swap
the way a method does it (`METHODS`: the bare in-place load, and `deployment.vllm.slots.fill`,
the operation promote and rollback perform), each method on a fresh name. Every request's start,
first token and end and every swap's start and end are recorded on one clock, so the worst TTFT
is told apart by whether a swap touched the request (`benchmarks/swap_timeline.py`). Then starts
a second vLLM server on the same base and times it until it serves the adapter, the alternative
to an in-place swap.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.swap_timeline import Request, swap_figures, ttft_figures
from mlops.models.names import LLM_MODEL

MODEL = LLM_MODEL
SWAPS = 20
CLIENTS = 4
STEADY_S = 20.0
PAUSE_S = 0.5


class Streams:
    """`CLIENTS` threads streaming completions from `name` until stopped, on the clock `clock`."""

    def __init__(self, url: str, name: str, clock: Callable[[], float]) -> None:
        self.url, self.name, self.clock = url, name, clock
        self.records: list[Request] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(CLIENTS)]

    def _loop(self) -> None:
        body = {
            "model": self.name,
            "prompt": "[INST] Skyloom keeps data.\n\nQuestion: How long? [/INST]",
            "max_tokens": 16,
            "temperature": 0,
            "stream": True,
        }
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                started, error, first, tokens = self.clock(), "", None, 0
                try:
                    with client.stream("POST", "/v1/completions", json=body) as response:
                        if response.status_code != 200:
                            error = f"HTTP {response.status_code}: {response.read()[:120]!r}"
                        for line in response.iter_lines():
                            if line.startswith("data: ") and line != "data: [DONE]":
                                tokens += 1
                                first = self.clock() if first is None else first
                            if '"error"' in line:
                                error = line[:160]
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:160]
                if first is None and not error:
                    error = "no token streamed"
                self.records.append(Request(started, first, self.clock(), tokens, error))

    def __enter__(self) -> Streams:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def two_versions(registry: Any, servers: list[Any], adapter_dir: Path) -> list[str]:
    """Paths of two versions of MODEL trained on the base the server serves."""
    from deployment.vllm.adapters import servable_adapter
    from mlops.errors import BadInput

    found: list[str] = []
    for version in range(1, 200):
        try:
            found.append(servable_adapter(registry, MODEL, str(version), adapter_dir, servers))
        except BadInput:
            continue
        if len(found) == 2:
            return found
    raise RuntimeError(
        f"need two versions of {MODEL} on the served base (run `make demo` first); found {found}"
    )


def restart_seconds(base_dir: Path, adapter: str) -> float:
    """A fresh vLLM server on the same base, from process start until it serves `adapter`."""
    from mlops.serving.vllm import connect
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, VllmSettings, vllm_python, vllm_service

    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        port = free_port()
        settings = VllmSettings(base_dir=base_dir, adapter_dir=Path(tmp), python=vllm_python())
        spec = vllm_service(settings, port)
        spec = type(spec)(**{**spec.__dict__, "after_start": []})
        manager = StackManager(Path(tmp), [spec], Ports(vllm=port))
        started = time.monotonic()
        try:
            manager.up(progress=lambda line: None)
            connect(f"127.0.0.1:{port}").load_adapter("restart-live", adapter)
            return time.monotonic() - started
        finally:
            manager.down(progress=lambda line: None)


def bare_inplace(server: Any, name: str, path: str) -> None:
    """One `load_inplace` call: what the slot swap was before `fill` warmed the new weights."""
    server.load_adapter(name, path, inplace=True)


def slots_fill(server: Any, name: str, path: str) -> None:
    from deployment.vllm.slots import fill

    fill([server], name, path)


METHODS: dict[str, Callable[[Any, str, str], None]] = {"load_inplace": bare_inplace, "fill": slots_fill}


def measure(url: str, server: Any, paths: list[str], swap: Callable[[Any, str, str], None]) -> dict[str, Any]:
    """A steady phase, then `SWAPS` swaps by `swap`, on a fresh name; the figures of both."""
    name = f"bench-live-{uuid.uuid4().hex[:6]}"
    server.load_adapter(name, paths[0])
    origin = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - origin

    swaps: list[tuple[float, float]] = []
    try:
        with Streams(url, name, clock) as streams:
            time.sleep(2.0)  # the first requests on the name are not the steady state
            steady_from = clock()
            time.sleep(STEADY_S)
            swaps_from = clock()
            for index in range(SWAPS):
                started = clock()
                swap(server, name, paths[(index + 1) % 2])
                swaps.append((started, clock()))
                time.sleep(PAUSE_S)
            time.sleep(1.0)
    finally:
        server.unload_adapter(name)
    steady = ttft_figures([r for r in streams.records if steady_from <= r.start < swaps_from])
    during = [r for r in streams.records if r.start >= swaps_from]
    return {"steady": steady, "swapping": swap_figures(during, swaps, steady["ttft_p99_ms"])}


def bench_vllm_swap() -> dict[str, Any]:
    from mlops.registry import mlflow_registry
    from mlops.serving.vllm import connect

    url = os.environ.get("VLLM_URL")
    if not url:
        raise RuntimeError(
            'VLLM_URL is not set: `bin/mlops up` (after vllm-training) and eval "$(bin/mlops env)"'
        )
    state = Path(os.environ.get("MLOPS_STATE_DIR", Path(__file__).resolve().parents[1] / ".stack"))
    server = connect(url)
    paths = two_versions(mlflow_registry(), [server], state / "vllm" / "adapters")
    base_dir = Path(next(m.root for m in server.models() if not m.is_adapter))
    methods = {method: measure(url, server, paths, swap) for method, swap in METHODS.items()}
    restart = restart_seconds(base_dir, paths[0])
    swap_median = methods["fill"]["swapping"]["swap_median_ms"] / 1000
    return {
        "benchmark": "vllm_swap",
        "clients": CLIENTS,
        "swaps": SWAPS,
        "steady_s": STEADY_S,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "methods": methods,
        "restart_s": round(restart, 1),
        "restart_over_swap": round(restart / swap_median),
    }
