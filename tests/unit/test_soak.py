"""The soak benchmark's verdict: failed and lost requests are counted, RSS stays within 10% of warm."""

from __future__ import annotations

import pytest

from benchmarks.soak import MemoryCheck, Outcome, Rss, memory_checks, problems, traffic_summary

MIB = 2**20


def test_every_answered_request_succeeding_is_no_failure() -> None:
    outcomes = [Outcome(i * 0.1, 0.010 + i * 0.001) for i in range(100)]
    summary = traffic_summary(outcomes, scheduled=100)
    assert (summary["scheduled"], summary["answered"], summary["failed"]) == (100, 100, 0)
    assert summary["errors"] == {}
    assert summary["p50_ms"] == pytest.approx(59.5)
    assert summary["p99_ms"] == 109.0 and summary["max_ms"] == 109.0
    assert problems({"vllm": summary}, []) == []


def test_errors_are_failures_counted_by_message() -> None:
    outcomes = [
        Outcome(0.0, 0.01),
        Outcome(0.1, 0.5, "HTTP 404: model not found"),
        Outcome(0.2, 0.5, "HTTP 404: model not found"),
        Outcome(0.3, 0.01, "no text"),
    ]
    summary = traffic_summary(outcomes, scheduled=4)
    assert summary["failed"] == 3
    assert summary["errors"] == {"HTTP 404: model not found": 2, "no text": 1}
    # latency figures are of the successful requests only
    assert summary["p50_ms"] == summary["max_ms"] == 10.0
    assert problems({"triton": summary}, []) == ["triton: 3 of 4 requests failed"]


def test_a_request_scheduled_and_never_answered_is_a_failure() -> None:
    summary = traffic_summary([Outcome(0.0, 0.01), Outcome(0.5, 0.01)], scheduled=5)
    assert summary["failed"] == 3
    assert summary["errors"] == {"scheduled, never answered": 3}
    assert problems({"vllm": summary}, []) == ["vllm: 3 of 5 requests failed"]


def test_no_successful_request_has_no_latency() -> None:
    summary = traffic_summary([Outcome(0.0, 1.0, "timeout")], scheduled=1)
    assert summary["failed"] == 1 and summary["p50_ms"] is None and summary["max_ms"] is None


def test_rss_within_ten_percent_either_way_passes() -> None:
    warm = {"mlflow": Rss(10, 100 * MIB, 2), "vllm": Rss(20, 2000 * MIB, 2)}
    end = {"mlflow": Rss(10, 110 * MIB, 2), "vllm": Rss(20, 1800 * MIB, 2)}
    checks = memory_checks(warm, end)
    assert [c.problem for c in checks] == ["", ""]
    assert checks[0] == MemoryCheck("mlflow", 100.0, 110.0, 0.1, "")
    assert checks[1].growth == -0.1
    assert problems({}, checks) == []


def test_rss_growing_past_ten_percent_fails_and_names_the_service() -> None:
    warm = {"s3": Rss(11, 200 * MIB, 1), "prometheus": Rss(12, 100 * MIB, 1)}
    end = {"s3": Rss(11, 221 * MIB, 1), "prometheus": Rss(12, 101 * MIB, 1)}
    checks = memory_checks(warm, end)
    assert checks[0].problem == "grew +10.5%, beyond ±10%"
    assert checks[1].problem == ""
    assert problems({}, checks) == ["s3: grew +10.5%, beyond ±10%"]


def test_rss_shrinking_past_ten_percent_is_out_of_bounds_too() -> None:
    checks = memory_checks({"triton": Rss(5, 400 * MIB, 1)}, {"triton": Rss(5, 300 * MIB, 1)})
    assert checks[0].problem == "shrank -25.0%, beyond ±10%"


def test_a_service_gone_or_restarted_fails_whatever_its_memory() -> None:
    warm = {"triton": Rss(5, 400 * MIB, 1), "vllm": Rss(6, 2000 * MIB, 2)}
    end = {"triton": None, "vllm": Rss(7, 2000 * MIB, 2)}
    checks = memory_checks(warm, end)
    assert [c.problem for c in checks] == ["not running at the end", "restarted (pid 6 -> 7)"]
    assert checks[0].end_mib is None and checks[0].growth is None
    assert len(problems({}, checks)) == 2


@pytest.mark.parametrize("tolerance", [0.0, 10.0, -0.1])
def test_a_tolerance_that_is_not_a_fraction_is_refused(tolerance: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        memory_checks({"s3": Rss(1, MIB, 1)}, {"s3": Rss(1, MIB, 1)}, tolerance=tolerance)


def test_no_memory_after_warm_up_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        memory_checks({"s3": Rss(1, 0, 1)}, {"s3": Rss(1, MIB, 1)})


def test_an_earlier_run_is_summarised_by_what_its_verdict_rested_on() -> None:
    from benchmarks.soak import run_summary

    record = {
        "measured_at": "2026-12-07T00:45:28Z",
        "duration_s": 601.1,
        "traffic": {"vllm": {"failed": 0, "scheduled": 1202}, "triton": {"failed": 2, "scheduled": 6008}},
        "memory": [{"service": "s3", "growth": 0.1494}, {"service": "triton", "growth": None}],
        "problems": ["s3: grew +14.9%, beyond ±10%"],
        "timeline": [{"t_s": 0.0}],
    }
    assert run_summary(record) == {
        "measured_at": "2026-12-07T00:45:28Z",
        "duration_s": 601.1,
        "failed": {"vllm": 0, "triton": 2},
        "rss_change": {"s3": 0.1494, "triton": None},
        "problems": ["s3: grew +14.9%, beyond ±10%"],
    }
