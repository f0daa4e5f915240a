"""What the server saw during a load test: PromQL over the test window, or /metrics scrape deltas.

Primary source: Prometheus, queried once after the test at `end + pad` over `[window + pad]`
(`pad` = one scrape interval, so the scrape after the last request is in), e.g.
`histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[75s])))`.
A quantile is a ratio of bucket rates, so idle seconds in the pad do not bias it.

Fallback (Prometheus unreachable, or no vLLM series in the window): the server's own /metrics
scraped right before and right after the test, and every `sample_interval_s` during it. Histogram
quantiles come from the bucket deltas (after - before, a counter that went down restarted:
its after value is the delta), computed exactly as Prometheus' `histogram_quantile` does;
gauges (running, waiting, KV cache) are averaged over the samples. Which source was used is
recorded with the figures (`source`: `prometheus`, `metrics-scrape` or `none`, and `note`).

A histogram quantile is only known to lie in its bucket: every quantile comes with that bucket's
bounds (`<figure>_bucket_low_s`, `_bucket_high_s`, and a sentence under `quantile_buckets`), and
one inside the first bucket is listed under `below_first_bucket`: its value is an interpolation,
never to be read as a measurement. The gate decides on the client-side figures (every request's
own timings), not on these.

Metric names are vLLM's (v1 engine): `vllm:e2e_request_latency_seconds`,
`vllm:time_to_first_token_seconds`, `vllm:request_queue_time_seconds`,
`vllm:num_requests_running|waiting`, `vllm:kv_cache_usage_perc` (older servers:
`vllm:gpu_cache_usage_perc`; both are fractions 0..1 despite the name),
`vllm:request_success_total`, `vllm:lora_requests_info` (labels `running_lora_adapters`,
`waiting_lora_adapters`); GPU utilisation from DCGM's `DCGM_FI_DEV_GPU_UTIL` when it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

E2E = "vllm:e2e_request_latency_seconds"
TTFT = "vllm:time_to_first_token_seconds"
QUEUE = "vllm:request_queue_time_seconds"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:kv_cache_usage_perc"
KV_CACHE_OLD = "vllm:gpu_cache_usage_perc"
SUCCESS = "vllm:request_success_total"
LORA_INFO = "vllm:lora_requests_info"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"

QUANTILES = (0.5, 0.95, 0.99)
HISTOGRAMS = {"e2e_latency": E2E, "ttft": TTFT, "queue_time": QUEUE}
GAUGES = {"running": RUNNING, "waiting": WAITING, "kv_cache_usage": KV_CACHE}


def _q(q: float) -> str:
    return f"p{round(q * 100)}"


# --- PromQL ---------------------------------------------------------------------------------------


def selector(labels: dict[str, str]) -> str:
    """`{a="x",b="y"}` for exact label matches ('' for none)."""
    if not labels:
        return ""
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in labels.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(escaped.items())) + "}"


def quantile_query(metric: str, q: float, range_s: int, labels: dict[str, str] | None = None) -> str:
    """`histogram_quantile(q, sum by (le) (rate(<metric>_bucket{labels}[range])))`."""
    return (
        f"histogram_quantile({q:g}, sum by (le) (rate({metric}_bucket{selector(labels or {})}[{range_s}s])))"
    )


def window_queries(range_s: int, labels: dict[str, str] | None = None, adapter: str = "") -> dict[str, str]:
    """Every server-side figure of a test window as one PromQL expression each."""
    sel = selector(labels or {})
    queries: dict[str, str] = {}
    for name, metric in HISTOGRAMS.items():
        for q in QUANTILES:
            queries[f"{name}_{_q(q)}_s"] = quantile_query(metric, q, range_s, labels)
    queries["queue_time_mean_s"] = (
        f"sum(rate({QUEUE}_sum{sel}[{range_s}s])) / sum(rate({QUEUE}_count{sel}[{range_s}s]))"
    )
    queries["requests_succeeded"] = f"sum(increase({SUCCESS}{sel}[{range_s}s]))"
    for name, metric in (("running", RUNNING), ("waiting", WAITING)):
        queries[f"{name}_avg"] = f"sum(avg_over_time({metric}{sel}[{range_s}s]))"
        queries[f"{name}_max"] = f"sum(max_over_time({metric}{sel}[{range_s}s]))"
    for stat in ("avg", "max"):
        queries[f"kv_cache_usage_{stat}"] = (
            f"max({stat}_over_time({KV_CACHE}{sel}[{range_s}s])) or max({stat}_over_time({KV_CACHE_OLD}{sel}[{range_s}s]))"
        )
    queries["gpu_util_avg"] = f"avg(avg_over_time({GPU_UTIL}[{range_s}s]))"
    if adapter:
        pattern = f"(.*,)?{re.escape(adapter)}(,.*)?".replace("\\", "\\\\")
        queries["adapter_seen_running"] = (
            f'count(count_over_time({LORA_INFO}{{running_lora_adapters=~"{pattern}"}}[{range_s}s])) > bool 0'
        )
    return queries


class PrometheusUnavailable(Exception):
    """Prometheus could not be asked (unreachable, error answer): use the scrape fallback."""


class PrometheusClient:
    """Instant queries over Prometheus' HTTP API."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, promql: str, at: float) -> float | None:
        """The single value of an instant query at unix time `at`; None for an empty or NaN result."""
        import httpx

        try:
            response = httpx.get(
                f"{self.url}/api/v1/query",
                params={"query": promql, "time": f"{at:.3f}"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(f"{self.url} unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise PrometheusUnavailable(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusUnavailable(f"{self.url}: {body.get('error', body)}")
        result = body["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def vector(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        """Every series of an instant query at unix time `at`: (labels, value)."""
        import httpx

        try:
            response = httpx.get(
                f"{self.url}/api/v1/query",
                params={"query": promql, "time": f"{at:.3f}"},
                timeout=self.timeout_s,
            )
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise PrometheusUnavailable(f"{self.url}: {promql}: {type(exc).__name__}: {exc}") from exc
        return [(dict(r.get("metric", {})), float(r["value"][1])) for r in result]


def bucket_query(metric: str, range_s: int, labels: dict[str, str] | None = None) -> str:
    """`sum by (le) (increase(<metric>_bucket{labels}[range]))`: the window's buckets."""
    return f"sum by (le) (increase({metric}_bucket{selector(labels or {})}[{range_s}s]))"


def buckets_of(series: list[tuple[dict[str, str], float]]) -> list[tuple[float, float]]:
    """A `sum by (le)` answer as (upper bound, cumulative count), sorted by bound."""
    pairs = [(float(m["le"]), v if math.isfinite(v) else 0.0) for m, v in series if "le" in m]
    return sorted(pairs)


def from_prometheus(
    client: PrometheusClient,
    window_start: float,
    window_end: float,
    pad_s: float,
    labels: dict[str, str] | None = None,
    adapter: str = "",
) -> dict[str, Any]:
    """The window's figures from Prometheus (with each quantile's bucket bounds);
    PrometheusUnavailable when it cannot answer."""
    range_s = max(1, math.ceil(window_end - window_start + pad_s))
    at = window_end + pad_s
    figures: dict[str, Any] = {
        name: client.query(promql, at) for name, promql in window_queries(range_s, labels, adapter).items()
    }
    histograms = {
        name: buckets_of(client.vector(bucket_query(metric, range_s, labels), at))
        for name, metric in HISTOGRAMS.items()
    }
    return {**figures, **bucket_figures(histograms)}


# --- exposition text and scrape deltas ------------------------------------------------------------

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_exposition(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (comments skipped, unparsable lines ignored)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(match["labels"] or "")}
        samples.append(Sample(match["name"], labels, value))
    return samples


def _matches(sample: Sample, labels: dict[str, str]) -> bool:
    return all(sample.labels.get(k) == v for k, v in labels.items())


def _series_key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


def counter_deltas(before: list[Sample], after: list[Sample]) -> list[Sample]:
    """after - before per series; a series that went down (server restart) counts its after value."""
    earlier = {_series_key(s): s.value for s in before}
    deltas = []
    for sample in after:
        old = earlier.get(_series_key(sample), 0.0)
        delta = sample.value - old if sample.value >= old else sample.value
        deltas.append(Sample(sample.name, sample.labels, delta))
    return deltas


def histogram_buckets(
    samples: Iterable[Sample], metric: str, labels: dict[str, str]
) -> list[tuple[float, float]]:
    """`sum by (le)` of `<metric>_bucket`: (upper bound, cumulative count), sorted by bound."""
    sums: dict[float, float] = {}
    for sample in samples:
        if sample.name == f"{metric}_bucket" and "le" in sample.labels and _matches(sample, labels):
            bound = float(sample.labels["le"])
            sums[bound] = sums.get(bound, 0.0) + sample.value
    return sorted(sums.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' `histogram_quantile` on cumulative buckets (linear inside a bucket); NaN without data."""
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    counts = [count for _, count in buckets]
    for i in range(1, len(counts)):  # as Prometheus: force monotonic counts
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, count in enumerate(counts) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    end = buckets[b][0]
    if b == 0 and end <= 0:
        return end
    start = 0.0 if b == 0 else buckets[b - 1][0]
    below = 0.0 if b == 0 else counts[b - 1]
    in_bucket = counts[b] - below
    return start + (end - start) * ((rank - below) / in_bucket) if in_bucket else end


@dataclass(frozen=True)
class QuantileBucket:
    """The histogram bucket a quantile falls in: all the histogram can say about it. Inside one
    bucket `histogram_quantile` interpolates linearly, which is an assumption, not a measurement:
    with vLLM's first E2E bucket at 0.3 s, any traffic under 300 ms reads p50 0.15 s, p95 0.285 s."""

    low: float
    high: float  # +Inf for the last bucket

    @property
    def below_first_bucket(self) -> bool:
        return self.low == 0.0

    def describe(self) -> str:
        if self.below_first_bucket:
            return f"below the first bucket (< {self.high:g} s)"
        if math.isinf(self.high):
            return f"above the last bound (> {self.low:g} s)"
        return f"between {self.low:g} and {self.high:g} s"


def quantile_bucket(q: float, buckets: list[tuple[float, float]]) -> QuantileBucket | None:
    """The bucket `histogram_quantile(q, buckets)` interpolates in; None without data."""
    if not 0 <= q <= 1 or len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    counts = [count for _, count in buckets]
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    if counts[-1] == 0:
        return None
    rank = q * counts[-1]
    b = next(i for i, count in enumerate(counts) if count >= rank)
    return QuantileBucket(0.0 if b == 0 else buckets[b - 1][0], buckets[b][0])


def bucket_figures(histograms: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """For every server-side quantile: its bucket's bounds (`<figure>_bucket_low_s` / `_high_s`,
    numbers MLflow logs) and, under `quantile_buckets`, a sentence per figure; the figures that are
    an interpolation inside the first bucket are listed under `below_first_bucket`."""
    figures: dict[str, Any] = {}
    sentences: dict[str, str] = {}
    below: list[str] = []
    for name, buckets in histograms.items():
        for q in QUANTILES:
            bucket = quantile_bucket(q, buckets)
            if bucket is None:
                continue
            figure = f"{name}_{_q(q)}_s"
            figures[f"{figure}_bucket_low_s"] = bucket.low
            figures[f"{figure}_bucket_high_s"] = bucket.high
            sentences[figure] = bucket.describe()
            if bucket.below_first_bucket:
                below.append(figure)
    figures["quantile_buckets"] = sentences
    figures["below_first_bucket"] = below
    return figures


def _sum(samples: Iterable[Sample], name: str, labels: dict[str, str]) -> float | None:
    values = [s.value for s in samples if s.name == name and _matches(s, labels)]
    return sum(values) if values else None


def _kv_cache_usage(samples: list[Sample], labels: dict[str, str]) -> float | None:
    value = _sum(samples, KV_CACHE, labels)
    return value if value is not None else _sum(samples, KV_CACHE_OLD, labels)


def _running_adapters(samples: list[Sample]) -> set[str]:
    """Adapters running at a scrape: the latest `lora_requests_info` series (its value is its time)."""
    infos = [s for s in samples if s.name == LORA_INFO]
    if not infos:
        return set()
    latest = max(infos, key=lambda s: s.value)
    return {a for a in latest.labels.get("running_lora_adapters", "").split(",") if a}


def from_scrapes(
    before: list[Sample],
    after: list[Sample],
    during: list[list[Sample]],
    labels: dict[str, str] | None = None,
    adapter: str = "",
) -> dict[str, Any]:
    """The window's figures from a scrape before, one after, and samples during the test."""
    labels = labels or {}
    deltas = counter_deltas(before, after)
    figures: dict[str, Any] = {}
    histograms = {name: histogram_buckets(deltas, metric, labels) for name, metric in HISTOGRAMS.items()}
    for name, buckets in histograms.items():
        for q in QUANTILES:
            value = histogram_quantile(q, buckets)
            figures[f"{name}_{_q(q)}_s"] = value if math.isfinite(value) else None
    figures.update(bucket_figures(histograms))
    queue_sum, queue_count = _sum(deltas, f"{QUEUE}_sum", labels), _sum(deltas, f"{QUEUE}_count", labels)
    figures["queue_time_mean_s"] = queue_sum / queue_count if queue_sum is not None and queue_count else None
    figures["requests_succeeded"] = _sum(deltas, SUCCESS, labels)
    snapshots = during or [after]
    for name, metric in (("running", RUNNING), ("waiting", WAITING)):
        values = [v for snap in snapshots if (v := _sum(snap, metric, labels)) is not None]
        figures[f"{name}_avg"] = sum(values) / len(values) if values else None
        figures[f"{name}_max"] = max(values) if values else None
    kv = [v for snap in snapshots if (v := _kv_cache_usage(snap, labels)) is not None]
    figures["kv_cache_usage_avg"] = sum(kv) / len(kv) if kv else None
    figures["kv_cache_usage_max"] = max(kv) if kv else None
    gpu = [v for snap in snapshots if (v := _sum(snap, GPU_UTIL, {})) is not None]
    figures["gpu_util_avg"] = sum(gpu) / len(gpu) if gpu else None
    if adapter:
        seen = [
            adapter in _running_adapters(snap) for snap in snapshots if any(s.name == LORA_INFO for s in snap)
        ]
        figures["adapter_seen_running"] = (1.0 if any(seen) else 0.0) if seen else None
    return figures


@dataclass
class MetricsSampler:
    """Scrapes a server's /metrics before, during (every `interval_s`) and after a test."""

    url: str
    interval_s: float = 2.0
    timeout_s: float = 5.0
    before: list[Sample] | None = None
    after: list[Sample] | None = None
    during: list[list[Sample]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def scrape(self, client: Any) -> list[Sample] | None:
        import httpx

        try:
            response = await client.get(self.url, timeout=self.timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return None
        return parse_exposition(response.text)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Scrape once now (`before`, then `ready` is set), every interval until `stop`, once more (`after`)."""
        import httpx

        async with httpx.AsyncClient() as client:
            try:
                self.before = await self.scrape(client)
            finally:
                if ready is not None:
                    ready.set()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
                if not stop.is_set() and (snapshot := await self.scrape(client)) is not None:
                    self.during.append(snapshot)
            self.after = await self.scrape(client)


def server_figures(
    *,
    prometheus_url: str,
    sampler: MetricsSampler | None,
    window_start: float,
    window_end: float,
    pad_s: float,
    labels: dict[str, str] | None = None,
    adapter: str = "",
    wait: bool = True,
) -> dict[str, Any]:
    """Prometheus first, the scrape deltas when it cannot answer; `source` and `note` say which and why."""
    notes = []
    if window_end <= window_start:
        return {"source": "none", "note": "no measured requests: no window to query"}
    if prometheus_url:
        if wait:  # the scrape after the last request must have happened
            time.sleep(max(0.0, window_end + pad_s - time.time()))
        try:
            figures = from_prometheus(
                PrometheusClient(prometheus_url), window_start, window_end, pad_s, labels, adapter
            )
        except PrometheusUnavailable as exc:
            notes.append(f"Prometheus unavailable ({exc})")
        else:
            if figures.get("e2e_latency_p95_s") is not None or figures.get("requests_succeeded"):
                return {**figures, "source": "prometheus", "note": f"{prometheus_url}, pad {pad_s:g}s"}
            notes.append(f"Prometheus at {prometheus_url} has no vLLM series for the window")
    else:
        notes.append("no Prometheus URL set")
    if sampler is not None and sampler.before is not None and sampler.after is not None:
        figures = from_scrapes(sampler.before, sampler.after, sampler.during, labels, adapter)
        notes.append(f"figures from /metrics scrape deltas ({len(sampler.during)} samples during the test)")
        return {**figures, "source": "metrics-scrape", "note": "; ".join(notes)}
    if sampler is not None and sampler.errors:
        notes.append(f"/metrics scrape failed: {sampler.errors[-1]}")
    return {"source": "none", "note": "; ".join(notes)}
