"""Prometheus text exposition with NVIDIA Triton's metric names, so dashboards, alerts and the
performance gate query the stand-in exactly as they query Triton (`nv_inference_*`).

Every loaded version has its series (at 0 until it serves), as in Triton; counters carry no
`_total` suffix, as in Triton.
"""

from __future__ import annotations

from mlops.stack.triton.core import ModelManager

# name, type, help, how to read it from VersionStats
_PER_VERSION = [
    ("nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "counter", "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)"),
    (
        "nv_inference_exec_count",
        "counter",
        "Number of model executions performed (does not include cached requests)",
    ),
    ("nv_inference_request_duration_us", "counter", "Cumulative inference request duration in microseconds"),
    ("nv_inference_queue_duration_us", "counter", "Cumulative inference queuing duration in microseconds"),
    (
        "nv_inference_compute_input_duration_us",
        "counter",
        "Cumulative compute input duration in microseconds",
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "counter",
        "Cumulative compute inference duration in microseconds",
    ),
    (
        "nv_inference_compute_output_duration_us",
        "counter",
        "Cumulative inference compute output duration in microseconds",
    ),
]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(manager: ModelManager) -> str:
    """The /metrics page."""
    rows = manager.statistics()
    lines: list[str] = []
    for name, kind, help_text in _PER_VERSION:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for model, version, stats in rows:
            labels = f'model="{_escape(model)}",version="{version}"'
            if name == "nv_inference_request_failure":
                for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER"):
                    count = stats.failure_reasons.get(reason, 0)
                    lines.append(f'{name}{{{labels},reason="{reason}"}} {count}')
                continue
            value = {
                "nv_inference_request_success": stats.success,
                "nv_inference_count": stats.inference_count,
                "nv_inference_exec_count": stats.execution_count,
                "nv_inference_request_duration_us": (stats.success_ns + stats.failure_ns) // 1000,
                "nv_inference_queue_duration_us": 0,
                "nv_inference_compute_input_duration_us": 0,
                "nv_inference_compute_infer_duration_us": stats.compute_infer_ns // 1000,
                "nv_inference_compute_output_duration_us": 0,
            }[name]
            lines.append(f"{name}{{{labels}}} {value}")
    lines += [
        "# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.",
        "# TYPE nv_inference_pending_request_count gauge",
    ]
    for model, version, stats in rows:
        lines.append(
            f'nv_inference_pending_request_count{{model="{_escape(model)}",version="{version}"}} {stats.pending}'
        )
    return "\n".join(lines) + "\n"
