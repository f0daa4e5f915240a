"""What one load test measured: per-request records in, the figures `vllm bench serve` prints out.

Conventions are vllm bench's, so the two can be compared number for number:
- TTFT: request sent -> first chunk carrying text; E2EL: request sent -> last byte;
- TPOT: `(e2el - ttft) / (output_tokens - 1)` per request, 0 for a one-token answer;
- ITL: every gap between two chunks carrying text, all requests pooled;
- percentiles: numpy's linear interpolation; throughput = successful requests / duration, where
  the duration runs from the first measured request sent to the last one finished;
- goodput: successful requests meeting every SLO given (`<=`), per second of duration.

Latencies are kept in seconds in the records and in `*_s` figures; the `*_ms` figures carry
vllm bench's names (`mean_ttft_ms`, `p99_itl_ms`, ...).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 90, 95, 99)
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")


@dataclass
class RequestRecord:
    """One request: when it was sent, what came back and when, or why it failed."""

    index: int
    sent_at: float  # seconds since the test started (monotonic clock)
    model: str = ""
    warmup: bool = False
    success: bool = False
    error: str = ""  # the failure reason, empty on success
    ttft_s: float = 0.0
    e2el_s: float = 0.0
    itl_s: list[float] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_counted: str = "usage"  # "usage" (server's count) or "chunks" (no usage chunk came back)

    @property
    def tpot_s(self) -> float:
        if self.output_tokens <= 1:
            return 0.0
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)

    @property
    def finished_at(self) -> float:
        return self.sent_at + self.e2el_s

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tpot_s"] = self.tpot_s
        return data


@dataclass(frozen=True)
class Slos:
    """Per-request bounds for goodput, in seconds; 0 leaves a bound out."""

    ttft_s: float = 0.0
    tpot_s: float = 0.0
    e2el_s: float = 0.0

    def met_by(self, record: RequestRecord) -> bool:
        bounds = (("ttft_s", record.ttft_s), ("tpot_s", record.tpot_s), ("e2el_s", record.e2el_s))
        return record.success and all(
            value <= getattr(self, name) for name, value in bounds if getattr(self, name) > 0
        )

    def describe(self) -> str:
        bounds = (("ttft", self.ttft_s), ("tpot", self.tpot_s), ("e2el", self.e2el_s))
        return ", ".join(f"{name}<={value * 1000:g}ms" for name, value in bounds if value > 0) or "none"


def percentile(values: list[float], q: float) -> float:
    """numpy's default (linear) percentile; NaN for no values."""
    import numpy as np

    return float(np.percentile(values, q)) if values else math.nan


def distribution(values: list[float], percentiles: tuple[int, ...] = PERCENTILES) -> dict[str, float]:
    """mean, median, std, min, max and the percentiles of `values` (seconds), NaN when empty."""
    import numpy as np

    if not values:
        keys = ["mean", "median", "std", "min", "max", *(f"p{p}" for p in percentiles)]
        return dict.fromkeys(keys, math.nan)
    array = np.asarray(values, dtype=float)
    figures = {
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
    }
    figures.update({f"p{p}": float(np.percentile(array, p)) for p in percentiles})
    return figures


def summarize(records: list[RequestRecord], slos: Slos | None = None) -> dict[str, Any]:
    """The test's figures from its measured (non-warm-up) requests."""
    slos = slos or Slos()
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.success]
    duration = max(r.finished_at for r in measured) - min(r.sent_at for r in measured) if measured else 0.0
    per_second = (lambda n: n / duration) if duration > 0 else (lambda n: 0.0)
    samples = {
        "ttft": [r.ttft_s for r in ok],
        "tpot": [r.tpot_s for r in ok],
        "itl": [gap for r in ok for gap in r.itl_s],
        "e2el": [r.e2el_s for r in ok],
    }
    input_tokens = sum(r.input_tokens for r in ok)
    output_tokens = sum(r.output_tokens for r in ok)
    good = sum(1 for r in ok if slos.met_by(r))
    figures: dict[str, Any] = {
        "duration": duration,
        "total": len(measured),
        "completed": len(ok),
        "failed": len(measured) - len(ok),
        "success_rate": len(ok) / len(measured) if measured else 0.0,
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": per_second(len(ok)),
        "request_goodput": per_second(good),
        "goodput_fraction": good / len(measured) if measured else 0.0,
        "output_throughput": per_second(output_tokens),
        "total_token_throughput": per_second(input_tokens + output_tokens),
        "failure_reasons": dict(Counter(r.error for r in measured if not r.success).most_common()),
        "tokens_counted_by_chunks": sum(1 for r in ok if r.tokens_counted == "chunks"),
        "warmup_requests": len(records) - len(measured),
        "slos": asdict(slos),
    }
    for metric, values in samples.items():
        dist = distribution(values)
        for stat, value in dist.items():
            figures[f"{stat}_{metric}_s"] = value
        figures[f"mean_{metric}_ms"] = dist["mean"] * 1000
        figures[f"median_{metric}_ms"] = dist["median"] * 1000
        figures[f"std_{metric}_ms"] = dist["std"] * 1000
        for p in PERCENTILES:
            figures[f"p{p}_{metric}_ms"] = dist[f"p{p}"] * 1000
    return figures


def one_line(figures: dict[str, Any]) -> str:
    """A person's summary of a test: what passed through and how fast."""
    return (
        f"{figures['completed']}/{figures['total']} ok ({figures['success_rate']:.1%}) in "
        f"{figures['duration']:.1f}s; {figures['request_throughput']:.2f} req/s, "
        f"{figures['output_throughput']:.1f} out tok/s; e2el p50/p95 "
        f"{_ms(figures['p50_e2el_ms'])}/{_ms(figures['p95_e2el_ms'])}, ttft p95 {_ms(figures['p95_ttft_ms'])}"
    )


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}ms"
