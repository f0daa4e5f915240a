"""Step (evaluation gate): statistics over the grades, a verdict, the report, and `eval-passed` / `eval-failed`.

The gate is pure (`evaluation_gate`): with a live version, candidate A-rate >= live A-rate - margin
and C-rate <= live C-rate + margin (paired differences; in pairwise mode also wins >= losses -
margin); for a first model (no live) absolute A-rate and C-rate thresholds; always refusal
accuracy on unanswerable questions >= `min_refusal_accuracy`. `require_significance` compares the
conservative end of each confidence interval instead of the point estimate (Wilson bounds for
rates, paired-bootstrap bounds for differences): a pass then says "at least as good, with that
confidence", not merely "not measurably worse on this sample".

The step reads the evaluation run's `evaluation/grades.jsonl`, refuses (exit 2, nothing moved)
when `staged` or `live` moved since the answers were generated, when too many judge replies did
not parse, or when there is nothing to judge; logs metrics, `summary.json`, `verdict.json` and
`report.html` to the run; tags the staged version (`eval.verdict`, `eval.a_rate`, ...); takes the
other verdict alias off it if it was there (back to the version it was at before, or unset), then
moves `eval-passed` or `eval-failed` to it (both guarded: `Registry.record_verdict`). A rejection exits 0 with `verdict=fail`. Outputs: `verdict`, `reason`, `version`, `run-id`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from pydantic import Field

from evaluation import report
from evaluation.runs import GRADES, TAG_LIVE, TAG_MODEL, TAG_STAGED, evaluation_run, log_text, read_jsonl
from evaluation.stats import Interval
from evaluation.summary import GradedRow, Summary, summarize
from mlops import step
from mlops.config import StepConfig
from mlops.errors import AliasConflict, BadInput
from mlops.gates import Check, Verdict, check, require_finite, require_fraction, verdict
from mlops.models.names import LLM_MODEL
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.tracking import TAG_VALUE_LIMIT, mlflow_errors, tracking_client

PASSED, FAILED = "eval-passed", "eval-failed"


@dataclass(frozen=True)
class Thresholds:
    min_refusal_accuracy: float = 0.9
    min_a_rate: float = 0.5  # first model only
    max_c_rate: float = 0.3  # first model only
    margin: float = 0.0  # regression tolerated vs live, as a fraction
    require_significance: bool = False
    max_unparseable_fraction: float = 0.1
    min_type_a_rate: float = 0.0  # every answerable question type's A-rate; 0 = no per-type floor

    def validated(self) -> Thresholds:
        for name in (
            "min_refusal_accuracy",
            "min_a_rate",
            "max_c_rate",
            "margin",
            "max_unparseable_fraction",
            "min_type_a_rate",
        ):
            require_fraction(name, getattr(self, name))
        return self


def _low(interval: Interval, strict: bool) -> float:
    return interval.low if strict else interval.estimate


def _high(interval: Interval, strict: bool) -> float:
    return interval.high if strict else interval.estimate


def evaluation_gate(summary: Summary, thresholds: Thresholds) -> Verdict:
    """Gate 3 of the LLM pipeline. BadInput (no verdict) when the grades cannot support one."""
    t = thresholds.validated()
    strict = t.require_significance
    bound = "ci_low" if strict else "estimate"
    upper = "ci_high" if strict else "estimate"
    if summary.questions == 0 or "candidate" not in summary.roles:
        raise BadInput("no graded candidate answers: the evaluation set was empty")
    for role, stats in summary.roles.items():
        if stats.answers and stats.unparseable / stats.answers > t.max_unparseable_fraction:
            raise BadInput(
                f"the judge's verdict could not be parsed for {stats.unparseable} of {stats.answers} "
                f"{role} answers (more than {t.max_unparseable_fraction:.0%}); no verdict"
            )
        if stats.graded == 0:
            raise BadInput(f"no {role} answer was graded; no verdict")
    candidate = summary.roles["candidate"]
    checks: list[Check] = []
    floor = 0.0 - t.margin  # not -t.margin: a zero margin reads 0, not -0
    if summary.has_live:
        assert summary.a_rate_diff is not None and summary.c_rate_diff is not None
        require_finite("a_rate_diff", summary.a_rate_diff.estimate)
        checks.append(check(f"a_rate_vs_live.{bound}", _low(summary.a_rate_diff, strict), ">=", floor))
        checks.append(check(f"c_rate_vs_live.{upper}", _high(summary.c_rate_diff, strict), "<=", t.margin))
        if summary.pairwise_net is not None:
            checks.append(
                check(f"pairwise_net_wins.{bound}", _low(summary.pairwise_net, strict), ">=", floor)
            )
    else:
        checks.append(check(f"a_rate.{bound}", _low(candidate.a_rate, strict), ">=", t.min_a_rate))
        checks.append(check(f"c_rate.{upper}", _high(candidate.c_rate, strict), "<=", t.max_c_rate))
    if t.min_refusal_accuracy > 0:
        if candidate.unanswerable == 0:
            raise BadInput(
                "no unanswerable questions in the evaluation set: refusal accuracy cannot be checked "
                "(set --min-refusal-accuracy=0 to evaluate without it)"
            )
        checks.append(
            check(
                f"refusal_accuracy.{bound}",
                _low(candidate.refusal_accuracy, strict),
                ">=",
                t.min_refusal_accuracy,
            )
        )
    if t.min_type_a_rate > 0:
        for kind, by_role in summary.per_type.items():
            of_type = by_role.get("candidate")
            if of_type is None or of_type.graded == 0 or of_type.answerable == 0:
                continue  # unanswerable-only types are judged by refusal accuracy
            checks.append(
                check(f"a_rate[{kind}].{bound}", _low(of_type.a_rate, strict), ">=", t.min_type_a_rate)
            )
    return verdict(checks)


class Config(StepConfig):
    run_id: str = Field(description="the evaluation run (run-id output of evaluation.generate / judge)")
    model_name: str = Field(LLM_MODEL, description="registered model of the adapters")
    min_refusal_accuracy: float = Field(
        0.9, description="fraction of unanswerable questions refused (0: no check)"
    )
    min_a_rate: float = Field(0.5, description="first model only: least A-rate")
    max_c_rate: float = Field(0.3, description="first model only: largest C-rate")
    margin: float = Field(0.0, description="regression vs live tolerated, as a fraction (0.02 = 2 points)")
    require_significance: bool = Field(False, description="compare confidence bounds, not point estimates")
    confidence: float = Field(0.95, description="confidence level of the intervals (fraction)")
    bootstrap_samples: int = Field(2000, ge=100, description="paired bootstrap resamples")
    seed: int = Field(0, description="seed of the bootstrap")
    min_type_a_rate: float = Field(
        0.0,
        description="least A-rate of every answerable question type (0: no per-type floor); "
        "a verdict can pass overall while one type is never answered right",
    )
    max_unparseable_fraction: float = Field(
        0.1, description="more judge replies than this without a verdict: no verdict (exit 2)"
    )


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    version: str
    alias: str
    alias_before: str | None


def version_tags(summary: Summary, verdict: Verdict, run_id: str, judge: str) -> dict[str, str]:
    """What the staged version carries about its evaluation (promotion and people read these)."""

    def number(value: float) -> str:
        return f"{value:.4f}"

    candidate = summary.roles["candidate"]
    tags = {
        "eval.verdict": verdict.label,
        "eval.reason": verdict.reason[:TAG_VALUE_LIMIT],
        "eval.run_id": run_id,
        "eval.judge": judge,
        "eval.questions": str(summary.questions),
        "eval.a_rate": number(candidate.a_rate.estimate),
        "eval.c_rate": number(candidate.c_rate.estimate),
        "eval.refusal_accuracy": number(candidate.refusal_accuracy.estimate)
        if candidate.unanswerable
        else "",
        "eval.unparseable": str(candidate.unparseable),
    }
    if summary.has_live and summary.a_rate_diff is not None and summary.c_rate_diff is not None:
        live = summary.roles["live"]
        tags |= {
            "eval.live_a_rate": number(live.a_rate.estimate),
            "eval.live_c_rate": number(live.c_rate.estimate),
            "eval.a_rate_diff": number(summary.a_rate_diff.estimate),
            "eval.a_rate_diff_ci": f"[{number(summary.a_rate_diff.low)}, {number(summary.a_rate_diff.high)}]",
            "eval.c_rate_diff": number(summary.c_rate_diff.estimate),
            "eval.c_rate_diff_ci": f"[{number(summary.c_rate_diff.low)}, {number(summary.c_rate_diff.high)}]",
        }
    return tags


def metrics(summary: Summary) -> dict[str, float]:
    """Flat MLflow metrics: per role, per type, differences with their bounds (NaN left out)."""
    values: dict[str, float] = {"questions": float(summary.questions)}

    def put(name: str, interval: Interval | None) -> None:
        if interval is not None and interval.estimate == interval.estimate:
            values.update(
                {name: interval.estimate, f"{name}_ci_low": interval.low, f"{name}_ci_high": interval.high}
            )

    for role, stats in summary.roles.items():
        put(f"{role}_a_rate", stats.a_rate)
        put(f"{role}_c_rate", stats.c_rate)
        put(f"{role}_refusal_accuracy", stats.refusal_accuracy)
        values[f"{role}_unparseable"] = float(stats.unparseable)
        values[f"{role}_false_refusals"] = float(stats.false_refusals)
        for kind, by_role in summary.per_type.items():
            if role in by_role and by_role[role].graded:
                values[f"{role}_a_rate.{kind}"] = by_role[role].a_rate.estimate
    put("a_rate_diff", summary.a_rate_diff)
    put("c_rate_diff", summary.c_rate_diff)
    put("pairwise_net_wins", summary.pairwise_net)
    return values


def record_verdict(
    registry: Registry, *, model: str, version: str, verdict: Verdict, tags: dict[str, str]
) -> Outcome:
    """Tag the version, take the opposite verdict alias off it, move the verdict alias to it (guarded)."""
    alias, before = registry.record_verdict(
        verdict,
        model=model,
        version=version,
        tags=tags,
        pass_alias=PASSED,
        fail_alias=FAILED,
        gate="evaluation",
    )
    return Outcome(verdict, version, alias, before)


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    thresholds = Thresholds(
        min_refusal_accuracy=cfg.min_refusal_accuracy,
        min_a_rate=cfg.min_a_rate,
        max_c_rate=cfg.max_c_rate,
        margin=cfg.margin,
        require_significance=cfg.require_significance,
        max_unparseable_fraction=cfg.max_unparseable_fraction,
        min_type_a_rate=cfg.min_type_a_rate,
    ).validated()
    client = tracking_client()
    evaluated = evaluation_run(client, cfg.run_id)
    run_tags = evaluated.data.tags
    if run_tags.get(TAG_MODEL, cfg.model_name) != cfg.model_name:
        raise BadInput(f"run {cfg.run_id} evaluated {run_tags[TAG_MODEL]}, not {cfg.model_name}")
    staged, live = run_tags[TAG_STAGED], run_tags.get(TAG_LIVE) or None
    rows = [GradedRow.from_json(r) for r in read_jsonl(client, cfg.run_id, GRADES, "evaluation.judge")]
    summary = summarize(
        rows, confidence=cfg.confidence, bootstrap_samples=cfg.bootstrap_samples, seed=cfg.seed
    )
    decision = evaluation_gate(summary, thresholds)
    registry = registry or mlflow_registry()
    for alias, expected in (("staged", staged), ("live", live)):
        now = registry.alias(cfg.model_name, alias)
        if now != expected:
            raise AliasConflict(
                f"{cfg.model_name}@{alias} is v{now} but the answers were generated with v{expected}: "
                "evaluate again; no verdict recorded"
            )
    judge = run_tags.get("eval.judge", "")
    page = report.render(
        summary,
        decision,
        rows,
        model=cfg.model_name,
        staged=staged,
        live=live,
        judge=judge,
        require_significance=cfg.require_significance,
        min_type_a_rate=cfg.min_type_a_rate,
    )
    record = {
        "verdict": decision.as_dict(),
        "thresholds": cfg.model_dump(mode="json"),
        "staged": staged,
        "live": live,
    }
    log_text(
        client, cfg.run_id, json.dumps(summary.as_dict(), indent=2, sort_keys=True) + "\n", "summary.json"
    )
    log_text(client, cfg.run_id, json.dumps(record, indent=2, sort_keys=True) + "\n", "verdict.json")
    log_text(client, cfg.run_id, page, "report.html")
    with mlflow_errors(f"logging evaluation metrics to run {cfg.run_id}"):
        for name, value in metrics(summary).items():
            client.log_metric(cfg.run_id, name, value)
        client.set_tag(cfg.run_id, "eval.verdict", decision.label)
        client.set_tag(cfg.run_id, "eval.reason", decision.reason[:TAG_VALUE_LIMIT])
    outcome = record_verdict(
        registry,
        model=cfg.model_name,
        version=staged,
        verdict=decision,
        tags=version_tags(summary, decision, cfg.run_id, judge),
    )
    numbers = "; ".join(report.role_line(role, stats) for role, stats in summary.roles.items())
    return StepResult(
        outputs={
            "verdict": decision.label,
            "reason": decision.reason,
            "version": staged,
            "run-id": cfg.run_id,
        },
        summary=f"{decision.label}: {outcome.alias} -> v{staged} (was {outcome.alias_before or 'unset'}); {numbers}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
