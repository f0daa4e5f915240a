"""Server-side figures: PromQL construction, exposition parsing, histogram quantiles from scrape deltas.

The exposition below has the shape vLLM's /metrics serves (prometheus_client output: HELP/TYPE
lines, `engine` and `model_name` labels, `_created` series, LoRA info gauge); counts are ours.
"""

from __future__ import annotations

import math

import pytest

from performance import prometheus as prom

E2E_BOUNDS = ("0.3", "0.5", "0.8", "1.0", "1.5", "2.0", "+Inf")


def exposition(
    e2e: list[int], ttft: list[int], success: int, running: float, kv: float, lora_running: str
) -> str:
    labels = 'engine="0",model_name="aws-rag-qa"'
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{labels}}} {running}",
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{{{labels}}} 1.0",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f"vllm:kv_cache_usage_perc{{{labels}}} {kv}",
        "# HELP vllm:lora_requests_info Running stats on lora requests.",
        "# TYPE vllm:lora_requests_info gauge",
        'vllm:lora_requests_info{max_lora="2",running_lora_adapters="",waiting_lora_adapters=""} 1.7e+09',
        f'vllm:lora_requests_info{{max_lora="2",running_lora_adapters="{lora_running}",waiting_lora_adapters=""}} 1.8e+09',
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{engine="0",finished_reason="stop",model_name="aws-rag-qa"}} {success}.0',
        'vllm:request_success_total{engine="0",finished_reason="length",model_name="aws-rag-qa"} 0.0',
        'vllm:request_success_created{engine="0",finished_reason="stop",model_name="aws-rag-qa"} 1.7e+09',
        "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.",
        "# TYPE vllm:e2e_request_latency_seconds histogram",
        f"vllm:e2e_request_latency_seconds_sum{{{labels}}} 123.4",
    ]
    for bound, count in zip(E2E_BOUNDS, e2e, strict=True):
        lines.append(
            f'vllm:e2e_request_latency_seconds_bucket{{engine="0",le="{bound}",model_name="aws-rag-qa"}} {count}.0'
        )
    lines.append(f"vllm:e2e_request_latency_seconds_count{{{labels}}} {e2e[-1]}.0")
    lines.append(f"vllm:e2e_request_latency_seconds_created{{{labels}}} 1.7e+09")
    # another served base on the same exposition: must not leak into aws-rag-qa's figures
    lines.append('vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="other"} 999.0')
    for bound, count in zip(("0.01", "0.1", "1.0", "+Inf"), ttft, strict=True):
        lines.append(
            f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{bound}",model_name="aws-rag-qa"}} {count}.0'
        )
    return "\n".join(lines) + "\n"


BEFORE = exposition(
    [5, 10, 10, 10, 10, 10, 10], [10, 10, 10, 10], success=10, running=0.0, kv=0.0, lora_running=""
)
DURING = [
    exposition(
        [5, 10, 20, 40, 50, 60, 60],
        [30, 50, 60, 60],
        60,
        running=4.0,
        kv=0.2,
        lora_running="aws-rag-qa-candidate",
    ),
    exposition(
        [5, 10, 30, 70, 100, 110, 110],
        [40, 90, 110, 110],
        110,
        running=6.0,
        kv=0.4,
        lora_running="aws-rag-qa-candidate",
    ),
]
AFTER = exposition(
    [5, 10, 30, 70, 100, 110, 110], [40, 90, 110, 110], success=110, running=0.0, kv=0.0, lora_running=""
)
MODEL = {"model_name": "aws-rag-qa"}


def test_quantile_query_is_histogram_quantile_of_summed_rates() -> None:
    assert prom.quantile_query(prom.E2E, 0.95, 75, MODEL) == (
        'histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{model_name="aws-rag-qa"}[75s])))'
    )
    assert prom.quantile_query(prom.TTFT, 0.5, 30) == (
        "histogram_quantile(0.5, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[30s])))"
    )


def test_window_queries_cover_every_server_figure() -> None:
    queries = prom.window_queries(60, MODEL, adapter="aws-rag-qa-candidate")
    assert queries["ttft_p99_s"].startswith(
        "histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket"
    )
    assert queries["queue_time_p95_s"].startswith(
        "histogram_quantile(0.95, sum by (le) (rate(vllm:request_queue_time_seconds_bucket"
    )
    assert (
        queries["requests_succeeded"]
        == 'sum(increase(vllm:request_success_total{model_name="aws-rag-qa"}[60s]))'
    )
    assert (
        queries["running_max"]
        == 'sum(max_over_time(vllm:num_requests_running{model_name="aws-rag-qa"}[60s]))'
    )
    assert "vllm:kv_cache_usage_perc" in queries["kv_cache_usage_avg"]
    assert "or max(avg_over_time(vllm:gpu_cache_usage_perc" in queries["kv_cache_usage_avg"]  # older vLLM
    assert queries["gpu_util_avg"] == "avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL[60s]))"
    assert (
        'running_lora_adapters=~"(.*,)?aws\\\\-rag\\\\-qa\\\\-candidate(,.*)?"'
        in queries["adapter_seen_running"]
    )
    assert "adapter_seen_running" not in prom.window_queries(60)


def test_selector_escapes_quotes() -> None:
    assert prom.selector({"b": "x", "a": 'say "hi"'}) == '{a="say \\"hi\\"",b="x"}'
    assert prom.selector({}) == ""


def test_parse_exposition_reads_names_labels_values() -> None:
    samples = prom.parse_exposition(BEFORE + 'odd{label="a \\"quoted\\" value"} NaN\nnot a metric line\n')
    names = {s.name for s in samples}
    assert {
        "vllm:num_requests_running",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:lora_requests_info",
    } <= names
    bucket = next(s for s in samples if s.name.endswith("_bucket") and s.labels.get("le") == "0.5")
    assert bucket.labels == {"engine": "0", "le": "0.5", "model_name": "aws-rag-qa"} and bucket.value == 10.0
    odd = next(s for s in samples if s.name == "odd")
    assert odd.labels["label"] == 'a "quoted" value' and math.isnan(odd.value)


def test_histogram_quantile_matches_prometheus_semantics() -> None:
    buckets = [(0.3, 0.0), (0.5, 0.0), (0.8, 20.0), (1.0, 60.0), (1.5, 90.0), (2.0, 100.0), (math.inf, 100.0)]
    assert prom.histogram_quantile(0.5, buckets) == pytest.approx(0.95)  # 0.8 + 0.2 * 30/40
    assert prom.histogram_quantile(0.95, buckets) == pytest.approx(1.75)
    assert prom.histogram_quantile(0.99, buckets) == pytest.approx(1.95)
    # the rank falls in the +Inf bucket: the highest finite bound
    assert prom.histogram_quantile(0.99, [(1.0, 10.0), (2.0, 20.0), (math.inf, 100.0)]) == 2.0
    # first bucket: from 0
    assert prom.histogram_quantile(0.5, [(1.0, 10.0), (math.inf, 10.0)]) == pytest.approx(0.5)
    assert math.isnan(prom.histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))  # no observations
    assert math.isnan(prom.histogram_quantile(0.5, [(1.0, 3.0)]))  # no +Inf bucket
    assert prom.histogram_quantile(1.5, buckets) == math.inf


def test_scrape_deltas_give_the_window_figures() -> None:
    figures = prom.from_scrapes(
        prom.parse_exposition(BEFORE),
        prom.parse_exposition(AFTER),
        [prom.parse_exposition(text) for text in DURING],
        labels=MODEL,
        adapter="aws-rag-qa-candidate",
    )
    # e2e deltas per bucket: 0, 0, 20, 60, 90, 100, 100 (the hand-computed case above)
    assert figures["e2e_latency_p50_s"] == pytest.approx(0.95)
    assert figures["e2e_latency_p95_s"] == pytest.approx(1.75)
    assert figures["e2e_latency_p99_s"] == pytest.approx(1.95)
    # ttft deltas: 30, 80, 100, 100 -> p50: rank 50 in (0.01, 0.1], 0.01 + 0.09 * 20/50
    assert figures["ttft_p50_s"] == pytest.approx(0.01 + 0.09 * 20 / 50)
    assert figures["requests_succeeded"] == 100.0
    assert figures["running_avg"] == pytest.approx(5.0) and figures["running_max"] == 6.0
    assert figures["kv_cache_usage_max"] == pytest.approx(0.4)
    assert figures["adapter_seen_running"] == 1.0
    assert figures["gpu_util_avg"] is None  # no DCGM series
    assert figures["queue_time_p95_s"] is None  # no queue histogram in this exposition


def test_a_counter_that_went_down_restarted() -> None:
    before = prom.parse_exposition('c_total{a="1"} 50\nc_total{a="2"} 5\n')
    after = prom.parse_exposition('c_total{a="1"} 7\nc_total{a="2"} 8\n')
    assert sorted(s.value for s in prom.counter_deltas(before, after)) == [3.0, 7.0]


def test_older_vllm_cache_gauge_is_read_when_the_new_one_is_absent() -> None:
    old = prom.parse_exposition('vllm:gpu_cache_usage_perc{model_name="aws-rag-qa"} 0.3\n')
    figures = prom.from_scrapes(old, old, [old], labels=MODEL)
    assert figures["kv_cache_usage_avg"] == pytest.approx(0.3)


def test_server_figures_fall_back_to_scrapes_when_prometheus_is_unreachable() -> None:
    sampler = prom.MetricsSampler(url="http://unused/metrics")
    sampler.before, sampler.after = prom.parse_exposition(BEFORE), prom.parse_exposition(AFTER)
    figures = prom.server_figures(
        prometheus_url="http://127.0.0.1:9",  # nothing listens on the discard port
        sampler=sampler,
        window_start=100.0,
        window_end=160.0,
        pad_s=15.0,
        labels=MODEL,
        wait=False,
    )
    assert figures["source"] == "metrics-scrape"
    assert "Prometheus unavailable" in figures["note"]
    assert figures["e2e_latency_p95_s"] == pytest.approx(1.75)


def test_server_figures_without_any_source_say_so() -> None:
    sampler = prom.MetricsSampler(url="http://unused/metrics", errors=["ConnectError: refused"])
    figures = prom.server_figures(
        prometheus_url="", sampler=sampler, window_start=1.0, window_end=2.0, pad_s=0.0, wait=False
    )
    assert figures["source"] == "none"
    assert "no Prometheus URL set" in figures["note"] and "ConnectError" in figures["note"]
    empty = prom.server_figures(prometheus_url="", sampler=None, window_start=0.0, window_end=0.0, pad_s=0.0)
    assert empty["source"] == "none" and "no measured requests" in empty["note"]


class FakePrometheus(prom.PrometheusClient):
    """In-memory Prometheus: answers from a dict of query -> value (the Protocol boundary)."""

    def __init__(self, answers: dict[str, float | None]) -> None:
        super().__init__("http://fake")
        self.answers = answers
        self.asked: list[tuple[str, float]] = []

    def query(self, promql: str, at: float) -> float | None:
        self.asked.append((promql, at))
        return self.answers.get(promql)

    def vector(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        self.asked.append((promql, at))
        return [({"le": le}, float(count)) for le, count in self.buckets.get(promql, [])]

    buckets: dict[str, list[tuple[str, int]]] = {}


def test_from_prometheus_queries_the_padded_window_at_its_end() -> None:
    range_q = prom.quantile_query(prom.E2E, 0.95, 75, MODEL)
    client = FakePrometheus({range_q: 1.5})
    client.buckets = {
        prom.bucket_query(prom.E2E, 75, MODEL): [("0.3", 2), ("1.0", 8), ("2.0", 10), ("+Inf", 10)]
    }
    figures = prom.from_prometheus(client, 1000.0, 1060.0, 15.0, MODEL)
    assert figures["e2e_latency_p95_s"] == 1.5
    assert figures["ttft_p50_s"] is None
    assert {at for _, at in client.asked} == {1075.0}
    assert figures["quantile_buckets"]["e2e_latency_p95_s"] == "between 1 and 2 s"
    assert (
        figures["e2e_latency_p95_s_bucket_low_s"] == 1.0 and "ttft_p50_s" not in figures["quantile_buckets"]
    )


def test_a_quantile_comes_with_the_bucket_it_lies_in() -> None:
    buckets = [(0.3, 40.0), (0.5, 90.0), (0.8, 100.0), (math.inf, 100.0)]
    assert prom.quantile_bucket(0.5, buckets) == prom.QuantileBucket(0.3, 0.5)
    assert prom.quantile_bucket(0.95, buckets) == prom.QuantileBucket(0.5, 0.8)
    assert prom.quantile_bucket(0.2, buckets) == prom.QuantileBucket(0.0, 0.3)
    assert prom.quantile_bucket(0.5, [(0.3, 0.0), (math.inf, 0.0)]) is None  # no traffic
    assert prom.quantile_bucket(0.5, [(0.3, 3.0)]) is None  # no +Inf bucket: not a histogram


def test_traffic_under_the_first_bucket_is_marked_not_a_measurement() -> None:
    """vLLM's first E2E bucket is 0.3 s: 100 requests of 5 ms read p50 0.15 s, p95 0.285 s."""
    fast = [(0.3, 100.0), (0.5, 100.0), (math.inf, 100.0)]
    assert prom.histogram_quantile(0.95, fast) == pytest.approx(0.285)
    figures = prom.bucket_figures({"e2e_latency": fast})
    assert figures["below_first_bucket"] == ["e2e_latency_p50_s", "e2e_latency_p95_s", "e2e_latency_p99_s"]
    assert figures["e2e_latency_p95_s_bucket_low_s"] == 0.0
    assert figures["e2e_latency_p95_s_bucket_high_s"] == 0.3
    assert figures["quantile_buckets"]["e2e_latency_p95_s"] == "below the first bucket (< 0.3 s)"


def test_scrape_figures_carry_bucket_bounds() -> None:
    before, after = prom.parse_exposition(BEFORE), prom.parse_exposition(AFTER)
    figures = prom.from_scrapes(before, after, [], MODEL)
    # e2e deltas: 0, 0, 20, 60, 90, 100, 100 over bounds 0.3 .. +Inf: p50 lies in (0.8, 1.0]
    assert figures["quantile_buckets"]["e2e_latency_p50_s"] == "between 0.8 and 1 s"
    assert figures["e2e_latency_p50_s_bucket_low_s"] <= figures["e2e_latency_p50_s"] <= 1.0
    assert "e2e_latency_p50_s" not in figures["below_first_bucket"]


def test_the_load_test_report_says_which_figures_the_gate_used_and_marks_first_bucket_ones() -> None:
    from performance.report import markdown_report

    server = {
        "source": "prometheus",
        "e2e_latency_p95_s": 0.285,
        **prom.bucket_figures({"e2e_latency": [(0.3, 10.0), (math.inf, 10.0)]}),
    }
    figures = {"completed": 10, "total": 10, "success_rate": 1.0, "p95_e2el_ms": 12.5}
    report = markdown_report(figures, server)
    assert "## Client side (what the gate decides on)" in report
    assert "| end-to-end latency | n/a | 12.5 ms | n/a |" in report
    assert (
        "| e2e_latency_p95_s | 0.285 s | below the first bucket (< 0.3 s) | "
        "interpolated inside the first bucket: not a measurement |"
    ) in report
