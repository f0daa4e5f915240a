"""The load generator must not be the bottleneck: its own cost per request, on one core.

Starts `performance.fake_server` (a FAKE OpenAI streaming server that answers at once, 16 tokens
a request, usage chunk on) pinned to one core, and runs `performance.loadgen.run_load` in a
second process pinned to another core, at several concurrencies. Records the wall-clock request
rate and the generator's own CPU time per request (`time.process_time`), whose inverse is the
request rate one core can drive when the server is not the limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.child import child_figures

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUESTS = 3000
TOKENS = 16
CONCURRENCIES = (8, 32)


def _cores() -> tuple[int | None, int | None]:
    """(server core, generator core) when the machine lets us pin, else (None, None)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (cores[0], cores[-1]) if len(cores) >= 2 else (None, None)


def _pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def worker(url: str, concurrency: int, requests: int, core: int | None) -> dict[str, Any]:
    """One measurement, in this process (pinned to `core`)."""
    import asyncio

    from performance.loadgen import LoadSpec, Prompt, run_load

    _pin(core)
    spec = LoadSpec(
        url=url, model="fake", concurrency=concurrency, num_requests=requests, duration_s=0, max_tokens=TOKENS
    )
    prompt = [Prompt(text="[INST] a short context\n\nQuestion: which port? [/INST]")]
    asyncio.run(
        run_load(LoadSpec(url=url, model="fake", concurrency=4, num_requests=100, duration_s=0), prompt)
    )
    cpu, wall = time.process_time(), time.perf_counter()
    result = asyncio.run(run_load(spec, prompt))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    figures = result.summary()
    return {
        "concurrency": concurrency,
        "requests": requests,
        "completed": figures["completed"],
        "wall_req_per_s": round(requests / wall, 1),
        "generator_cpu_ms_per_req": round(cpu / requests * 1000, 3),
        "req_per_generator_cpu_s": round(requests / cpu, 1),
        "output_tokens_per_s": round(figures["output_throughput"], 0),
        "p50_e2el_ms": round(figures["median_e2el_ms"], 2),
    }


def bench_loadgen_overhead() -> dict[str, Any]:
    import aiohttp
    import httpx

    from mlops.stack.manager import free_port

    server_core, generator_core = _cores()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    prefix = ["taskset", "-c", str(server_core)] if server_core is not None else []
    server = subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "performance.fake_server",
            "--port",
            str(port),
            "--tokens",
            str(TOKENS),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("fake server did not start") from None
                time.sleep(0.1)
        runs = []
        for concurrency in CONCURRENCIES:
            args = [
                "-m",
                "benchmarks.loadgen_overhead",
                url,
                str(concurrency),
                str(REQUESTS),
                str(generator_core),
            ]
            runs.append(child_figures(args, env, timeout=300))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "benchmark": "loadgen_overhead",
        "tokens_per_request": TOKENS,
        "pinned": generator_core is not None,
        "load_average_1m": round(load, 2) if load is not None else None,
        "client": f"aiohttp {aiohttp.__version__}",
        "runs": runs,
    }


if __name__ == "__main__":
    core = None if sys.argv[4] == "None" else int(sys.argv[4])
    print(json.dumps(worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), core)))
