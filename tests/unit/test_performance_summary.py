"""Figures of a load test from request records: percentiles, TPOT/ITL conventions, throughput, goodput."""

from __future__ import annotations

import math

import numpy as np
import pytest

from performance.summary import RequestRecord, Slos, distribution, one_line, percentile, summarize


def ok(
    index: int, sent_at: float, ttft: float, e2el: float, tokens: int, itl: list[float] | None = None
) -> RequestRecord:
    return RequestRecord(
        index=index,
        sent_at=sent_at,
        success=True,
        ttft_s=ttft,
        e2el_s=e2el,
        itl_s=itl or [],
        input_tokens=10,
        output_tokens=tokens,
    )


def failed(index: int, sent_at: float, reason: str) -> RequestRecord:
    return RequestRecord(index=index, sent_at=sent_at, error=reason, e2el_s=0.01)


def test_percentile_is_numpys_linear_interpolation() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(7.6)  # 4 + 0.6 * (10 - 4)
    assert percentile(values, 99) == pytest.approx(9.76)
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert math.isnan(percentile([], 50))


def test_distribution_of_known_values() -> None:
    dist = distribution([0.1, 0.2, 0.3, 0.4])
    assert dist["mean"] == pytest.approx(0.25)
    assert dist["median"] == pytest.approx(0.25)
    assert dist["p50"] == pytest.approx(0.25)
    assert dist["p99"] == pytest.approx(0.397)
    assert dist["std"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4]))
    assert all(math.isnan(v) for v in distribution([]).values())


def test_tpot_follows_vllm_bench() -> None:
    record = ok(0, 0.0, ttft=0.1, e2el=1.1, tokens=11)
    assert record.tpot_s == pytest.approx(0.1)  # (1.1 - 0.1) / (11 - 1)
    assert ok(1, 0.0, ttft=0.1, e2el=0.1, tokens=1).tpot_s == 0.0


def test_summary_figures_against_hand_computed_values() -> None:
    records = [
        ok(0, 0.0, ttft=0.1, e2el=1.0, tokens=10, itl=[0.1] * 9),
        ok(1, 0.5, ttft=0.2, e2el=1.5, tokens=14, itl=[0.1] * 13),
        ok(2, 1.0, ttft=0.3, e2el=2.0, tokens=20, itl=[0.05] * 19),
        failed(3, 1.0, "connect error"),
    ]
    figures = summarize(records)
    assert figures["duration"] == pytest.approx(3.0)  # first sent 0.0, last finished 1.0 + 2.0
    assert figures["total"] == 4 and figures["completed"] == 3 and figures["failed"] == 1
    assert figures["success_rate"] == pytest.approx(0.75)
    assert figures["request_throughput"] == pytest.approx(1.0)  # 3 ok / 3 s
    assert figures["output_throughput"] == pytest.approx(44 / 3)
    assert figures["total_token_throughput"] == pytest.approx((44 + 30) / 3)
    assert figures["mean_ttft_ms"] == pytest.approx(200.0)
    assert figures["median_e2el_ms"] == pytest.approx(1500.0)
    assert figures["p99_e2el_ms"] == pytest.approx(1990.0)
    assert figures["p95_e2el_s"] == pytest.approx(1.95)
    itl = [0.1] * 22 + [0.05] * 19
    assert figures["mean_itl_ms"] == pytest.approx(np.mean(itl) * 1000)  # pooled over requests
    assert figures["failure_reasons"] == {"connect error": 1}


def test_warmup_requests_are_left_out() -> None:
    records = [ok(0, 0.0, 5.0, 9.0, 4), ok(1, 10.0, 0.1, 1.0, 4), ok(2, 10.0, 0.1, 1.0, 4)]
    records[0].warmup = True
    figures = summarize(records)
    assert figures["total"] == 2 and figures["warmup_requests"] == 1
    assert figures["duration"] == pytest.approx(1.0)
    assert figures["p99_e2el_ms"] == pytest.approx(1000.0)


def test_goodput_counts_requests_meeting_every_slo() -> None:
    records = [
        ok(0, 0.0, ttft=0.1, e2el=1.0, tokens=10),  # tpot 0.1
        ok(1, 0.0, ttft=0.5, e2el=1.0, tokens=10),  # ttft too slow
        ok(2, 0.0, ttft=0.1, e2el=3.0, tokens=10),  # e2el and tpot too slow
        failed(3, 0.0, "timeout"),
    ]
    slos = Slos(ttft_s=0.2, tpot_s=0.1, e2el_s=2.0)
    figures = summarize(records, slos)
    assert figures["request_goodput"] == pytest.approx(1 / 3.0)
    assert figures["goodput_fraction"] == pytest.approx(0.25)
    assert summarize(records)["goodput_fraction"] == pytest.approx(0.75)  # no SLOs: every success
    assert slos.describe() == "ttft<=200ms, tpot<=100ms, e2el<=2000ms"
    assert Slos().describe() == "none"


def test_zero_successful_requests_gives_nan_latencies_not_an_error() -> None:
    figures = summarize([failed(0, 0.0, "connect error"), failed(1, 0.1, "connect error")])
    assert figures["completed"] == 0 and figures["success_rate"] == 0.0
    assert math.isnan(figures["p95_e2el_ms"])
    assert figures["request_throughput"] == 0.0
    assert "0/2 ok" in one_line(figures)


def test_no_records_at_all() -> None:
    figures = summarize([])
    assert figures["total"] == 0 and figures["duration"] == 0.0 and figures["success_rate"] == 0.0
