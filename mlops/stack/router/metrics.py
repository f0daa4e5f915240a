"""Per-slot request metrics in Prometheus' text format, with the Inference Extension's names.

The cluster's endpoint picker exports `inference_objective_request_total`,
`inference_objective_request_error_total`, `inference_objective_request_duration_seconds` and
`inference_objective_request_ttft_seconds`, labelled `model_name` (what the client asked for) and
`target_model_name` (the slot it was rewritten to). The router exports the same series, so the
canary analysis, the dashboard and the alerts run one PromQL on both. Written by hand, as the
Triton stand-in's metrics are: the project's environment has no Prometheus client library.
TTFT is observed for streamed requests only (a non-streamed answer has no first token to time).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

PREFIX = "inference_objective_request"
# seconds; E2E and TTFT of a tiny local model and of a 7B one on a GPU both fall inside
BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)

Labels = tuple[str, str]  # (model_name, target_model_name)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(BUCKETS, value)
        if index < len(BUCKETS):
            self.counts[index] += 1
        self.total += value
        self.count += 1


@dataclass
class RouterMetrics:
    """Counters and histograms per (requested model, target model)."""

    requests: dict[Labels, int] = field(default_factory=dict)
    errors: dict[Labels, int] = field(default_factory=dict)
    duration: dict[Labels, Histogram] = field(default_factory=dict)
    ttft: dict[Labels, Histogram] = field(default_factory=dict)

    def ensure(self, labels: Labels) -> None:
        """Series at zero for `labels`, before any request."""
        self.requests.setdefault(labels, 0)
        self.errors.setdefault(labels, 0)
        self.duration.setdefault(labels, Histogram())
        self.ttft.setdefault(labels, Histogram())

    def record(self, labels: Labels, duration_s: float, ttft_s: float | None, error: bool) -> None:
        self.requests[labels] = self.requests.get(labels, 0) + 1
        self.errors.setdefault(labels, 0)
        if error:
            self.errors[labels] += 1
        self.duration.setdefault(labels, Histogram()).observe(duration_s)
        if ttft_s is not None:
            self.ttft.setdefault(labels, Histogram()).observe(ttft_s)

    def render(self) -> str:
        lines: list[str] = []
        for suffix, help_text, values in (
            ("total", "Requests per requested model and the model they were routed to.", self.requests),
            (
                "error_total",
                "Failed requests (error status or broken stream) per model and target.",
                self.errors,
            ),
        ):
            lines += [f"# HELP {PREFIX}_{suffix} {help_text}", f"# TYPE {PREFIX}_{suffix} counter"]
            lines += [f"{PREFIX}_{suffix}{{{_labels(key)}}} {value}" for key, value in sorted(values.items())]
        for suffix, help_text, histograms in (
            ("duration_seconds", "End-to-end request latency seen by the router.", self.duration),
            ("ttft_seconds", "Time to the first streamed chunk seen by the router.", self.ttft),
        ):
            name = f"{PREFIX}_{suffix}"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
            for key, histogram in sorted(histograms.items()):
                labels, running = _labels(key), 0
                for bound, count in zip(BUCKETS, histogram.counts, strict=True):
                    running += count
                    lines.append(f'{name}_bucket{{{labels},le="{bound:g}"}} {running}')
                lines += [
                    f'{name}_bucket{{{labels},le="+Inf"}} {histogram.count}',
                    f"{name}_sum{{{labels}}} {histogram.total:.6f}",
                    f"{name}_count{{{labels}}} {histogram.count}",
                ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(key: Labels) -> str:
    return f'model_name="{_escape(key[0])}",target_model_name="{_escape(key[1])}"'
