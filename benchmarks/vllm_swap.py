"""Swapping the adapter behind a served LoRA name, under load, against restarting vLLM to change it.

On the running local stack (`mlops up` with vLLM; two registered `mistral-7b-lora` versions on the
served base, which `make demo` leaves behind): loads one version under a slot name of its own,
starts streaming clients on that name without pause, swaps the slot in place between the two
versions (`deployment.vllm.slots.fill`, the operation promote and rollback perform) and records
every request's outcome. Then starts a second vLLM server on the same base and times it until it
serves the adapter, the alternative to an in-place swap.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from mlops.models.names import LLM_MODEL

MODEL = LLM_MODEL
SWAPS = 20
CLIENTS = 4


class Streams:
    """`CLIENTS` threads streaming completions from `name` until stopped."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.records: list[tuple[float, str]] = []  # (ttft_s or total, error)
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
                started, error, first = time.perf_counter(), "", None
                try:
                    with client.stream("POST", "/v1/completions", json=body) as response:
                        if response.status_code != 200:
                            error = f"HTTP {response.status_code}: {response.read()[:120]!r}"
                        for line in response.iter_lines():
                            if first is None and line.startswith("data: ") and line != "data: [DONE]":
                                first = time.perf_counter() - started
                            if '"error"' in line:
                                error = line[:160]
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:160]
                if first is None and not error:
                    error = "no token streamed"
                self.records.append((first or 0.0, error))

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


def bench_vllm_swap() -> dict[str, Any]:
    from deployment.vllm.slots import fill
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
    name = f"bench-live-{uuid.uuid4().hex[:6]}"
    server.load_adapter(name, paths[0])
    swaps: list[float] = []
    with Streams(url, name) as streams:
        time.sleep(2.0)
        for index in range(SWAPS):
            started = time.perf_counter()
            fill([server], name, paths[(index + 1) % 2])
            swaps.append(time.perf_counter() - started)
            time.sleep(0.5)
        time.sleep(1.0)
    server.unload_adapter(name)
    restart = restart_seconds(base_dir, paths[0])
    ok = [ttft for ttft, error in streams.records if not error]
    swap_median = statistics.median(swaps)
    return {
        "benchmark": "vllm_swap",
        "clients": CLIENTS,
        "swaps": SWAPS,
        "requests": len(streams.records),
        "failed": len(streams.records) - len(ok),
        "errors": sorted({e for _, e in streams.records if e})[:5],
        "ttft_p50_ms": round(statistics.median(ok) * 1000, 1) if ok else None,
        "ttft_max_ms": round(max(ok) * 1000, 1) if ok else None,
        "swap_median_ms": round(swap_median * 1000, 1),
        "swap_max_ms": round(max(swaps) * 1000, 1),
        "restart_s": round(restart, 1),
        "restart_over_swap": round(restart / swap_median),
    }
