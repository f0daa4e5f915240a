"""Swapping the adapter behind a served LoRA name, under load, against restarting vLLM to change it.

On the running local stack (`mlops up` with vLLM; two registered `mistral-7b-lora` versions on the
served base, which `make demo` leaves behind): loads one version under a slot name of its own and
starts streaming clients on that name without pause: a steady phase with no swap, then `SWAPS`
swaps between the two versions with `deployment.vllm.slots.fill` (what promote and rollback do to
the live slot), then a steady phase again. Every request's start, first token and end and every
swap's start and end are recorded on one clock (`benchmarks/swap_timeline.py` tells the requests a
swap touched from the rest), and the server's CPU time per generated token in each phase.

Then starts a second vLLM server on the same base, times it until it serves the adapter (the
alternative to an in-place swap), and runs the same phases on it with vLLM's in-place load as
shipped (`MLOPS_VLLM_INPLACE_AS_SHIPPED=1`: the launcher leaves the stored request marked
`load_inplace`, so the worker reloads the adapter from disk on every engine step after a swap):
the figures before and after the launcher's fix, from one run on one machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.swap_timeline import Request, swap_figures, ttft_figures
from mlops.models.names import LLM_MODEL
from mlops.stack.vllm_launch import AS_SHIPPED_ENV

MODEL = LLM_MODEL
SWAPS = 20
CLIENTS = 4
STEADY_S = 20.0
PAUSE_S = 2.0


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


@contextmanager
def second_server(base_dir: Path, adapter: str) -> Iterator[tuple[Any, int, float]]:
    """A fresh vLLM server on the same base with vLLM's in-place load as shipped: (the server, its
    pid, seconds from process start until it served `adapter`)."""
    from mlops.serving.vllm import connect
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, VllmSettings, vllm_python, vllm_service

    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        port = free_port()
        settings = VllmSettings(base_dir=base_dir, adapter_dir=Path(tmp), python=vllm_python())
        spec = vllm_service(settings, port)
        env = {**spec.env, AS_SHIPPED_ENV: "1"}
        spec = type(spec)(**{**spec.__dict__, "after_start": [], "env": env})
        manager = StackManager(Path(tmp), [spec], Ports(vllm=port))
        started = time.monotonic()
        try:
            manager.up(progress=lambda line: None)
            server = connect(f"127.0.0.1:{port}")
            server.load_adapter("restart-live", adapter)
            seconds = time.monotonic() - started
            server.unload_adapter("restart-live")
            yield server, manager.pid(spec) or 0, seconds
        finally:
            manager.down(progress=lambda line: None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process `pid` and its descendants (vLLM's engine and worker)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@contextmanager
def traced_opens(pid: int, folder: Path) -> Iterator[Path | None]:
    """strace (when on PATH) of `openat` calls in vLLM's process tree, written to a file under
    `folder` with wall-clock timestamps; None when it cannot trace."""
    import psutil

    if not shutil.which("strace"):
        yield None
        return
    root = psutil.Process(pid)
    pids = [str(p.pid) for p in [root, *root.children(recursive=True)]]
    out = folder / "openat.trace"
    command = ["strace", "-f", "-ttt", "-e", "trace=openat", "-o", str(out)]
    tracer = subprocess.Popen(
        [*command, *(arg for p in pids for arg in ("-p", p))], stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # attached
    try:
        yield out if tracer.poll() is None else None
    finally:
        tracer.terminate()
        tracer.wait(timeout=30)


def adapter_opens(trace: str, begin: float, end: float) -> int:
    """Opens of an adapter's `adapter_config.json` in an strace -ttt file between two wall-clock times:
    one per load of an adapter from disk."""
    count = 0
    for line in trace.splitlines():
        parts = line.split(maxsplit=2)
        if (
            len(parts) == 3
            and "adapter_config.json" in parts[2]
            and "openat(" in parts[2]
            and begin <= float(parts[1]) < end
        ):
            count += 1
    return count


def measure(server: Any, pid: int, paths: list[str]) -> dict[str, Any]:
    """Steady, swapping (`SWAPS` `fill` swaps) and steady again, on a fresh name; each phase's figures."""
    from deployment.vllm.slots import fill

    name = f"bench-live-{uuid.uuid4().hex[:6]}"
    url = server.endpoint if "://" in server.endpoint else f"http://{server.endpoint}"
    server.load_adapter(name, paths[0])
    origin = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - origin

    swaps: list[tuple[float, float]] = []
    marks: list[tuple[float, float, float]] = []  # (clock, wall clock, server CPU s) at each phase boundary

    def mark() -> None:
        marks.append((clock(), time.time(), cpu_seconds(pid)))

    trace_text = ""
    try:
        with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp, traced_opens(pid, Path(tmp)) as trace:
            with Streams(url, name, clock) as streams:
                time.sleep(2.0)  # the first requests on the name are not the steady state
                mark()
                time.sleep(STEADY_S)
                mark()
                for index in range(SWAPS):
                    started = clock()
                    fill([server], name, paths[(index + 1) % 2])
                    swaps.append((started, clock()))
                    time.sleep(PAUSE_S)
                time.sleep(1.0)
                mark()
                time.sleep(STEADY_S)
                mark()
            if trace is not None:
                time.sleep(1.0)  # strace writes what it saw
                trace_text = trace.read_text() if trace.is_file() else ""
    finally:
        server.unload_adapter(name)

    def phase(index: int) -> tuple[list[Request], dict[str, Any]]:
        (begin, wall_begin, cpu_begin), (end, wall_end, cpu_end) = marks[index], marks[index + 1]
        requests = [r for r in streams.records if begin <= r.start < end]
        tokens = sum(r.tokens for r in streams.records if begin <= r.end < end and not r.error)
        server = {
            "server_cpu_ms_per_token": round((cpu_end - cpu_begin) * 1000 / tokens, 2) if tokens else None,
            # loads of an adapter from disk in the phase (None: strace unavailable)
            "adapter_loads": adapter_opens(trace_text, wall_begin, wall_end) if trace_text else None,
        }
        return requests, server

    (steady, steady_server), (during, during_server), (after, after_server) = phase(0), phase(1), phase(2)
    steady_figures = ttft_figures(steady)
    return {
        "steady": {**steady_figures, **steady_server},
        "swapping": {**swap_figures(during, swaps, steady_figures["ttft_p99_ms"]), **during_server},
        "after": {**ttft_figures(after), **after_server},
    }


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
    pid = int((state / "vllm" / "pid").read_text().strip())
    paths = two_versions(mlflow_registry(), [server], state / "vllm" / "adapters")
    base_dir = Path(next(m.root for m in server.models() if not m.is_adapter))
    load_before = round(os.getloadavg()[0], 2)
    fixed = measure(server, pid, paths)
    with second_server(base_dir, paths[0]) as (shipped_server, shipped_pid, restart):
        shipped = measure(shipped_server, shipped_pid, paths)
    swap_median = fixed["swapping"]["swap_median_ms"] / 1000
    return {
        "benchmark": "vllm_swap",
        "clients": CLIENTS,
        "swaps": SWAPS,
        "steady_s": STEADY_S,
        "load_average_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        # before: vLLM's in-place load as shipped; after: the stack's launcher (mlops.stack.vllm_launch)
        "servers": {"as shipped": shipped, "launcher fix": fixed},
        "restart_s": round(restart, 1),
        "restart_over_swap": round(restart / swap_median),
    }
