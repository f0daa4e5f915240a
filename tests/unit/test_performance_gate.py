"""The performance gate: absolute SLOs, the four baseline comparisons, zero successes, and the alias moves it makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.errors import AliasConflict, BadInput
from mlops.registry import InMemoryBackend, Registry
from performance.gate import (
    Baseline,
    Figures,
    Slos,
    figures_of_run,
    find_baseline,
    performance_gate,
    record_verdict,
)

MODEL = "mistral-7b-lora"


def figures(
    p95: float = 1.0, ttft: float = 0.2, rps: float = 5.0, success: float = 1.0, **kw: object
) -> Figures:
    base = {"total": 100, "completed": round(100 * success), "failure_reasons": {}, "aborted": ""}
    base.update(kw)
    return Figures(success_rate=success, throughput_rps=rps, p95_latency_s=p95, ttft_p95_s=ttft, **base)  # type: ignore[arg-type]


def names(verdict_checks: list) -> dict[str, bool]:  # type: ignore[type-arg]
    return {c.name: c.passed for c in verdict_checks}


def test_absolute_slos_pass_and_say_no_baseline() -> None:
    result = performance_gate(figures(), Slos(), None)
    assert result.passed
    assert names(result.checks) == {
        "p95_latency_s": True,
        "ttft_p95_s": True,
        "request_throughput": True,
        "success_rate": True,
    }
    assert "no perf-passed baseline: absolute SLOs only" in result.reason


@pytest.mark.parametrize(
    ("kwargs", "failed"),
    [
        ({"p95": 8.5}, "p95_latency_s"),
        ({"ttft": 2.01}, "ttft_p95_s"),
        ({"rps": 1.9}, "request_throughput"),
        ({"success": 0.98}, "success_rate"),
        # the SLOs are strict (P95 < 8 s, TTFT P95 < 2 s, > 2 req/s, > 99%): the bound itself fails
        ({"p95": 8.0}, "p95_latency_s"),
        ({"ttft": 2.0}, "ttft_p95_s"),
        ({"rps": 2.0}, "request_throughput"),
        ({"success": 0.99}, "success_rate"),
    ],
)
def test_each_absolute_slo_fails_on_its_own(kwargs: dict[str, float], failed: str) -> None:
    result = performance_gate(figures(**kwargs), Slos(), None)
    assert not result.passed
    assert [c.name for c in result.checks if not c.passed] == [failed]
    assert failed in result.reason


def test_just_inside_the_strict_slos_passes() -> None:
    assert performance_gate(figures(p95=7.99, ttft=1.99, rps=2.01, success=0.991), Slos(), None).passed


def test_cluster_defaults_are_the_seed_slos() -> None:
    """Step config, dataclass and both workflows' defaults agree: P95 < 8 s, TTFT < 2 s, > 2 req/s, > 99%."""
    import yaml

    from performance.gate import Config

    expected = {
        "max_p95_latency_s": 8.0,
        "max_ttft_p95_s": 2.0,
        "min_throughput_rps": 2.0,
        "min_success_rate": 0.99,
    }
    assert {k: getattr(Slos(), k) for k in expected} == expected
    assert {k: getattr(Config.model_validate({"run_id": "r1"}).slos(), k) for k in expected} == expected
    root = Path(__file__).resolve().parents[2]
    cluster = yaml.safe_load((root / "workflows/params/cluster.yaml").read_text())
    for source in ("vllm-performance.yaml", "llm-e2e.yaml"):
        params = yaml.safe_load((root / "workflows" / source).read_text())["spec"]["arguments"]["parameters"]
        defaults = {p["name"]: p.get("value") for p in params}
        for key, value in expected.items():
            name = "perf-" + key.replace("_", "-")
            assert float(defaults[name]) == value, (source, name)
            assert float(cluster[name]) == value, ("cluster.yaml", name)
        for key in ("max_latency_ratio", "max_ttft_ratio", "min_throughput_ratio", "max_success_rate_drop"):
            name = "perf-" + key.replace("_", "-")
            assert float(defaults[name]) == getattr(Slos(), key), (source, name)


BASELINE = Baseline("3", p95_latency_s=1.0, throughput_rps=5.0, ttft_p95_s=0.2, success_rate=1.0)


def test_four_baseline_comparisons_pass_at_their_inclusive_bounds() -> None:
    ok = performance_gate(figures(p95=1.15, ttft=0.23, rps=4.25, success=0.995), Slos(), BASELINE)
    assert ok.passed, ok.reason
    assert [c.name for c in ok.checks][4:] == [
        "p95_latency_vs_baseline",
        "ttft_p95_vs_baseline",
        "throughput_vs_baseline",
        "success_rate_drop_vs_baseline",
    ]
    assert "baseline: v3 (p95 1s, ttft p95 0.2s, 5 req/s, success 1)" in ok.reason


@pytest.mark.parametrize(
    ("kwargs", "failed", "value"),
    [
        ({"p95": 1.2}, "p95_latency_vs_baseline", 1.2),
        ({"ttft": 0.24}, "ttft_p95_vs_baseline", 1.2),
        ({"rps": 4.2}, "throughput_vs_baseline", 0.84),
        ({"success": 0.994}, "success_rate_drop_vs_baseline", 0.006),
    ],
)
def test_each_baseline_comparison_fails_on_its_own_within_the_absolute_slos(
    kwargs: dict[str, float], failed: str, value: float
) -> None:
    """Every figure here meets its absolute SLO: only the comparison with v3 rejects it."""
    result = performance_gate(figures(**kwargs), Slos(), BASELINE)
    assert not result.passed
    failing = [c for c in result.checks if not c.passed]
    assert [c.name for c in failing] == [failed]
    assert failing[0].value == pytest.approx(value)
    assert failed in result.reason


def test_bad_baseline_figures_are_bad_input() -> None:
    with pytest.raises(BadInput, match="baseline v3 ttft_p95_s"):
        performance_gate(figures(), Slos(), Baseline("3", 1.0, 10.0, 0.0, 1.0))
    with pytest.raises(BadInput, match="baseline v3 success_rate"):
        performance_gate(figures(), Slos(), Baseline("3", 1.0, 10.0, 0.2, 99.0))
    with pytest.raises(BadInput, match="max_ttft_ratio"):
        performance_gate(figures(), Slos(max_ttft_ratio=0.0), BASELINE)
    with pytest.raises(BadInput, match="max_success_rate_drop"):
        performance_gate(figures(), Slos(max_success_rate_drop=1.5), BASELINE)


def test_zero_successful_requests_fail_with_a_clear_reason() -> None:
    dead = Figures(
        total=40,
        completed=0,
        success_rate=0.0,
        throughput_rps=0.0,
        p95_latency_s=None,
        ttft_p95_s=None,
        failure_reasons={"connect error": 40},
        aborted="stopped after 40 failed requests in a row (last: connect error)",
    )
    result = performance_gate(dead, Slos(), Baseline("1", 1.0, 1.0, 0.1, 1.0))
    assert not result.passed
    assert result.reason.startswith("0 of 40 requests succeeded (connect error x40): no latency to judge")
    assert "stopped early" in result.reason


def test_no_measured_request() -> None:
    empty = Figures(
        total=0, completed=0, success_rate=0.0, throughput_rps=0.0, p95_latency_s=None, ttft_p95_s=None
    )
    result = performance_gate(empty, Slos(), None)
    assert not result.passed and "no request was measured" in result.reason


def test_bad_bounds_and_percents_are_bad_input() -> None:
    with pytest.raises(BadInput, match="looks like a percent"):
        performance_gate(figures(), Slos(min_success_rate=99.0), None)
    with pytest.raises(BadInput, match="max_latency_ratio"):
        performance_gate(figures(), Slos(max_latency_ratio=0.0), None)
    with pytest.raises(BadInput, match="not a finite"):
        performance_gate(figures(p95=float("nan")), Slos(), None)


def test_figures_of_run() -> None:
    metrics = {
        "total": 10.0,
        "completed": 9.0,
        "success_rate": 0.9,
        "request_throughput": 3.0,
        "p95_e2el_s": 1.0,
        "p95_ttft_s": 0.1,
    }
    got = figures_of_run(metrics, {"failure_reasons": '{"timeout": 1}'})
    assert got.completed == 9 and got.p95_latency_s == 1.0 and got.failure_reasons == {"timeout": 1}
    with pytest.raises(BadInput, match=r"performance\.loadtest"):
        figures_of_run({"accuracy": 1.0}, {})
    with pytest.raises(BadInput, match="no p95_e2el_s"):
        figures_of_run({k: v for k, v in metrics.items() if k != "p95_e2el_s"}, {})
    zero = figures_of_run(
        {"total": 5.0, "completed": 0.0, "success_rate": 0.0, "request_throughput": 0.0}, {}
    )
    assert zero.p95_latency_s is None


# --- alias moves (in-memory registry) --------------------------------------------------------------


def registry_with(versions: int) -> Registry:
    registry = Registry(InMemoryBackend(), actor="test")
    for _ in range(versions):
        registry.register(MODEL, "s3://x", None)
    return registry


def judge(
    registry: Registry,
    version: str,
    passed: bool,
    p95: float = 1.0,
    rps: float = 5.0,
    ttft: float = 0.2,
    success: float = 1.0,
) -> None:
    slos = Slos(max_p95_latency_s=10.0 if passed else 0.5)
    result = performance_gate(figures(p95=p95, rps=rps), slos, None)
    assert result.passed is passed
    record_verdict(
        registry,
        model=MODEL,
        version=version,
        result=result,
        tags={
            "perf.p95_latency_s": repr(p95),
            "perf.request_throughput": repr(rps),
            "perf.ttft_p95_s": repr(ttft),
            "perf.success_rate": repr(success),
            "perf.verdict": result.label,
        },
        pass_alias="perf-passed",
        fail_alias="perf-failed",
    )


def test_pass_then_baseline_then_retest_failure_restores_the_previous_baseline() -> None:
    registry = registry_with(3)
    assert find_baseline(registry, MODEL, "1", "perf-passed")[0] is None
    judge(registry, "1", passed=True, p95=1.0, rps=10.0)
    assert registry.alias(MODEL, "perf-passed") == "1"
    judge(registry, "2", passed=True, p95=1.1, rps=9.0, ttft=0.3, success=0.998)
    assert registry.alias(MODEL, "perf-passed") == "2"
    baseline, note = find_baseline(registry, MODEL, "3", "perf-passed")
    assert baseline == Baseline("2", 1.1, 9.0, 0.3, 0.998) and note == ""
    # re-testing v2 compares with v1 (where perf-passed was before v2), not with itself
    assert find_baseline(registry, MODEL, "2", "perf-passed")[0] == Baseline("1", 1.0, 10.0, 0.2, 1.0)
    judge(registry, "2", passed=False)
    assert registry.alias(MODEL, "perf-failed") == "2"
    assert registry.alias(MODEL, "perf-passed") == "1"  # taken back from v2
    assert registry.tags(MODEL, "2")["perf.verdict"] == "fail"


def test_failure_then_pass_takes_perf_failed_back() -> None:
    registry = registry_with(1)
    judge(registry, "1", passed=False)
    assert registry.alias(MODEL, "perf-failed") == "1"
    judge(registry, "1", passed=True)
    assert registry.alias(MODEL, "perf-passed") == "1"
    assert registry.alias(MODEL, "perf-failed") is None


def test_baseline_without_figures_means_absolute_only() -> None:
    registry = registry_with(2)
    registry.move_alias(MODEL, "perf-passed", "1", reason="set by hand")
    baseline, note = find_baseline(registry, MODEL, "2", "perf-passed")
    assert baseline is None and "carries no perf.p95_latency_s" in note


@pytest.mark.parametrize(
    ("tags", "note"),
    [
        # e.g. tags written by hand: two of the four figures
        (
            {"perf.p95_latency_s": "1.0", "perf.request_throughput": "5.0"},
            "carries no perf.ttft_p95_s, perf.success_rate",
        ),
        (
            {
                "perf.p95_latency_s": "1.0",
                "perf.request_throughput": "5.0",
                "perf.ttft_p95_s": "x",
                "perf.success_rate": "1",
            },
            "no numbers",
        ),
        (
            {
                "perf.p95_latency_s": "1.0",
                "perf.request_throughput": "5.0",
                "perf.ttft_p95_s": "0.2",
                "perf.success_rate": "99",
            },
            "unusable perf figures",
        ),
    ],
)
def test_baseline_with_missing_or_unusable_figures_means_absolute_only(
    tags: dict[str, str], note: str
) -> None:
    registry = registry_with(2)
    registry.tag_version(MODEL, "1", tags)
    registry.move_alias(MODEL, "perf-passed", "1", reason="set by hand")
    baseline, got = find_baseline(registry, MODEL, "2", "perf-passed")
    assert baseline is None and note in got and "absolute SLOs only" in got


def test_a_concurrent_move_is_refused_before_the_verdict_alias_moves() -> None:
    registry = registry_with(2)

    result = performance_gate(figures(), Slos(), None)
    original_tag = registry.tag_version

    def tag_then_race(model: str, version: str, tags: dict[str, str]) -> None:
        original_tag(model, version, tags)
        registry.backend.set_alias(MODEL, "perf-passed", "1")  # another workflow got in between

    registry.tag_version = tag_then_race  # type: ignore[method-assign]
    with pytest.raises(AliasConflict):
        record_verdict(
            registry,
            model=MODEL,
            version="2",
            result=result,
            tags={},
            pass_alias="perf-passed",
            fail_alias="perf-failed",
        )
    assert registry.alias(MODEL, "perf-passed") == "1"
