"""Soak: steady traffic to the live LLM slot and the live vision model, a release and a rollback of
each in the middle; no request may fail and no service may grow.

On the running local stack after `make demo` (a live ResNet ONNX model in the Triton stand-in, a
live adapter in vLLM's `aws-rag-qa-live` slot): sends completions to the live slot and KServe-V2
inferences (tritonclient, gRPC) to the live model at a fixed rate each, for `--duration-s`
seconds. After the warm-up it records the resident memory (RSS, psutil) of every stack service's
process tree; part-way through it deploys a second vision version (`triton-deployment`) and rolls
it back (`triton-rollback`), then promotes a second adapter (`vllm-promote`) and rolls it back
(`vllm-rollback`), each through the local Argo executor with `workflows/params/local.yaml`. At the
end it records every service's RSS again. Passes when no request failed (an error, an HTTP or
gRPC failure, or a request scheduled and never answered) and every service's RSS at the end is
within 10% of its value after the warm-up.

What the middle needs is made first when missing (not timed, before the warm-up): a vision
version behind `deploy` that is not live (trained with another seed) and an adapter carrying both
release verdicts that is not live (released by `llm-e2e`, then rolled back). Traffic goes only to
127.0.0.1 and is bounded: a fixed rate for a bounded time, at most `MAX_IN_FLIGHT` requests each.

python -m benchmarks.soak --duration-s 60     # a short run; prints the figures
python -m benchmarks.run --only soak          # the 10-minute run -> results/soak.json, docs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops.models.names import LLM_MODEL

REPO_ROOT = Path(__file__).resolve().parents[1]
DURATION_S = 600.0
VLLM_RATE_PER_S = 2.0
TRITON_RATE_PER_S = 10.0
MAX_IN_FLIGHT = 8
REQUEST_TIMEOUT_S = 30.0
RSS_TOLERANCE = 0.10
SAMPLE_EVERY_S = 15.0
EARLIER_RUNS = 3
SERVICES = ("mlflow", "s3", "triton", "vllm", "prometheus")
VISION_MODEL = "resnet18-imagenette-onnx"  # the registered ONNX model of vision-e2e
VISION_TRAINING_MODEL = "resnet18-imagenette"
LLM_SLOT = "aws-rag-qa-live"
PROMPT = "[INST] Skyloom keeps data.\n\nQuestion: How long does Skyloom keep data? [/INST]"
# a second adapter's release before the soak: any quality and speed pass (the gates are not what
# is measured here; they have their own tests), as in tests/e2e/test_llm_release.py
RELEASE_ANY = {
    "eval-min-a-rate": "0",
    "eval-max-c-rate": "1",
    "eval-min-refusal-accuracy": "0",
    "eval-margin": "1.0",
    "perf-max-latency-ratio": "100",
    "perf-max-ttft-ratio": "100",
    "perf-min-throughput-ratio": "0.01",
    "perf-max-success-rate-drop": "1",
    "perf-duration-s": "10",
    "lora-epochs": "2",
    "lora-learning-rate": "4e-3",
}


# --- accounting (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due (s since the start), how long it took, and its error ('' = ok)."""

    due_s: float
    latency_s: float
    error: str = ""


def traffic_summary(outcomes: Sequence[Outcome], scheduled: int) -> dict[str, Any]:
    """Requests, failures and latency of one target. A request scheduled and never answered
    (`scheduled` > answered) is a failure too: a lost request is not a success."""
    ok = sorted(o.latency_s for o in outcomes if not o.error)
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.error:
            errors[outcome.error] = errors.get(outcome.error, 0) + 1
    unanswered = max(0, scheduled - len(outcomes))
    if unanswered:
        errors["scheduled, never answered"] = unanswered

    def ms(value: float) -> float:
        return round(value * 1000, 1)

    return {
        "scheduled": scheduled,
        "answered": len(outcomes),
        "failed": sum(1 for o in outcomes if o.error) + unanswered,
        "errors": dict(sorted(errors.items(), key=lambda item: -item[1])[:5]),
        "p50_ms": ms(statistics.median(ok)) if ok else None,
        "p99_ms": ms(ok[min(len(ok) - 1, int(len(ok) * 0.99))]) if ok else None,
        "max_ms": ms(ok[-1]) if ok else None,
    }


@dataclass(frozen=True)
class Rss:
    """A service's process tree at one moment: the root pid, its RSS summed over the tree, and the
    part of it backed by files (shared libraries, mapped files: the kernel may drop those pages
    under memory pressure, the rest it cannot without swap)."""

    pid: int
    rss_bytes: int
    processes: int
    file_bytes: int = 0


@dataclass(frozen=True)
class MemoryCheck:
    """One service's RSS after the warm-up against the end; `problem` is '' when within bounds."""

    service: str
    warm_mib: float
    end_mib: float | None
    growth: float | None
    problem: str


def memory_checks(
    warm: Mapping[str, Rss], end: Mapping[str, Rss | None], tolerance: float = RSS_TOLERANCE
) -> list[MemoryCheck]:
    """Each service's end RSS against its warm RSS: within `tolerance` (a fraction) either way,
    and the same process (a service that died or was restarted lost its memory, not kept it)."""
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance is a fraction between 0 and 1, got {tolerance}")
    checks = []
    for service, before in warm.items():
        if before.rss_bytes <= 0:
            raise ValueError(f"{service}: RSS after warm-up must be positive, got {before.rss_bytes}")
        warm_mib = round(before.rss_bytes / 2**20, 1)
        after = end.get(service)
        if after is None:
            checks.append(MemoryCheck(service, warm_mib, None, None, "not running at the end"))
            continue
        end_mib = round(after.rss_bytes / 2**20, 1)
        growth = after.rss_bytes / before.rss_bytes - 1
        if after.pid != before.pid:
            problem = f"restarted (pid {before.pid} -> {after.pid})"
        elif abs(after.rss_bytes - before.rss_bytes) > tolerance * before.rss_bytes:
            problem = f"{'grew' if growth > 0 else 'shrank'} {growth:+.1%}, beyond ±{tolerance:.0%}"
        else:
            problem = ""
        checks.append(MemoryCheck(service, warm_mib, end_mib, round(growth, 4), problem))
    return checks


def problems(traffic: Mapping[str, Mapping[str, Any]], checks: Sequence[MemoryCheck]) -> list[str]:
    """Why the soak failed: failed requests per target, services out of bounds ([] = passed)."""
    found = [
        f"{target}: {summary['failed']} of {summary['scheduled']} requests failed"
        for target, summary in traffic.items()
        if summary["failed"]
    ]
    return found + [f"{check.service}: {check.problem}" for check in checks if check.problem]


# --- measuring --------------------------------------------------------------------------------


def state_dir() -> Path:
    return Path(os.environ.get("MLOPS_STATE_DIR", str(REPO_ROOT / ".stack")))


def service_rss(state: Path, services: Sequence[str] = SERVICES) -> dict[str, Rss | None]:
    """RSS of each service's process tree (its pid file in the stack's state folder, and every
    descendant: MLflow's workers, vLLM's engine process); None when it is not running."""
    import psutil

    found: dict[str, Rss | None] = {}
    for service in services:
        pid_file = state / service / "pid"
        try:
            root = psutil.Process(int(pid_file.read_text().strip()))
            tree = [root, *root.children(recursive=True)]
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            found[service] = None
            continue
        total = shared = 0
        for process in tree:
            try:
                memory = process.memory_info()
            except psutil.NoSuchProcess:  # a worker that exited between listing and reading
                continue
            total += memory.rss
            shared += getattr(memory, "shared", 0)  # Linux: RssFile + RssShmem
        found[service] = Rss(root.pid, total, len(tree), shared)
    return found


@dataclass
class Pacer:
    """Calls `send` at `rate_per_s` from a background thread until stopped, each call in a pool of
    `MAX_IN_FLIGHT` workers, so a slow answer does not lower the rate (up to that many)."""

    name: str
    rate_per_s: float
    send: Callable[[], str]  # one request: '' or its error
    started: float = field(default_factory=time.perf_counter)
    outcomes: list[Outcome] = field(default_factory=list)
    scheduled: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _one(self, due_s: float) -> None:
        began = time.perf_counter()
        try:
            error = self.send()
        except Exception as exc:  # any failure of a request is the soak's finding, never a crash
            error = f"{type(exc).__name__}: {exc}"[:160]
        self.outcomes.append(Outcome(due_s, time.perf_counter() - began, error))

    def run(self) -> None:
        with ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix=self.name) as pool:
            while not self.stop.is_set():
                due = self.scheduled / self.rate_per_s
                wait = self.started + due - time.perf_counter()
                if wait > 0 and self.stop.wait(wait):
                    break
                self.scheduled += 1
                pool.submit(self._one, due)


def vllm_sender(url: str) -> Callable[[], str]:
    """A completion (16 tokens) from the live slot; an error unless it answers 200 with text."""
    import httpx

    local = threading.local()
    body = {"model": LLM_SLOT, "prompt": PROMPT, "max_tokens": 16, "temperature": 0}

    def send() -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S)
        response = local.client.post("/v1/completions", json=body)
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:120]}"
        choices = response.json().get("choices") or []
        return "" if choices and choices[0].get("text") else "no text"

    return send


def triton_sender(endpoint: str, model: str) -> Callable[[], str]:
    """A batch-1 inference on the model's default route, shaped by its KServe-V2 metadata."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    meta = grpcclient.InferenceServerClient(url=endpoint).get_model_metadata(model, as_json=True)
    spec = meta["inputs"][0]
    shape = [1 if int(d) < 0 else int(d) for d in spec["shape"]]
    batch = np.zeros(shape, dtype=np.float32)
    local = threading.local()

    def send() -> str:
        if not hasattr(local, "client"):
            local.client = grpcclient.InferenceServerClient(url=endpoint)
            local.tensor = grpcclient.InferInput(spec["name"], shape, spec["datatype"])
            local.tensor.set_data_from_numpy(batch)
        try:
            local.client.infer(model, [local.tensor], client_timeout=REQUEST_TIMEOUT_S)
        except InferenceServerException as exc:
            return (exc.message() or str(exc))[:160]
        return ""

    return send


def slot_params() -> dict[str, str]:
    """The vLLM workflows' slot parameters for this stack (its port, its adapter folder)."""
    return {"vllm-adapter-dir": str((state_dir() / "vllm" / "adapters").resolve())}


def prepare_vision(registry: Any) -> str:
    """A version behind `deploy` that is not live (trained with another seed when missing)."""
    from benchmarks.local_runs import run_local

    live = registry.require_alias(VISION_MODEL, "live")
    if registry.alias(VISION_MODEL, "deploy") in (None, live):
        run_local("triton-training", {"seed": "7", "min-improvement": "-1"})
    deploy = registry.require_alias(VISION_MODEL, "deploy")
    if deploy == live:
        raise RuntimeError(f"{VISION_MODEL}: training left `deploy` at the live v{live}")
    return deploy


def prepare_llm(registry: Any) -> str:
    """An adapter carrying both release verdicts that is not live: released by `llm-e2e`, then
    rolled back, when there is none yet."""
    from benchmarks.local_runs import run_local

    def ready() -> str | None:
        live, passed = registry.alias(LLM_MODEL, "live"), registry.alias(LLM_MODEL, "eval-passed")
        if live and passed and passed != live and registry.alias(LLM_MODEL, "perf-passed") == passed:
            return str(passed)
        return None

    registry.require_alias(LLM_MODEL, "live")
    if ready() is None:
        run_local("llm-e2e", {**RELEASE_ANY, **slot_params()})
        run_local("vllm-rollback", slot_params())
    version = ready()
    if version is None:
        raise RuntimeError(f"{LLM_MODEL}: no adapter with both verdicts beside the live one")
    return version


def release_and_roll_back(vision: str, llm: str) -> dict[str, float]:
    """The middle of the soak: each workflow's wall time (s), in order."""
    from benchmarks.local_runs import run_local

    steps: list[tuple[str, str, dict[str, str]]] = [
        ("triton-deployment", "triton-deployment", {"onnx-model-name": VISION_MODEL}),
        ("triton-rollback", "triton-rollback", {"onnx-model-name": VISION_MODEL}),
        ("vllm-promote", "vllm-promote", {"promote-version": llm, **slot_params()}),
        ("vllm-rollback", "vllm-rollback", slot_params()),
    ]
    seconds = {}
    for label, workflow, params in steps:
        seconds[label] = round(run_local(workflow, params).duration, 1)
    return seconds


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def soak(duration_s: float = DURATION_S) -> dict[str, Any]:
    """The soak on the running stack; its figures and `problems` ([] = passed)."""
    from mlops.registry import mlflow_registry

    vllm_url, triton_grpc = os.environ.get("VLLM_URL"), os.environ.get("TRITON_GRPC_URL")
    if not vllm_url or not triton_grpc:
        raise RuntimeError('VLLM_URL / TRITON_GRPC_URL not set: `bin/mlops up` and eval "$(bin/mlops env)"')
    if duration_s < 30:
        raise ValueError(f"--duration-s must be at least 30 (warm-up and a middle), got {duration_s}")
    state = state_dir()
    missing = [name for name, rss in service_rss(state).items() if rss is None]
    if missing:
        raise RuntimeError(f"not running: {', '.join(missing)} (`bin/mlops up` after `make demo`)")
    registry = mlflow_registry()
    vision_version, llm_version = prepare_vision(registry), prepare_llm(registry)
    vision_live = registry.require_alias(VISION_MODEL, "live")
    llm_live = registry.require_alias(LLM_MODEL, "live")
    triton_model = registry.tags(VISION_MODEL, vision_live).get("triton_model_name") or VISION_MODEL
    warmup_s = max(10.0, min(60.0, duration_s * 0.1))
    middle_at_s = warmup_s + (duration_s - warmup_s) * 0.2
    pacers = [
        Pacer("vllm", VLLM_RATE_PER_S, vllm_sender(vllm_url)),
        Pacer("triton", TRITON_RATE_PER_S, triton_sender(triton_grpc, triton_model)),
    ]
    timeline: list[dict[str, Any]] = []
    middle: dict[str, Any] = {}

    def sample(label: str, at: float) -> dict[str, Rss | None]:
        rss = service_rss(state)
        timeline.append(
            {
                "t_s": round(at, 1),
                "label": label,
                "load_1m": load_average(),
                "rss_mib": {k: round(v.rss_bytes / 2**20, 1) if v else None for k, v in rss.items()},
                "file_mib": {k: round(v.file_bytes / 2**20, 1) if v else None for k, v in rss.items()},
            }
        )
        return rss

    def run_middle() -> None:
        try:
            middle["seconds"] = release_and_roll_back(vision_version, llm_version)
        except Exception as exc:  # recorded as a problem; the traffic keeps going to the end
            middle["error"] = f"{type(exc).__name__}: {exc}"[:300]

    started = time.perf_counter()
    threads = [threading.Thread(target=p.run, daemon=True) for p in pacers]
    for pacer in pacers:
        pacer.started = started
    for thread in threads:
        thread.start()
    worker = threading.Thread(target=run_middle, daemon=True)
    warm: dict[str, Rss | None] = {}
    next_sample = 0.0
    try:
        while True:
            now = time.perf_counter() - started
            if not warm and now >= warmup_s:
                warm = sample("after warm-up", now)
            if warm and worker.ident is None and now >= middle_at_s:
                middle["started_s"] = round(now, 1)
                worker.start()
            if worker.ident is not None and not worker.is_alive() and "ended_s" not in middle:
                middle["ended_s"] = round(now, 1)
            # the traffic lasts the duration, and at least 10 s past the middle's end
            if "ended_s" in middle and now >= max(duration_s, middle["ended_s"] + 10):
                break
            if now >= duration_s + 1800:
                middle.setdefault("error", "the middle did not end within 30 minutes past the duration")
                break
            if now >= next_sample:
                sample("start" if not timeline else "", now)
                next_sample += SAMPLE_EVERY_S
            time.sleep(0.5)
        end = sample("end", time.perf_counter() - started)
    finally:
        for pacer in pacers:
            pacer.stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    elapsed = time.perf_counter() - started
    traffic = {p.name: traffic_summary(p.outcomes, p.scheduled) for p in pacers}
    warm_ok = {k: v for k, v in warm.items() if v is not None}
    checks = memory_checks(warm_ok, end)
    found = problems(traffic, checks)
    if middle.get("error"):
        found.append(f"release and rollback: {middle['error']}")
    found += [f"{k}: not running after warm-up" for k, v in warm.items() if v is None]
    return {
        "benchmark": "soak",
        "duration_s": round(elapsed, 1),
        "requested_duration_s": duration_s,
        "warmup_s": warmup_s,
        "rates_per_s": {p.name: p.rate_per_s for p in pacers},
        "max_in_flight": MAX_IN_FLIGHT,
        "rss_tolerance": RSS_TOLERANCE,
        "vision": {"model": triton_model, "live": vision_live, "released_and_rolled_back": vision_version},
        "llm": {"slot": LLM_SLOT, "live": llm_live, "promoted_and_rolled_back": llm_version},
        "middle": middle,
        "traffic": traffic,
        "memory": [asdict(check) for check in checks],
        "load_average_1m": {
            "min": min(s["load_1m"] for s in timeline),
            "median": round(statistics.median(s["load_1m"] for s in timeline), 2),
            "max": max(s["load_1m"] for s in timeline),
        },
        "cpus": os.cpu_count(),
        "timeline": timeline,
        "passed": not found,
        "problems": found,
    }


class SoakFailed(AssertionError):
    """Requests failed or a service's memory left its bounds (the figures are recorded first)."""


def run_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What an earlier run's verdict rested on: failures, each service's RSS change, problems."""
    return {
        "measured_at": record.get("measured_at"),
        "duration_s": record.get("duration_s"),
        "failed": {target: t["failed"] for target, t in record.get("traffic", {}).items()},
        "rss_change": {m["service"]: m["growth"] for m in record.get("memory", [])},
        "problems": record.get("problems", []),
    }


def bench_soak(duration_s: float = DURATION_S) -> dict[str, Any]:
    """`make bench`'s entry: the 10-minute soak; its figures are recorded whether or not it passed,
    with the verdicts of the last `EARLIER_RUNS` runs before it."""
    from benchmarks.run import RESULTS_DIR, write_result

    previous = RESULTS_DIR / "soak.json"
    earlier: list[dict[str, Any]] = []
    if previous.is_file():
        record = json.loads(previous.read_text())
        earlier = [run_summary(record), *record.get("earlier_runs", [])][:EARLIER_RUNS]
    figures = {**soak(duration_s), "earlier_runs": earlier}
    if not figures["passed"]:
        write_result("soak", figures)
        raise SoakFailed("; ".join(figures["problems"]))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=DURATION_S, help="seconds of traffic")
    parser.add_argument("--output", type=Path, help="also write the figures (JSON) here")
    args = parser.parse_args(argv)
    figures = soak(args.duration_s)
    text = json.dumps({k: v for k, v in figures.items() if k != "timeline"}, indent=2)
    print(text)
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
