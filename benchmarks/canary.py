"""A whole adapter canary under load, through the router: the share each step gives the candidate,
and every request's outcome from 10% to the promote.

On the running local stack (`mlops up` with vLLM and its router; at least one registered
`mistral-7b-lora` version on the served base, two if there are): a public name of its own gets
`<name>-live` (one version) and `<name>-candidate` (the other, or the same one), then `CLIENTS`
threads stream completions for the public name through the router without pause while the split
goes 10% -> 50% -> 100% (`deployment.vllm.traffic.RouterSplit`, what `canary_shift` does), each step
held for `PER_STEP` requests; then the release in vllm-canary's order: the candidate's version
swapped into the live slot in place (`deployment.vllm.slots.fill`, what promote does), the split
back to 0, the candidate slot emptied; then `AFTER` more requests. Which slot answered each
request is the router's `x-routed-model` header; the share of a step counts the requests sent
after its weight was set and before the next one. The router's own counters
(`inference_objective_request_total`) are read before and after, and must agree.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.vllm_swap import two_versions

CLIENTS = 4
PER_STEP = 1000
AFTER = 200
WEIGHTS = (10, 50, 100)
PROMPT = "[INST] Skyloom keeps backups for 30 days.\n\nQuestion: How long are backups kept? [/INST]"


@dataclass
class Record:
    phase: str
    slot: str
    error: str
    latency_s: float


@dataclass
class Traffic:
    """`CLIENTS` threads streaming completions for `model` through `url`, tagged with the phase they were sent in."""

    url: str
    model: str
    phase: str = "warm-up"
    records: list[Record] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        body = {"model": self.model, "prompt": PROMPT, "max_tokens": 4, "temperature": 0, "stream": True}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                phase, started, slot, error, tokens = self.phase, time.perf_counter(), "", "", 0
                try:
                    with client.stream("POST", "/v1/completions", json=body) as answer:
                        slot = answer.headers.get("x-routed-model", "")
                        if answer.status_code != 200:
                            error = f"HTTP {answer.status_code}: {answer.read()[:120]!r}"
                        for line in answer.iter_lines():
                            if line.startswith("data: {"):
                                tokens += 1
                            if '"error"' in line:
                                error = line[:160]
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:160]
                if not error and not tokens:
                    error = "no token streamed"
                self.records.append(Record(phase, slot, error, time.perf_counter() - started))

    def count(self, phase: str) -> int:
        return sum(1 for r in self.records if r.phase == phase)

    def wait_for(self, phase: str, requests: int, timeout_s: float = 900.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(phase) < requests:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{phase}: {self.count(phase)} requests after {timeout_s:.0f}s")
            time.sleep(0.2)

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        return threads


def router_counts(url: str, model: str) -> dict[str, float]:
    """The router's `inference_objective_request_total` per target of `model`."""
    from performance.prometheus import parse_exposition

    samples = parse_exposition(httpx.get(f"{url}/metrics", timeout=10).text)
    return {
        s.labels["target_model_name"]: s.value
        for s in samples
        if s.name == "inference_objective_request_total" and s.labels.get("model_name") == model
    }


def bench_canary() -> dict[str, Any]:
    from deployment.vllm.slots import empty, fill
    from deployment.vllm.traffic import RouterSplit
    from mlops.registry import mlflow_registry
    from mlops.serving.vllm import connect

    vllm_url, router_url = os.environ.get("VLLM_URL"), os.environ.get("VLLM_ROUTER_URL")
    if not vllm_url or not router_url:
        raise RuntimeError(
            'VLLM_URL / VLLM_ROUTER_URL are not set: `bin/mlops up` (after vllm-training) and eval "$(bin/mlops env)"'
        )
    state = Path(os.environ.get("MLOPS_STATE_DIR", Path(__file__).resolve().parents[1] / ".stack"))
    server = connect(vllm_url)
    try:
        old, new = two_versions(mlflow_registry(), [server], state / "vllm" / "adapters")
    except RuntimeError:
        from benchmarks.vllm_swap import MODEL
        from deployment.vllm.adapters import servable_adapter

        old = new = servable_adapter(mlflow_registry(), MODEL, "1", state / "vllm" / "adapters", [server])
    public = f"bench{uuid.uuid4().hex[:6]}"
    live, candidate = f"{public}-live", f"{public}-candidate"
    server.load_adapter(live, old)
    server.load_adapter(candidate, new)
    split = RouterSplit(router_url, public)
    split.set_candidate_weight(0)
    before = router_counts(router_url, public)
    traffic = Traffic(router_url, public)
    threads = traffic.run()
    started = time.monotonic()
    try:
        traffic.wait_for("warm-up", 50)
        for weight in WEIGHTS:
            split.set_candidate_weight(weight)
            traffic.phase = f"{weight}%"
            traffic.wait_for(traffic.phase, PER_STEP)
        release_started = time.perf_counter()
        fill([server], live, new)  # promote: the live slot takes the candidate's version in place
        split.set_candidate_weight(0)
        empty([server], candidate)
        release_s = time.perf_counter() - release_started
        traffic.phase = "after"
        traffic.wait_for("after", AFTER)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    elapsed = time.monotonic() - started
    after = router_counts(router_url, public)
    server.unload_adapter(live)
    steps = []
    for weight in WEIGHTS:
        sent = [r for r in traffic.records if r.phase == f"{weight}%"]
        to_candidate = sum(1 for r in sent if r.slot == candidate)
        share = to_candidate / len(sent)
        steps.append(
            {
                "weight_pct": weight,
                "requests": len(sent),
                "to_candidate": to_candidate,
                "candidate_share_pct": round(100 * share, 2),
                "deviation_pp": round(100 * share - weight, 2),
                "failed": sum(1 for r in sent if r.error),
            }
        )
    failed = [r for r in traffic.records if r.error]
    routed = {slot: after.get(slot, 0) - before.get(slot, 0) for slot in (live, candidate)}
    answered = {slot: sum(1 for r in traffic.records if r.slot == slot) for slot in (live, candidate)}
    return {
        "benchmark": "canary",
        "clients": CLIENTS,
        "per_step": PER_STEP,
        "versions": "two" if old != new else "one (both slots)",
        "requests": len(traffic.records),
        "failed": len(failed),
        "errors": sorted({r.error for r in failed})[:5],
        "steps": steps,
        "after_release": {
            "requests": traffic.count("after"),
            "to_live": sum(1 for r in traffic.records if r.phase == "after" and r.slot == live),
        },
        "release_ms": round(release_s * 1000, 1),
        "latency_p50_ms": round(statistics.median(r.latency_s for r in traffic.records) * 1000, 1),
        "wall_s": round(elapsed, 1),
        "router_counters_agree": routed == {k: float(v) for k, v in answered.items()},
        "router_counters": routed,
    }
