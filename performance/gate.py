"""Step (performance gate): did the staged adapter hold the SLOs under load? `perf-passed` or `perf-failed`.

Reads the figures the `performance.loadtest` run logged, judges them with `performance_gate`
(pure). Each of the four figures has an absolute SLO, strict as the SLOs are written (end-to-end
P95 < 8 s, TTFT P95 < 2 s, > 2 requests/s, success rate > 0.99 by default) and, when a baseline
exists, a comparison with it (inclusive: P95 at most `max_latency_ratio` times the baseline's, TTFT
P95 at most `max_ttft_ratio` times, throughput at least `min_throughput_ratio` times, success
rate at most `max_success_rate_drop` below the baseline's). The baseline is the version behind
`perf-passed`, read from its `perf.*` tags; when that is the version under test itself (a
re-test), the version `perf-passed` was at before it. No baseline: absolute SLOs only, and the
verdict says so.

Effects, in this order, all or nothing before the first alias move: the figures and verdict as
version tags (`perf.p95_latency_s`, `perf.request_throughput`, ..., `perf.verdict`); the
opposite verdict alias taken back from this version if it was there (back to where it was
before, e.g. `perf-passed` to the previous passing version); then `perf-passed` or
`perf-failed` moved to the version, guarded (refused if someone moved it meanwhile). The
version under test must still be `staged` (else exit 2). Zero successful requests is a
failing verdict with that reason, not an error.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import AliasConflict, BadInput
from mlops.gates import Check, Verdict, check, require_finite, require_fraction, verdict
from mlops.models.names import LLM_MODEL
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.tracking import TAG_VALUE_LIMIT, get_run, log_json, mlflow_errors, tracking_client

GATE_TAG = "perf.verdict"
# run metric (performance.loadtest) -> version tag
FIGURE_TAGS = {
    "p50_e2el_s": "perf.p50_latency_s",
    "p95_e2el_s": "perf.p95_latency_s",
    "p99_e2el_s": "perf.p99_latency_s",
    "p95_ttft_s": "perf.ttft_p95_s",
    "p95_tpot_s": "perf.tpot_p95_s",
    "request_throughput": "perf.request_throughput",
    "output_throughput": "perf.output_tokens_per_s",
    "success_rate": "perf.success_rate",
    "goodput_fraction": "perf.goodput_fraction",
    "completed": "perf.completed",
    "total": "perf.total",
}


@dataclass(frozen=True)
class Slos:
    """The gate's bounds: the absolute SLOs are strict (`<` / `>`), the baseline bounds inclusive."""

    max_p95_latency_s: float = 8.0
    max_ttft_p95_s: float = 2.0
    min_throughput_rps: float = 2.0
    min_success_rate: float = 0.99  # fraction
    max_latency_ratio: float = 1.15  # P95 / baseline P95
    max_ttft_ratio: float = 1.15  # TTFT P95 / baseline TTFT P95
    min_throughput_ratio: float = 0.85  # throughput / baseline throughput
    max_success_rate_drop: float = 0.005  # baseline success rate - success rate (fraction)


@dataclass(frozen=True)
class Figures:
    """What the load test measured, as the gate reads it (latencies None without a success)."""

    total: int
    completed: int
    success_rate: float
    throughput_rps: float
    p95_latency_s: float | None
    ttft_p95_s: float | None
    failure_reasons: dict[str, int] = field(default_factory=dict)
    aborted: str = ""


@dataclass(frozen=True)
class Baseline:
    """The last version that passed: its version number and figures."""

    version: str
    p95_latency_s: float
    throughput_rps: float
    ttft_p95_s: float
    success_rate: float


def _positive(name: str, value: float) -> float:
    value = require_finite(name, value)
    if value <= 0:
        raise BadInput(f"{name}={value} must be > 0")
    return value


def performance_gate(
    figures: Figures, slos: Slos, baseline: Baseline | None, baseline_note: str = ""
) -> Verdict:
    """Absolute SLOs, and the baseline ratios when a baseline exists; the reason says which applied."""
    for name in (
        "max_p95_latency_s",
        "max_ttft_p95_s",
        "max_latency_ratio",
        "max_ttft_ratio",
        "min_throughput_ratio",
    ):
        _positive(name, getattr(slos, name))
    require_finite("min_throughput_rps", slos.min_throughput_rps)
    require_fraction("min_success_rate", slos.min_success_rate)
    require_fraction("max_success_rate_drop", slos.max_success_rate_drop)
    success_rate = require_fraction("success_rate", figures.success_rate)
    notes = []
    if figures.aborted:
        notes.append(f"load test stopped early: {figures.aborted}")
    if figures.total == 0:
        return _with_notes(
            verdict([check("measured_requests", 0.0, ">", 0.0)]),
            ["no request was measured: nothing to judge", *notes],
        )
    if figures.completed == 0 or figures.p95_latency_s is None or figures.ttft_p95_s is None:
        reasons = ", ".join(f"{reason} x{count}" for reason, count in figures.failure_reasons.items())
        failing = [
            check("successful_requests", float(figures.completed), ">", 0.0),
            check("success_rate", success_rate, ">", slos.min_success_rate),
        ]
        lead = f"0 of {figures.total} requests succeeded ({reasons or 'no reason recorded'}): no latency to judge"
        return _with_notes(verdict(failing), [lead, *notes])
    checks: list[Check] = [
        check("p95_latency_s", figures.p95_latency_s, "<", slos.max_p95_latency_s),
        check("ttft_p95_s", figures.ttft_p95_s, "<", slos.max_ttft_p95_s),
        check("request_throughput", figures.throughput_rps, ">", slos.min_throughput_rps),
        check("success_rate", success_rate, ">", slos.min_success_rate),
    ]
    if baseline is None:
        notes.append(baseline_note or "no perf-passed baseline: absolute SLOs only")
    else:
        where = f"baseline v{baseline.version}"
        base_p95 = _positive(f"{where} p95_latency_s", baseline.p95_latency_s)
        base_ttft = _positive(f"{where} ttft_p95_s", baseline.ttft_p95_s)
        base_rps = _positive(f"{where} request_throughput", baseline.throughput_rps)
        base_success = require_fraction(f"{where} success_rate", baseline.success_rate)
        # rounded to 9 places: 1.0 - 0.995 is 0.0050000000000000044 in floats, and a drop of
        # exactly the allowed 0.005 passes
        checks += [
            check(
                "p95_latency_vs_baseline",
                round(figures.p95_latency_s / base_p95, 9),
                "<=",
                slos.max_latency_ratio,
            ),
            check(
                "ttft_p95_vs_baseline", round(figures.ttft_p95_s / base_ttft, 9), "<=", slos.max_ttft_ratio
            ),
            check(
                "throughput_vs_baseline",
                round(figures.throughput_rps / base_rps, 9),
                ">=",
                slos.min_throughput_ratio,
            ),
            check(
                "success_rate_drop_vs_baseline",
                round(base_success - success_rate, 9),
                "<=",
                slos.max_success_rate_drop,
            ),
        ]
        notes.append(
            f"baseline: v{baseline.version} (p95 {base_p95:.4g}s, ttft p95 {base_ttft:.4g}s, "
            f"{base_rps:.4g} req/s, success {base_success:.4g})"
        )
    return _with_notes(verdict(checks), notes)


def _with_notes(result: Verdict, notes: list[str]) -> Verdict:
    notes = [n for n in notes if n]
    if not result.passed and notes and notes[0].startswith(("0 of", "no request")):
        reason = "; ".join([notes[0], result.reason, *notes[1:]])
    else:
        reason = "; ".join([result.reason, *notes])
    return Verdict(passed=result.passed, checks=result.checks, reason=reason)


# --- registry side ----------------------------------------------------------------------------------


def find_baseline(
    registry: Registry, model: str, version: str, pass_alias: str
) -> tuple[Baseline | None, str]:
    """The `perf-passed` version other than `version` (a re-test looks at where the alias was before) and a note."""
    holder = registry.alias(model, pass_alias)
    if holder == version:
        holder = registry.tags(model, version).get(f"alias.{pass_alias}.from") or None
    if holder is None:
        return None, f"no {pass_alias} baseline: absolute SLOs only"
    tags = registry.tags(model, holder)
    names = ("p95_e2el_s", "request_throughput", "p95_ttft_s", "success_rate")
    missing = [FIGURE_TAGS[name] for name in names if FIGURE_TAGS[name] not in tags]
    if missing:
        return None, f"{pass_alias} v{holder} carries no {', '.join(missing)}: absolute SLOs only"
    try:
        p95, rps, ttft, success = (float(tags[FIGURE_TAGS[name]]) for name in names)
    except ValueError:
        return None, f"{pass_alias} v{holder} has perf figures that are no numbers: absolute SLOs only"
    usable = all(math.isfinite(v) and v > 0 for v in (p95, rps, ttft)) and 0.0 <= success <= 1.0
    if not usable:
        return (
            None,
            f"{pass_alias} v{holder} has unusable perf figures (p95 {p95}, ttft p95 {ttft}, "
            f"{rps} req/s, success {success}): absolute SLOs only",
        )
    return Baseline(holder, p95, rps, ttft, success), ""


def record_verdict(
    registry: Registry,
    *,
    model: str,
    version: str,
    result: Verdict,
    tags: dict[str, str],
    pass_alias: str,
    fail_alias: str,
) -> None:
    """Tags first, then the opposite alias taken back, then the verdict alias moved (each guarded)."""
    registry.record_verdict(
        result,
        model=model,
        version=version,
        tags=tags,
        pass_alias=pass_alias,
        fail_alias=fail_alias,
        gate="performance gate",
    )


# --- the step -----------------------------------------------------------------------------------------


class Config(StepConfig):
    run_id: str = Field(description="MLflow run of the load test (the run-id output of performance.loadtest)")
    model_name: str = Field(LLM_MODEL, description="registered model of the adapters")
    staged_alias: str = Field("staged", description="the alias the tested version must still carry")
    pass_alias: str = Field("perf-passed", description="moved to the version on pass; the baseline")
    fail_alias: str = Field("perf-failed", description="moved to the version on fail")
    max_p95_latency_s: float = Field(8.0, gt=0, description="end-to-end P95 latency must stay below this (s)")
    max_ttft_p95_s: float = Field(2.0, gt=0, description="time-to-first-token P95 must stay below this (s)")
    min_throughput_rps: float = Field(2.0, ge=0, description="successful requests/s must exceed this")
    min_success_rate: float = Field(
        0.99, ge=0, le=1, description="the success fraction (0..1) must exceed this"
    )
    max_latency_ratio: float = Field(1.15, gt=0, description="largest P95 / baseline P95 that passes")
    max_ttft_ratio: float = Field(1.15, gt=0, description="largest TTFT P95 / baseline TTFT P95 that passes")
    min_throughput_ratio: float = Field(
        0.85, gt=0, description="smallest throughput / baseline throughput that passes"
    )
    max_success_rate_drop: float = Field(
        0.005,
        ge=0,
        le=1,
        description="largest baseline success rate - success rate (fraction 0..1) that passes",
    )

    def slos(self) -> Slos:
        return Slos(
            max_p95_latency_s=self.max_p95_latency_s,
            max_ttft_p95_s=self.max_ttft_p95_s,
            min_throughput_rps=self.min_throughput_rps,
            min_success_rate=self.min_success_rate,
            max_latency_ratio=self.max_latency_ratio,
            max_ttft_ratio=self.max_ttft_ratio,
            min_throughput_ratio=self.min_throughput_ratio,
            max_success_rate_drop=self.max_success_rate_drop,
        )


def figures_of_run(metrics: dict[str, float], tags: dict[str, str]) -> Figures:
    """The gate's figures from the load-test run's metrics and tags; BadInput if it is not one."""
    missing = [
        name for name in ("total", "completed", "success_rate", "request_throughput") if name not in metrics
    ]
    if missing:
        raise BadInput(f"run has no {', '.join(missing)} metric: is it a performance.loadtest run?")
    completed = int(metrics["completed"])
    if completed > 0 and not {"p95_e2el_s", "p95_ttft_s"} <= set(metrics):
        raise BadInput(f"run has {completed} successful requests but no p95_e2el_s / p95_ttft_s metric")
    try:
        reasons = json.loads(tags.get("failure_reasons") or "{}")
    except json.JSONDecodeError:
        reasons = {}
    return Figures(
        total=int(metrics["total"]),
        completed=completed,
        success_rate=float(metrics["success_rate"]),
        throughput_rps=float(metrics["request_throughput"]),
        p95_latency_s=metrics.get("p95_e2el_s") if completed else None,
        ttft_p95_s=metrics.get("p95_ttft_s") if completed else None,
        failure_reasons={str(k): int(v) for k, v in dict(reasons).items()},
        aborted=tags.get("aborted", ""),
    )


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    client = tracking_client()
    test_run = get_run(client, cfg.run_id)
    run_tags = test_run.data.tags
    version = run_tags.get("version", "")
    if run_tags.get("model") != cfg.model_name or not version:
        raise BadInput(
            f"run {cfg.run_id} is not a load test of {cfg.model_name} "
            f"(tags model={run_tags.get('model')!r}, version={version!r})"
        )
    figures = figures_of_run(dict(test_run.data.metrics), run_tags)
    registry = registry or mlflow_registry()
    staged = registry.require_alias(cfg.model_name, cfg.staged_alias)
    if staged != version:
        raise AliasConflict(
            f"{cfg.model_name}@{cfg.staged_alias} is v{staged}, but run {cfg.run_id} tested v{version}: "
            "the staged version changed since the load test; load-test it again"
        )
    baseline, note = find_baseline(registry, cfg.model_name, version, cfg.pass_alias)
    result = performance_gate(figures, cfg.slos(), baseline, note)
    metrics = test_run.data.metrics
    tags = {tag: repr(float(metrics[name])) for name, tag in FIGURE_TAGS.items() if name in metrics}
    tags.update(
        {
            GATE_TAG: result.label,
            "perf.reason": result.reason[:TAG_VALUE_LIMIT],
            "perf.run_id": cfg.run_id,
            "perf.baseline_version": baseline.version if baseline else "",
            "perf.server_metrics_source": run_tags.get("server_metrics_source", ""),
        }
    )
    record_verdict(
        registry,
        model=cfg.model_name,
        version=version,
        result=result,
        tags=tags,
        pass_alias=cfg.pass_alias,
        fail_alias=cfg.fail_alias,
    )
    record: dict[str, Any] = {
        **result.as_dict(),
        "model": cfg.model_name,
        "version": version,
        "baseline_version": baseline.version if baseline else None,
        "slos": vars(cfg.slos()),
    }
    log_json(client, cfg.run_id, record, "gates", "performance.json")
    with mlflow_errors(f"tagging run {cfg.run_id}"):
        client.set_tag(cfg.run_id, GATE_TAG, result.label)
        client.set_tag(cfg.run_id, "perf.reason", result.reason[:TAG_VALUE_LIMIT])
    alias = cfg.pass_alias if result.passed else cfg.fail_alias
    return StepResult(
        outputs={
            "verdict": result.label,
            "reason": result.reason,
            "version": version,
            "baseline-version": baseline.version if baseline else "",
        },
        summary=f"{result.label}: {cfg.model_name} v{version} is {alias}; {result.reason}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
