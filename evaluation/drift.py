"""The production probe's figures, their release-time values, and whether they drifted (pure; no I/O).

A probe grades one slot's answers to the probe split with every judge: per judge the A-rate with
its Wilson interval, and the refusal rate over all answers (what the gate calls a refusal,
`evaluation.refusal`). The same figures measured when a version goes live are stored on it as
version tags (`probe.release.*`), and on the model too (with `probe.release.version`): a version
that went live without them (moved by hand, past vllm-promote) is compared with the last values a
release recorded. The probe publishes both as gauges, and the drift alerts in
infra/monitoring/prometheus-rules.yaml compare them. `drift_verdict` applies the same two rules
to the figures of one run, so the step can say what the alerts will say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evaluation.stats import Interval, wilson
from evaluation.summary import GradedRow
from mlops.errors import BadInput
from mlops.gates import Verdict, check, verdict
from mlops.pushgateway import Gauge

TAG_PREFIX = "probe.release."
# pushed under this job, one group per model
JOB = "mlops-probe"


@dataclass(frozen=True)
class ProbeFigures:
    """What one probe of one slot measured."""

    questions: int
    scores: dict[str, Interval]  # judge -> A-rate (Wilson interval)
    refusal_rate: Interval
    dataset_uri: str = ""

    def halfwidth(self, judge: str) -> float:
        interval = self.scores[judge]
        return (interval.high - interval.low) / 2.0

    def as_tags(self) -> dict[str, str]:
        """Version tags of the release-time values."""
        tags = {
            f"{TAG_PREFIX}questions": str(self.questions),
            f"{TAG_PREFIX}refusal_rate": f"{self.refusal_rate.estimate:.6f}",
            f"{TAG_PREFIX}dataset_uri": self.dataset_uri,
        }
        for judge, interval in sorted(self.scores.items()):
            tags[f"{TAG_PREFIX}score.{judge}"] = f"{interval.estimate:.6f}"
            tags[f"{TAG_PREFIX}score_ci_halfwidth.{judge}"] = f"{self.halfwidth(judge):.6f}"
        return tags


@dataclass(frozen=True)
class ReleaseFigures:
    """The release-time values read back from a version's (or the model's) tags."""

    scores: dict[str, float]
    refusal_rate: float
    questions: int
    dataset_uri: str
    version: str = ""  # the version they were measured on


def release_from_tags(tags: dict[str, str]) -> ReleaseFigures | None:
    """The release-time values on a version (None: it went live without them)."""
    if f"{TAG_PREFIX}refusal_rate" not in tags:
        return None
    prefix = f"{TAG_PREFIX}score."
    try:
        scores = {k[len(prefix) :]: float(v) for k, v in tags.items() if k.startswith(prefix)}
        refusal = float(tags[f"{TAG_PREFIX}refusal_rate"])
        questions = int(tags.get(f"{TAG_PREFIX}questions", "0"))
    except ValueError as exc:
        raise BadInput(f"a {TAG_PREFIX}* tag is not a number: {exc}") from exc
    for name, value in [*scores.items(), ("refusal_rate", refusal)]:
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise BadInput(f"release figure {name}={value} is not a fraction in [0, 1]")
    return ReleaseFigures(
        scores,
        refusal,
        questions,
        tags.get(f"{TAG_PREFIX}dataset_uri", ""),
        tags.get(f"{TAG_PREFIX}version", ""),
    )


def release_values(
    version_tags: dict[str, str], model_tags: dict[str, str], version: str
) -> ReleaseFigures | None:
    """The version's own release values, else the model's last recorded ones (None: never recorded)."""
    own = release_from_tags(version_tags)
    if own is not None:
        return ReleaseFigures(own.scores, own.refusal_rate, own.questions, own.dataset_uri, version)
    return release_from_tags(model_tags)


def figures(
    graded: dict[str, list[GradedRow]], role: str, confidence: float = 0.95, dataset_uri: str = ""
) -> ProbeFigures:
    """A-rate per judge over the answers it could grade; refusals over every answer."""
    if not graded:
        raise BadInput("no judge graded the probe")
    scores = {}
    questions = 0
    refusals = answered = 0
    for judge, rows in graded.items():
        grades = [row.grades[role] for row in rows if role in row.grades]
        parsed = [g for g in grades if g.grade is not None]
        if not parsed:
            raise BadInput(f"the {judge} judge graded none of the {len(grades)} probe answers")
        scores[judge] = wilson(sum(g.grade == "A" for g in parsed), len(parsed), confidence)
        questions = max(questions, len(rows))
        if not answered:  # the refusal detector is the same whichever judge graded
            refusals, answered = sum(g.refusal for g in grades), len(grades)
    return ProbeFigures(questions, scores, wilson(refusals, answered, confidence), dataset_uri)


def drift_verdict(current: ProbeFigures, release: ReleaseFigures, refusal_tolerance: float) -> Verdict:
    """The drift alerts' rules on one run: every judge's score within its interval of the release
    value (score + half-width >= release), and the refusal rate within `refusal_tolerance` of it."""
    checks = []
    for judge, interval in sorted(current.scores.items()):
        if judge not in release.scores:
            continue
        upper = interval.estimate + current.halfwidth(judge)
        checks.append(check(f"score[{judge}] + ci half-width", upper, ">=", release.scores[judge]))
    moved = abs(current.refusal_rate.estimate - release.refusal_rate)
    checks.append(check("refusal rate change", moved, "<=", refusal_tolerance))
    return verdict(checks)


def gauges(model: str, version: str, current: ProbeFigures, release: ReleaseFigures | None) -> list[Gauge]:
    """The probe's Prometheus gauges (the names the drift alerts and the dashboard use)."""
    base = {"model": model, "version": version}
    out = [
        Gauge("mlops_probe_questions", float(current.questions), base, "probe questions asked"),
        Gauge(
            "mlops_probe_refusal_rate",
            current.refusal_rate.estimate,
            base,
            "fraction of probe answers that are refusals",
        ),
    ]
    for judge, interval in sorted(current.scores.items()):
        labels = {**base, "judge": judge}
        out.append(Gauge("mlops_probe_score", interval.estimate, labels, "probe A-rate (fraction)"))
        out.append(
            Gauge(
                "mlops_probe_score_ci_halfwidth",
                current.halfwidth(judge),
                labels,
                "half-width of the probe A-rate's Wilson interval",
            )
        )
        if release is not None and judge in release.scores:
            out.append(
                Gauge(
                    "mlops_probe_score_release",
                    release.scores[judge],
                    labels,
                    "probe A-rate measured when the version went live",
                )
            )
    if release is not None:
        out.append(
            Gauge(
                "mlops_probe_refusal_rate_release",
                release.refusal_rate,
                base,
                "probe refusal rate measured when the version went live",
            )
        )
    return out
