"""Step (canary): judge the candidate slot against live over one window, on Prometheus' figures.

Waits one scrape (`--canary-pad-s`) after the weight changed, then observes `--canary-window-s`
seconds of the public name's traffic at that weight (on a cluster the users'; locally, where
there are no users, `--canary-drive-requests` streamed completions sent through the router
during the window), waits one more scrape, then reads each slot's requests, errors, E2E P95 and TTFT P95 over the same window
(deployment.vllm.canary) and judges them with the pure `canary_gate`: enough candidate requests,
candidate error rate and P95s under absolute bounds, and, when live served in the window too,
error rate no higher and P95s no slower than live's by more than the ratios.

Effects: the figures and verdict become version tags `canary.w<weight>.*` on `staged`. A failed
analysis sets the weight back to 0 first (users off the candidate), then records `canary-failed`
on the version (mlops.registry `record_verdict`, guarded and audited); `live` is never touched.
A passing last step (`--record-pass=true`) records `canary-passed`.
"""

from __future__ import annotations

import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from pydantic import Field

from deployment.vllm.canary import (
    FAIL_ALIAS,
    PASS_ALIAS,
    CanaryBounds,
    MetricsQuery,
    PrometheusReader,
    canary_gate,
    check_bounds,
    figure_tags,
    read_slot,
)
from deployment.vllm.canary_shift import CanarySettings
from deployment.vllm.slots import CANDIDATE, LIVE, slot_name
from deployment.vllm.traffic import TrafficSplit, connect_split
from mlops import step
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.tracking import TAG_VALUE_LIMIT

PROMPTS = (
    "[INST] Skyloom keeps backups for 30 days.\n\nQuestion: How long are backups kept? [/INST]",
    "[INST] Skyloom services are documented here.\n\nQuestion: What is documented here? [/INST]",
    "[INST] Skyloom rotates keys every 90 days.\n\nQuestion: How often are keys rotated? [/INST]",
)


class Config(CanarySettings):
    weight: int = Field(
        0, ge=0, le=100, description="the candidate weight being judged (for tags and reasons)"
    )
    prometheus_url: str = Field("", description="Prometheus base URL scraping the router / endpoint picker")
    canary_window_s: float = Field(300.0, ge=0, description="seconds of traffic observed at this weight")
    canary_pad_s: float = Field(30.0, ge=0, description="Prometheus scrape interval: wait and window padding")
    canary_url: str = Field("", description="public OpenAI endpoint the drive requests go to (the router)")
    canary_drive_requests: int = Field(
        0,
        ge=0,
        description="requests sent through canary-url during the window (0: observe real traffic only)",
    )
    canary_drive_concurrency: int = Field(4, ge=1, description="concurrent drive requests")
    canary_min_requests: int = Field(20, ge=1, description="least candidate requests in the window")
    canary_max_error_rate: float = Field(0.01, description="highest candidate error rate, fraction 0..1")
    canary_max_error_rate_increase: float = Field(
        0.005, description="highest candidate error rate above live's, fraction 0..1"
    )
    canary_max_e2e_p95_s: float = Field(8.0, description="highest candidate E2E P95 (seconds)")
    canary_max_ttft_p95_s: float = Field(2.0, description="highest candidate TTFT P95 (seconds)")
    canary_max_e2e_ratio: float = Field(1.2, description="highest candidate / live E2E P95")
    canary_max_ttft_ratio: float = Field(1.2, description="highest candidate / live TTFT P95")
    record_pass: bool = Field(
        False, description="record canary-passed when this analysis passes (the last step)"
    )

    def bounds(self) -> CanaryBounds:
        return CanaryBounds(
            min_requests=self.canary_min_requests,
            max_error_rate=self.canary_max_error_rate,
            max_error_rate_increase=self.canary_max_error_rate_increase,
            max_e2e_p95_s=self.canary_max_e2e_p95_s,
            max_ttft_p95_s=self.canary_max_ttft_p95_s,
            max_e2e_ratio=self.canary_max_e2e_ratio,
            max_ttft_ratio=self.canary_max_ttft_ratio,
        )


def drive(url: str, model: str, requests: int, concurrency: int) -> int:
    """Send `requests` streamed completions for `model` to `url`; the number that failed."""

    def one(index: int, client: httpx.Client) -> bool:
        body = {"model": model, "prompt": PROMPTS[index % len(PROMPTS)], "max_tokens": 16, "stream": True}
        try:
            with client.stream("POST", "/v1/completions", json=body) as answer:
                text = "".join(answer.iter_text())
            return answer.status_code == 200 and '"error"' not in text
        except httpx.HTTPError:
            return False

    with (
        httpx.Client(base_url=url.rstrip("/"), timeout=120.0) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        done = list(pool.map(lambda i: one(i, client), range(requests)))
    return done.count(False)


def run(
    cfg: Config,
    registry: Registry | None = None,
    split: TrafficSplit | None = None,
    query: MetricsQuery | None = None,
) -> StepResult:
    bounds = check_bounds(cfg.bounds())  # a bad bound is refused before any traffic or alias moves
    if cfg.canary_drive_requests and not cfg.canary_url:
        raise BadInput("canary-drive-requests needs canary-url (the public endpoint to send them to)")
    registry = registry or mlflow_registry()
    split = split or connect_split(cfg.canary_split, cfg.served_name)
    query = query or PrometheusReader(cfg.prometheus_url)
    version = registry.require_alias(cfg.model_name, "staged")
    time.sleep(cfg.canary_pad_s)  # one scrape at the new weight before the window opens
    started = time.time()
    drive_failed = 0
    if cfg.canary_drive_requests:
        drive_failed = drive(
            cfg.canary_url, cfg.served_name, cfg.canary_drive_requests, cfg.canary_drive_concurrency
        )
    time.sleep(max(0.0, cfg.canary_window_s - (time.time() - started)))
    ended = time.time()
    time.sleep(cfg.canary_pad_s)
    range_s = max(1, math.ceil(ended - started + cfg.canary_pad_s))
    at = ended + cfg.canary_pad_s
    candidate = read_slot(query, cfg.served_name, slot_name(cfg.served_name, CANDIDATE), range_s, at)
    live = read_slot(query, cfg.served_name, slot_name(cfg.served_name, LIVE), range_s, at)
    verdict = canary_gate(candidate, live, bounds)
    prefix = f"canary.w{cfg.weight}"
    tags = {
        **figure_tags(prefix, "candidate", candidate),
        **figure_tags(prefix, "live", live),
        f"{prefix}.verdict": verdict.label,
        f"{prefix}.reason": verdict.reason[:TAG_VALUE_LIMIT],
        f"{prefix}.window_s": f"{ended - started:.1f}",
    }
    gate = f"canary analysis at {cfg.weight}%"
    if not verdict.passed:
        split.set_candidate_weight(0)  # traffic off the candidate before anything is recorded
    if not verdict.passed or cfg.record_pass:
        registry.record_verdict(
            verdict,
            model=cfg.model_name,
            version=version,
            tags=tags,
            pass_alias=PASS_ALIAS,
            fail_alias=FAIL_ALIAS,
            gate=gate,
        )
    else:
        registry.tag_version(cfg.model_name, version, tags)
    action = "weight back to 0%, canary-failed recorded" if not verdict.passed else "passed"
    return StepResult(
        outputs={
            "verdict": verdict.label,
            "version": version,
            "candidate-requests": f"{candidate.requests:.0f}",
            "live-requests": f"{live.requests:.0f}",
            "drive-failed": str(drive_failed),
        },
        summary=f"v{version} at {cfg.weight}%: {action} ({verdict.reason})",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
