"""The evaluation report: one self-contained HTML page (checks, summary rates with counts and
intervals, per-type table with the types far below the others flagged, answers with the judge's
reasons: side by side with live, disagreements first), logged to the evaluation run as `evaluation/report.html`.

Rendered with Jinja2 and autoescaping on: model answers are untrusted text.
"""

from __future__ import annotations

import math
from typing import Any

from evaluation.stats import Interval
from evaluation.summary import GradedRow, RoleStats, Summary
from mlops.gates import Verdict

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evaluation of {{ model }} v{{ staged }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 72rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.pass { color: #176b2c; } .fail { color: #a31515; }
.verdict { font-size: 1.4rem; font-weight: bold; }
td.answer { white-space: pre-wrap; max-width: 30rem; }
.muted { color: #777; }
.warn { background: #fff4d6; }
</style></head><body>
<h1>Evaluation of {{ model }} v{{ staged }}
{%- if live %} against live v{{ live }}{% else %} (first model: no live version){% endif %}</h1>
<p class="verdict {{ verdict.label }}">Verdict: {{ verdict.label | upper }}</p>
<p>{{ verdict.reason }}</p>
<p class="muted">{{ summary.questions }} questions; judge: {{ judge }}; {{ "%.0f" | format(summary.confidence * 100) }} % confidence intervals
(Wilson for rates, paired bootstrap for differences){% if require_significance %}; significance required{% endif %}.</p>

<h2>Checks</h2>
<table><tr><th>check</th><th>value</th><th></th><th>bound</th><th>result</th></tr>
{% for c in verdict.checks %}<tr><td>{{ c.name }}</td><td>{{ "%.4f" | format(c.value) }}</td><td>{{ c.op }}</td>
<td>{{ "%.4f" | format(c.bound) }}</td><td class="{{ 'pass' if c.passed else 'fail' }}">{{ 'ok' if c.passed else 'FAILED' }}</td></tr>
{% endfor %}</table>

<h2>Summary</h2>
<p class="muted">Every rate is "count of total, estimate [interval]"; A, B and C are over the graded answers.</p>
<table><tr><th></th>{% for role in roles %}<th>{{ role }}</th>{% endfor %}{% if diffs %}<th>candidate - live</th>{% endif %}</tr>
<tr><td>A (correct, complete)</td>{% for role in roles %}{% set r = summary.roles[role] %}<td>{{ rate(r.counts.A, r.graded, r.a_rate) }}</td>{% endfor %}{% if diffs %}<td>{{ diff(summary.a_rate_diff) }}</td>{% endif %}</tr>
<tr><td>B (partial)</td>{% for role in roles %}{% set r = summary.roles[role] %}<td>{{ rate(r.counts.B, r.graded, r.b_rate) }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
<tr><td>C (wrong, hallucinated)</td>{% for role in roles %}{% set r = summary.roles[role] %}<td>{{ rate(r.counts.C, r.graded, r.c_rate) }}</td>{% endfor %}{% if diffs %}<td>{{ diff(summary.c_rate_diff) }}</td>{% endif %}</tr>
<tr><td>refusal accuracy (unanswerable questions refused)</td>{% for role in roles %}{% set r = summary.roles[role] %}<td>{{ rate(r.refused_unanswerable, r.unanswerable, r.refusal_accuracy) }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
<tr><td>false refusals (answerable questions refused)</td>{% for role in roles %}{% set r = summary.roles[role] %}<td>{{ rate(r.false_refusals, r.answerable, r.false_refusal_rate) }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
<tr><td>graded / unparseable (answers)</td>{% for role in roles %}<td>{{ summary.roles[role].graded }} / {{ summary.roles[role].unparseable }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
</table>
{% if summary.pairwise %}
<h2>Pairwise (both orders; only consistent verdicts count)</h2>
<table><tr>{% for k, v in summary.pairwise.items() %}<th>{{ k }}</th>{% endfor %}<th>net wins</th></tr>
<tr>{% for k, v in summary.pairwise.items() %}<td>{{ v }}</td>{% endfor %}<td>{{ diff(summary.pairwise_net) }}</td></tr></table>
{% endif %}

<h2>By question type</h2>
{% if summary.weak_types %}<p class="warn" id="weak-types">Far below the other types (the candidate's A-rate interval lies under the
other types' pooled A-rate): <b>{{ summary.weak_types | join(", ") }}</b>.{% if not min_type_a_rate %} No per-type floor was required
(<code>--min-type-a-rate</code>).{% endif %}</p>{% endif %}
<table><tr><th>type</th><th>questions</th>{% for role in roles %}<th>{{ role }} A</th><th>{{ role }} C</th>{% endfor %}</tr>
{% for kind, by_role in summary.per_type.items() %}<tr{% if kind in summary.weak_types %} class="warn"{% endif %}><td>{{ kind }}{% if kind in summary.weak_types %} (far below){% endif %}</td><td>{{ by_role[roles[0]].answers }}</td>
{% for role in roles %}{% set r = by_role[role] %}<td>{{ rate(r.counts.A, r.graded, r.a_rate) }}</td><td>{{ rate(r.counts.C, r.graded, r.c_rate) }}</td>{% endfor %}</tr>
{% endfor %}</table>

<h2>Answers ({{ shown | length }} of {{ answered }} shown{% if live %}; disagreements first, regressions before improvements{% endif %})</h2>
<p>{% if not live %}First model: no live version to compare with; a sample of the candidate's answers.
{% elif not regressions %}No question was answered worse than by the live version.
{% else %}Regressions: {{ regressions | length }} question(s) answered worse than by the live version.{% endif %}</p>
<table id="answers"><tr><th>type</th><th>question</th><th>reference</th>{% for role in roles %}<th>{{ role }}: grade, answer, judge's reason</th>{% endfor %}</tr>
{% for row in shown %}<tr><td>{{ row.item.question_type }}</td><td>{{ row.item.question }}</td><td class="answer">{{ row.item.reference }}</td>
{% for role in roles %}<td class="answer">{% if role in row.grades %}<b>{{ row.grades[role].grade or "unparseable" }}</b>{% if row.grades[role].refusal %} (refused){% endif %} {{ row.answers.get(role, "") }}<br><span class="muted">{{ row.grades[role].note }}</span>{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
</body></html>
"""


def _interval(interval: Interval) -> str:
    if math.isnan(interval.estimate):
        return "n/a"
    return interval.describe(percent=True)


def _rate(count: int, total: int, interval: Interval) -> str:
    """`7 of 40, 17.5% [8.8, 32.0]`: the count, its total, the estimate and its interval."""
    if total == 0 or math.isnan(interval.estimate):
        return f"{count} of {total}, n/a"
    return (
        f"{count} of {total}, {interval.estimate:.1%} [{interval.low * 100:.1f}, {interval.high * 100:.1f}]"
    )


def _disagreement(row: GradedRow) -> int:
    """Sort key: regressions (candidate worse), then improvements, then agreements."""
    candidate, live = row.grades.get("candidate"), row.grades.get("live")
    if candidate is None or live is None or candidate.grade == live.grade:
        return 2
    rank = {"A": 0, "B": 1, "C": 2}
    worse = rank.get(str(candidate.grade), 3) > rank.get(str(live.grade), 3)
    return 0 if worse else 1


def _diff(interval: Interval | None) -> str:
    if interval is None or math.isnan(interval.estimate):
        return "n/a"
    return interval.describe(percent=False)


def render(
    summary: Summary,
    verdict: Verdict,
    rows: list[GradedRow],
    *,
    model: str,
    staged: str,
    live: str | None,
    judge: str,
    require_significance: bool = False,
    min_type_a_rate: float = 0.0,
    max_answers: int = 50,
) -> str:
    """The report page as a string. `max_answers` rows of answers: with a live version the
    disagreements first (the summary's regressions, worst first, then improvements), then the rest."""
    from jinja2 import Environment

    by_id = {row.item.id: row for row in rows}
    regressions = [by_id[i] for i in summary.regressions if i in by_id]
    order = {item_id: n for n, item_id in enumerate(summary.regressions)}
    answered = [row for row in rows if "candidate" in row.grades]
    ordered = sorted(answered, key=lambda row: (_disagreement(row), order.get(row.item.id, 0)))
    roles: list[str] = list(summary.roles)
    context: dict[str, Any] = {
        "summary": summary,
        "verdict": verdict,
        "roles": roles,
        "diffs": summary.a_rate_diff is not None,
        "model": model,
        "staged": staged,
        "live": live,
        "judge": judge,
        "require_significance": require_significance,
        "regressions": regressions,
        "answered": len(answered),
        "shown": ordered[:max_answers],
        "min_type_a_rate": min_type_a_rate,
        "rate": _rate,
        "diff": _diff,
    }
    environment = Environment(autoescape=True, keep_trailing_newline=True)
    return environment.from_string(TEMPLATE).render(**context)


def role_line(role: str, stats: RoleStats) -> str:
    """One line of numbers for the step's log."""
    return (
        f"{role}: A {_interval(stats.a_rate)}, C {_interval(stats.c_rate)}, "
        f"refusals {stats.refused_unanswerable}/{stats.unanswerable}"
    )
