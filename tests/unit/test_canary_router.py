"""The router's pure parts: the weighted choice, the rewrite, the metrics text, the admin endpoint.

Proxying to real vLLM replicas (streams, errors, Prometheus scraping the router) is covered by
tests/integration/test_canary_router.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mlops.errors import BadInput
from mlops.stack.router.metrics import RouterMetrics
from mlops.stack.router.server import RouterState, build_app
from mlops.stack.router.split import (
    CANDIDATE,
    LIVE,
    SmoothWeightedRoundRobin,
    canary_split,
    check_weight,
    rewrite,
)
from performance.prometheus import parse_exposition


@pytest.mark.parametrize("weight", [0, 1, 10, 33, 50, 90, 99, 100])
def test_every_hundred_requests_carry_exactly_the_weight(weight: int) -> None:
    split = canary_split(weight)
    for _ in range(5):  # each block of 100 picks, not only the total
        picks = [split.pick() for _ in range(100)]
        assert picks.count(CANDIDATE) == weight and picks.count(LIVE) == 100 - weight


def test_the_candidate_share_is_spread_out_not_bunched() -> None:
    split = canary_split(10)
    picks = "".join("c" if split.pick() == CANDIDATE else "." for _ in range(200))
    assert "cc" not in picks and "." * 10 not in picks  # one in every ten, evenly


def test_uneven_weights_hold_over_their_sum() -> None:
    split = SmoothWeightedRoundRobin({"a": 5, "b": 1, "c": 1})
    picks = [split.pick() for _ in range(70)]
    assert (picks.count("a"), picks.count("b"), picks.count("c")) == (50, 10, 10)


@pytest.mark.parametrize("bad", [-1, 101, 10.5, True, "10", None])
def test_a_weight_outside_whole_percent_is_refused(bad: object) -> None:
    with pytest.raises(BadInput, match="weight"):
        check_weight(bad)


def test_the_public_name_is_rewritten_to_the_slot_and_everything_else_kept() -> None:
    body = json.dumps({"model": "aws-rag-qa", "prompt": "hi", "max_tokens": 4, "stream": True}).encode()
    routed = rewrite(body, "aws-rag-qa", CANDIDATE)
    assert (routed.requested, routed.target, routed.stream) == ("aws-rag-qa", "aws-rag-qa-candidate", True)
    assert json.loads(routed.body) == {
        "model": "aws-rag-qa-candidate",
        "prompt": "hi",
        "max_tokens": 4,
        "stream": True,
    }
    chat = json.dumps({"model": "aws-rag-qa", "messages": [{"role": "user", "content": "x"}]}).encode()
    assert json.loads(rewrite(chat, "aws-rag-qa", LIVE).body)["model"] == "aws-rag-qa-live"


def test_another_model_name_passes_unchanged() -> None:
    body = b'{"model": "aws-rag-qa-live", "prompt": "hi"}'
    routed = rewrite(body, "aws-rag-qa", CANDIDATE)
    assert routed.body is body and routed.target == "aws-rag-qa-live"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"prompt": "no model"}', b'{"model": 3}'])
def test_a_request_without_a_model_is_bad_input(body: bytes) -> None:
    with pytest.raises(BadInput):
        rewrite(body, "aws-rag-qa", LIVE)


def test_metrics_are_cumulative_histograms_with_the_extension_names() -> None:
    metrics = RouterMetrics()
    labels = ("aws-rag-qa", "aws-rag-qa-candidate")
    metrics.record(labels, 0.3, 0.04, error=False)
    metrics.record(labels, 2.5, None, error=True)
    samples = {(s.name, s.labels.get("le", "")): s.value for s in parse_exposition(metrics.render())}
    assert samples[("inference_objective_request_total", "")] == 2
    assert samples[("inference_objective_request_error_total", "")] == 1
    assert samples[("inference_objective_request_duration_seconds_bucket", "0.5")] == 1
    assert samples[("inference_objective_request_duration_seconds_bucket", "3")] == 2
    assert samples[("inference_objective_request_duration_seconds_bucket", "+Inf")] == 2
    assert samples[("inference_objective_request_ttft_seconds_count", "")] == 1  # streamed only
    assert samples[("inference_objective_request_duration_seconds_sum", "")] == pytest.approx(2.8)


def test_both_slots_have_series_before_any_request(tmp_path: Path) -> None:
    # a counter that appears only with its first request loses that request to increase()
    state = RouterState(["aws-rag-qa"], ["127.0.0.1:1"], None)
    targets = {s.labels["target_model_name"] for s in parse_exposition(state.metrics.render())}
    assert targets == {"aws-rag-qa-live", "aws-rag-qa-candidate"}


def test_the_split_is_set_at_run_time_and_kept_across_restarts(tmp_path: Path) -> None:
    state_file = tmp_path / "split.json"
    with TestClient(build_app(RouterState(["aws-rag-qa"], ["127.0.0.1:1"], state_file))) as client:
        assert client.get("/admin/split/aws-rag-qa").json()["candidate_weight"] == 0
        answer = client.put("/admin/split/aws-rag-qa", json={"candidate_weight": 10})
        assert answer.status_code == 200 and answer.json()["live_weight"] == 90
        assert client.put("/admin/split/other", json={"candidate_weight": 50}).status_code == 200
        assert client.get("/admin/split").json()["splits"] == {"aws-rag-qa": 10, "other": 50}
    restarted = RouterState(["aws-rag-qa"], ["127.0.0.1:1"], state_file)
    assert restarted.weights == {"aws-rag-qa": 10, "other": 50}
    targets = {s.labels["target_model_name"] for s in parse_exposition(restarted.metrics.render())}
    assert {"other-live", "other-candidate"} <= targets


@pytest.mark.parametrize(
    "body", [{"candidate_weight": 150}, {"candidate_weight": "ten"}, {"weight": 10}, [10]]
)
def test_a_bad_split_is_refused_and_changes_nothing(tmp_path: Path, body: object) -> None:
    state_file = tmp_path / "split.json"
    with TestClient(build_app(RouterState(["aws-rag-qa"], ["127.0.0.1:1"], state_file))) as client:
        client.put("/admin/split/aws-rag-qa", json={"candidate_weight": 10})
        answer = client.put("/admin/split/aws-rag-qa", json=body)
        assert answer.status_code == 400 and "weight" in answer.json()["error"]["message"]
        assert client.get("/admin/split/aws-rag-qa").json()["candidate_weight"] == 10
    assert json.loads(state_file.read_text()) == {"splits": {"aws-rag-qa": 10}}


def test_an_unreachable_replica_is_a_502_counted_as_an_error_of_its_slot() -> None:
    state = RouterState(["aws-rag-qa"], ["127.0.0.1:9"], None)  # discard port: nothing listens
    with TestClient(build_app(state, timeout_s=2)) as client:
        answer = client.post("/v1/completions", json={"model": "aws-rag-qa", "prompt": "x"})
        assert answer.status_code == 502 and "unreachable" in answer.json()["error"]["message"]
        assert client.post("/v1/completions", content=b"{").status_code == 400
    assert state.metrics.errors[("aws-rag-qa", "aws-rag-qa-live")] == 1
