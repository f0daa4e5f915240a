"""What a load test leaves behind: the results JSON, latency plots, and all of it in MLflow.

The results JSON carries, at its top level, the figures `vllm bench serve --save-result` writes
under the same names (`request_throughput`, `output_throughput`, `mean_ttft_ms`,
`median_ttft_ms`, `p99_ttft_ms`, the same for `tpot`, `itl`, `e2el`, ...), so the two can be
diffed on one server and one load; `server` holds the server-side figures and where they came
from, `requests` every request's record.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from performance.loadgen import LoadResult


def _clean(value: Any) -> Any:
    """JSON without NaN (not JSON): None where a figure could not be computed."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def results_document(
    result: LoadResult,
    figures: dict[str, Any],
    server: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    with_requests: bool = True,
) -> dict[str, Any]:
    """The results JSON: figures at the top (vllm bench's names), server side, every request."""
    document: dict[str, Any] = {
        **figures,
        "context": context or {},
        "spec": {k: v for k, v in vars(result.spec).items() if k != "api_key"},
        "server": server or {},
    }
    if with_requests:
        document["requests"] = [r.as_dict() for r in result.records]
    return _clean(document)  # type: ignore[no-any-return]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_distributions_png(result: LoadResult, path: Path, title: str = "") -> Path:
    """Histograms of TTFT, TPOT, ITL and end-to-end latency (ms) of the measured successful requests."""
    plt = _pyplot()
    ok = [r for r in result.records if r.success and not r.warmup]
    series = {
        "TTFT": [r.ttft_s * 1000 for r in ok],
        "TPOT": [r.tpot_s * 1000 for r in ok if r.output_tokens > 1],
        "ITL": [gap * 1000 for r in ok for gap in r.itl_s],
        "end-to-end latency": [r.e2el_s * 1000 for r in ok],
    }
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (name, values) in zip(axes.flat, series.items(), strict=True):
        if values:
            ax.hist(values, bins=min(50, max(5, len(values) // 4)), color="tab:blue", alpha=0.8)
            for q, style in ((50, "-"), (95, "--"), (99, ":")):
                import numpy as np

                ax.axvline(float(np.percentile(values, q)), color="tab:red", linestyle=style, label=f"p{q}")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no successful requests", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name)
        ax.set_xlabel("ms")
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{result.spec.model}: {result.spec.mode}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def timeline_png(result: LoadResult, path: Path, title: str = "") -> Path:
    """End-to-end latency of every request against the time it was sent; failures marked, warm-up shaded."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ok = [r for r in result.records if r.success]
    failed = [r for r in result.records if not r.success]
    ax.scatter([r.sent_at for r in ok], [r.e2el_s * 1000 for r in ok], s=4, label="ok", color="tab:blue")
    if failed:
        ax.scatter(
            [r.sent_at for r in failed],
            [r.e2el_s * 1000 for r in failed],
            s=10,
            marker="x",
            color="tab:red",
            label=f"failed ({len(failed)})",
        )
    warm = [r.sent_at for r in result.records if r.warmup]
    if warm:
        ax.axvspan(0, max(warm), color="grey", alpha=0.2, label="warm-up")
    ax.set_xlabel("sent at (s since start)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or f"{result.spec.model}: {result.spec.mode}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ms_figure(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) or not math.isfinite(value) else f"{value:.1f} ms"


def markdown_report(figures: dict[str, Any], server: dict[str, Any]) -> str:
    """`report.md`: the client-side figures the gate decides on, then the server's, each server-side
    quantile with the histogram bucket it lies in (one inside the first bucket is marked: it is an
    interpolation, not a measurement)."""
    lines = [
        "# Load test",
        "",
        f"{figures.get('completed', 0)} of {figures.get('total', 0)} requests succeeded "
        f"({figures.get('success_rate', 0.0):.1%}) in {figures.get('duration', 0.0):.1f} s: "
        f"{figures.get('request_throughput', 0.0):.2f} req/s, {figures.get('output_throughput', 0.0):.1f} output tok/s.",
        "",
        "## Client side (what the gate decides on)",
        "",
        "The gate uses these: every request's own timings, measured by the load generator with "
        "`vllm bench serve`'s definitions, exact at any latency. The server's histograms below only "
        "say which bucket a quantile lies in.",
        "",
        "| figure | median | p95 | p99 |",
        "|---|---|---|---|",
    ]
    for metric, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "end-to-end latency")):
        lines.append(
            f"| {label} | {_ms_figure(figures.get(f'median_{metric}_ms'))} | "
            f"{_ms_figure(figures.get(f'p95_{metric}_ms'))} | {_ms_figure(figures.get(f'p99_{metric}_ms'))} |"
        )
    lines += ["", f"## Server side (source: {server.get('source', 'none')})", ""]
    if server.get("note"):
        lines += [str(server["note"]), ""]
    buckets: dict[str, str] = server.get("quantile_buckets") or {}
    below = set(server.get("below_first_bucket") or [])
    if buckets:
        lines += ["| figure | histogram_quantile | bucket | reading |", "|---|---|---|---|"]
        for name, where in buckets.items():
            value = server.get(name)
            shown = "n/a" if not isinstance(value, (int, float)) else f"{value:.4g} s"
            reading = (
                "interpolated inside the first bucket: not a measurement"
                if name in below
                else "interpolated inside its bucket"
            )
            lines.append(f"| {name} | {shown} | {where} | {reading} |")
    else:
        lines.append("No server-side histogram figures for this window.")
    return "\n".join(lines) + "\n"


def write_artifacts(
    result: LoadResult,
    figures: dict[str, Any],
    server: dict[str, Any],
    context: dict[str, Any],
    directory: Path,
) -> list[Path]:
    """results.json, requests.jsonl, report.md and the two plots, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / "report.md"
    report.write_text(markdown_report(figures, server))
    results = directory / "results.json"
    results.write_text(
        json.dumps(results_document(result, figures, server, context, with_requests=False), indent=2) + "\n"
    )
    requests = directory / "requests.jsonl"
    requests.write_text("".join(json.dumps(_clean(r.as_dict())) + "\n" for r in result.records))
    plots = directory / "plots"
    plots.mkdir(exist_ok=True)
    return [
        results,
        requests,
        report,
        latency_distributions_png(result, plots / "latency_distributions.png"),
        timeline_png(result, plots / "timeline.png"),
    ]
