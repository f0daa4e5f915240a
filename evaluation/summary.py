"""Graded rows -> the numbers the gate and the report use (pure; no I/O).

Rates are over the answers a judge graded (an unparseable reply is counted, never scored);
differences between candidate and live are paired by question (questions both grades exist for).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from evaluation.grades import INCONSISTENT, LOSS, ROLES, TIE, UNPARSEABLE, WIN, Grade
from evaluation.stats import Interval, paired_bootstrap, wilson
from mlops.datasets.ragqa import EvalItem

_RANK = {"A": 0, "B": 1, "C": 2}


@dataclass(frozen=True)
class GradedRow:
    """One question: its answers (by role) and their grades; `pairwise` the candidate's outcome."""

    item: EvalItem
    answers: dict[str, str]
    grades: dict[str, Grade]
    pairwise: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item.to_json(),
            "answers": self.answers,
            "grades": {role: g.as_dict() for role, g in self.grades.items()},
            "pairwise": self.pairwise,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GradedRow:
        return cls(
            EvalItem.from_json(data["item"]),
            {str(k): str(v) for k, v in data["answers"].items()},
            {str(k): Grade.from_dict(v) for k, v in (data.get("grades") or {}).items()},
            data.get("pairwise"),
        )


@dataclass(frozen=True)
class RoleStats:
    """How one slot's answers were graded."""

    answers: int
    graded: int
    unparseable: int
    counts: dict[str, int]
    a_rate: Interval
    c_rate: Interval
    unanswerable: int
    refused_unanswerable: int
    refusal_accuracy: Interval
    false_refusals: int  # refusals of answerable questions
    b_rate: Interval
    answerable: int
    false_refusal_rate: Interval  # false refusals over the answerable questions


@dataclass(frozen=True)
class Summary:
    questions: int
    confidence: float
    roles: dict[str, RoleStats]
    a_rate_diff: Interval | None = None  # candidate - live, paired
    c_rate_diff: Interval | None = None
    pairwise: dict[str, int] = field(default_factory=dict)
    pairwise_net: Interval | None = None  # mean of +1 win / -1 loss / 0 tie over consistent pairs
    per_type: dict[str, dict[str, RoleStats]] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)  # item ids, worst first
    weak_types: list[str] = field(default_factory=list)  # candidate's A-rate far below the other types'

    @property
    def has_live(self) -> bool:
        return "live" in self.roles

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    """NaN as None, so the JSON is valid."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def role_stats(rows: list[GradedRow], role: str, confidence: float) -> RoleStats:
    grades = [(row.item, row.grades[role]) for row in rows if role in row.grades]
    counts = Counter(g.grade for _, g in grades if g.grade is not None)
    graded = sum(counts.values())
    unanswerable = [(item, g) for item, g in grades if item.unanswerable]
    refused = sum(1 for _, g in unanswerable if g.refusal)
    answerable = len(grades) - len(unanswerable)
    false_refusals = sum(1 for item, g in grades if not item.unanswerable and g.refusal)
    return RoleStats(
        answers=len(grades),
        graded=graded,
        unparseable=len(grades) - graded,
        counts={grade: counts.get(grade, 0) for grade in ("A", "B", "C")},
        a_rate=wilson(counts.get("A", 0), graded, confidence),
        c_rate=wilson(counts.get("C", 0), graded, confidence),
        unanswerable=len(unanswerable),
        refused_unanswerable=refused,
        refusal_accuracy=wilson(refused, len(unanswerable), confidence),
        false_refusals=false_refusals,
        b_rate=wilson(counts.get("B", 0), graded, confidence),
        answerable=answerable,
        false_refusal_rate=wilson(false_refusals, answerable, confidence),
    )


def answerable_types(rows: list[GradedRow]) -> list[str]:
    """Question types with at least one answerable question (the A-rate means something there)."""
    return sorted({row.item.question_type for row in rows if not row.item.unanswerable})


def weak_types(
    per_type: dict[str, dict[str, RoleStats]], kinds: list[str], role: str = "candidate"
) -> list[str]:
    """Types whose A-rate is far below the others': the upper end of the type's Wilson interval is
    under the A-rate of all the other types pooled. A pass overall can hide a type the model never
    gets right (0 of 8 factual questions while the rest score 40%); this names it."""
    weak = []
    for kind in kinds:
        stats = per_type.get(kind, {}).get(role)
        rest = [per_type[k][role] for k in kinds if k != kind and role in per_type.get(k, {})]
        rest_graded = sum(r.graded for r in rest)
        if stats is None or stats.graded == 0 or rest_graded == 0:
            continue
        rest_rate = sum(r.counts["A"] for r in rest) / rest_graded
        if stats.a_rate.high < rest_rate:
            weak.append(kind)
    return weak


def _paired(rows: list[GradedRow], grade: str) -> tuple[list[float], list[float]]:
    pairs = [
        (row.grades["candidate"].grade, row.grades["live"].grade)
        for row in rows
        if "candidate" in row.grades and "live" in row.grades
    ]
    both = [(c, live) for c, live in pairs if c is not None and live is not None]
    return [float(c == grade) for c, _ in both], [float(live == grade) for _, live in both]


def regressions(rows: list[GradedRow]) -> list[str]:
    """Questions the candidate answered worse than live, the largest drop first (A->C before A->B)."""
    drops = []
    for row in rows:
        c, live = row.grades.get("candidate"), row.grades.get("live")
        if c and live and c.grade in _RANK and live.grade in _RANK:
            drop = _RANK[str(c.grade)] - _RANK[str(live.grade)]
            if drop > 0:
                drops.append((-drop, row.item.question_type, row.item.id))
    return [item_id for *_, item_id in sorted(drops)]


def summarize(
    rows: list[GradedRow], *, confidence: float = 0.95, bootstrap_samples: int = 2000, seed: int = 0
) -> Summary:
    roles = [role for role in ROLES if any(role in row.grades for row in rows)]
    stats = {role: role_stats(rows, role, confidence) for role in roles}
    types = sorted({row.item.question_type for row in rows})
    per_type = {
        kind: {
            role: role_stats([r for r in rows if r.item.question_type == kind], role, confidence)
            for role in roles
        }
        for kind in types
    }
    weak = weak_types(per_type, answerable_types(rows)) if "candidate" in stats else []
    summary = Summary(
        questions=len(rows), confidence=confidence, roles=stats, per_type=per_type, weak_types=weak
    )
    if "live" not in stats:
        return summary
    boot = {"samples": bootstrap_samples, "confidence": confidence, "seed": seed}
    outcomes = Counter(row.pairwise for row in rows if row.pairwise)
    consistent = [
        {WIN: 1.0, LOSS: -1.0, TIE: 0.0}[str(row.pairwise)]
        for row in rows
        if row.pairwise in (WIN, LOSS, TIE)
    ]
    return Summary(
        questions=len(rows),
        confidence=confidence,
        roles=stats,
        a_rate_diff=paired_bootstrap(*_paired(rows, "A"), **boot),  # type: ignore[arg-type]
        c_rate_diff=paired_bootstrap(*_paired(rows, "C"), **boot),  # type: ignore[arg-type]
        pairwise={k: outcomes.get(k, 0) for k in (WIN, LOSS, TIE, INCONSISTENT, UNPARSEABLE)}
        if outcomes
        else {},
        pairwise_net=paired_bootstrap(consistent, [0.0] * len(consistent), **boot)  # type: ignore[arg-type]
        if consistent
        else None,
        per_type=per_type,
        regressions=regressions(rows),
        weak_types=weak,
    )
