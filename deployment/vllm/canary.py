"""The canary analysis, pure: per-slot figures over one window, and the gate that judges them.

Figures come from the per-slot series of the router in front of the replicas (the cluster's
Inference Extension endpoint picker, or `mlops.stack.router` locally; both export
`inference_objective_request_*` labelled `model_name` / `target_model_name`), over the same
window for both slots, so the candidate is compared with live under the same load at the same
time. `canary_gate` is a pure function; `slot_queries` builds the PromQL; `PrometheusReader`
is the one small client that asks Prometheus.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

from mlops.errors import BadInput, Transient
from mlops.gates import Check, Verdict, check, require_finite, require_fraction, verdict

METRIC = "inference_objective_request"
PASS_ALIAS, FAIL_ALIAS = "canary-passed", "canary-failed"


@dataclass(frozen=True)
class SlotFigures:
    """What one slot served in the window (quantiles None when it served nothing of that kind)."""

    requests: float
    errors: float
    e2e_p95_s: float | None
    ttft_p95_s: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class CanaryBounds:
    """The gate's bounds: absolute ones always, ratios to live when live served in the window."""

    min_requests: int = 20  # candidate requests in the window, else there is no evidence
    max_error_rate: float = 0.01  # fraction
    max_error_rate_increase: float = 0.005  # candidate - live, fraction
    max_e2e_p95_s: float = 8.0
    max_ttft_p95_s: float = 2.0
    max_e2e_ratio: float = 1.2  # candidate P95 / live P95
    max_ttft_ratio: float = 1.2


def check_bounds(bounds: CanaryBounds) -> CanaryBounds:
    """BadInput for a bound outside its domain (a percent given as a fraction's bound, a ratio <= 0)."""
    require_fraction("max_error_rate", bounds.max_error_rate)
    require_fraction("max_error_rate_increase", bounds.max_error_rate_increase)
    for name in ("max_e2e_p95_s", "max_ttft_p95_s", "max_e2e_ratio", "max_ttft_ratio"):
        if require_finite(name, getattr(bounds, name)) <= 0:
            raise BadInput(f"{name}={getattr(bounds, name)} must be > 0")
    return bounds


def canary_gate(candidate: SlotFigures, live: SlotFigures, bounds: CanaryBounds) -> Verdict:
    """Pass when the candidate served enough requests, fails no more than allowed and is no slower
    than live by more than the ratios (live judged only if it served `min_requests` too)."""
    check_bounds(bounds)
    for slot, figures in (("candidate", candidate), ("live", live)):
        if require_finite(f"{slot} requests", figures.requests) < 0 or figures.errors < 0:
            raise BadInput(f"{slot} figures are negative: {figures}")
    checks: list[Check] = [
        check("candidate_requests", candidate.requests, ">=", float(bounds.min_requests)),
        check("candidate_error_rate", candidate.error_rate, "<=", bounds.max_error_rate),
    ]
    if candidate.e2e_p95_s is not None:
        checks.append(check("candidate_e2e_p95_s", candidate.e2e_p95_s, "<=", bounds.max_e2e_p95_s))
    if candidate.ttft_p95_s is not None:
        checks.append(check("candidate_ttft_p95_s", candidate.ttft_p95_s, "<=", bounds.max_ttft_p95_s))
    notes = []
    if live.requests >= bounds.min_requests:
        checks.append(
            check(
                "error_rate_increase",
                candidate.error_rate - live.error_rate,
                "<=",
                bounds.max_error_rate_increase,
            )
        )
        for name, ours, theirs, bound in (
            ("e2e_p95_ratio", candidate.e2e_p95_s, live.e2e_p95_s, bounds.max_e2e_ratio),
            ("ttft_p95_ratio", candidate.ttft_p95_s, live.ttft_p95_s, bounds.max_ttft_ratio),
        ):
            if ours is not None and theirs is not None and theirs > 0:
                checks.append(check(name, ours / theirs, "<=", bound))
    else:
        notes.append(f"live served {live.requests:.0f} requests in the window: absolute bounds only")
    judged = verdict(checks)
    reason = "; ".join([judged.reason, *notes])
    return Verdict(passed=judged.passed, checks=judged.checks, reason=reason)


def slot_queries(public_name: str, target: str, range_s: int) -> dict[str, str]:
    """PromQL of one slot's figures over the last `range_s` seconds."""
    sel = f'{{model_name="{public_name}",target_model_name="{target}"}}'
    quantile = "histogram_quantile(0.95, sum by (le) (rate({metric}_bucket{sel}[{r}s])))"
    return {
        "requests": f"sum(increase({METRIC}_total{sel}[{range_s}s]))",
        "errors": f"sum(increase({METRIC}_error_total{sel}[{range_s}s]))",
        "e2e_p95_s": quantile.format(metric=f"{METRIC}_duration_seconds", sel=sel, r=range_s),
        "ttft_p95_s": quantile.format(metric=f"{METRIC}_ttft_seconds", sel=sel, r=range_s),
    }


class MetricsQuery(Protocol):
    def query(self, promql: str, at: float) -> float | None: ...


class PrometheusReader:
    """Instant queries over Prometheus' HTTP API (`/api/v1/query`)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        if not url:
            raise BadInput("no Prometheus URL: the canary analysis reads its figures from Prometheus")
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def query(self, promql: str, at: float) -> float | None:
        """The single value at unix time `at`; None for an empty or NaN answer."""
        import httpx

        try:
            answer = httpx.get(
                f"{self.url}/api/v1/query",
                params={"query": promql, "time": f"{at:.3f}"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise Transient(f"Prometheus {self.url} unreachable: {type(exc).__name__}: {exc}") from exc
        if answer.status_code >= 500:
            raise Transient(f"Prometheus {self.url} answered {answer.status_code}")
        body = answer.json()
        if answer.status_code != 200 or body.get("status") != "success":
            raise BadInput(f"Prometheus refused {promql!r}: {body.get('error', answer.text[:200])}")
        result = body["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None


def read_slot(query: MetricsQuery, public_name: str, target: str, range_s: int, at: float) -> SlotFigures:
    values = {
        name: query.query(promql, at) for name, promql in slot_queries(public_name, target, range_s).items()
    }
    return SlotFigures(
        requests=round(values["requests"] or 0.0, 3),
        errors=round(values["errors"] or 0.0, 3),
        e2e_p95_s=values["e2e_p95_s"],
        ttft_p95_s=values["ttft_p95_s"],
    )


def figure_tags(prefix: str, slot: str, figures: SlotFigures) -> dict[str, str]:
    """`<prefix>.<slot>.<figure>` version tags ('' for an unknown quantile)."""
    tags = {f"{prefix}.{slot}.{k}": "" if v is None else f"{v:.6g}" for k, v in asdict(figures).items()}
    tags[f"{prefix}.{slot}.error_rate"] = f"{figures.error_rate:.6g}"
    return tags
