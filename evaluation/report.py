"""The evaluation report: one self-contained HTML page (summary, per-type table, regressions with
both answers), logged to the evaluation run as `evaluation/report.html`.

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
<table><tr><th></th>{% for role in roles %}<th>{{ role }}</th>{% endfor %}{% if diffs %}<th>candidate - live</th>{% endif %}</tr>
<tr><td>A (correct, complete)</td>{% for role in roles %}<td>{{ rate(summary.roles[role].a_rate) }}</td>{% endfor %}{% if diffs %}<td>{{ diff(summary.a_rate_diff) }}</td>{% endif %}</tr>
<tr><td>B (partial)</td>{% for role in roles %}<td>{{ summary.roles[role].counts.B }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
<tr><td>C (wrong, hallucinated)</td>{% for role in roles %}<td>{{ rate(summary.roles[role].c_rate) }}</td>{% endfor %}{% if diffs %}<td>{{ diff(summary.c_rate_diff) }}</td>{% endif %}</tr>
<tr><td>refusal accuracy (unanswerable)</td>{% for role in roles %}<td>{{ rate(summary.roles[role].refusal_accuracy) }}
 <span class="muted">{{ summary.roles[role].refused_unanswerable }}/{{ summary.roles[role].unanswerable }}</span></td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
<tr><td>refusals of answerable questions</td>{% for role in roles %}<td>{{ summary.roles[role].false_refusals }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
<tr><td>graded / unparseable</td>{% for role in roles %}<td>{{ summary.roles[role].graded }} / {{ summary.roles[role].unparseable }}</td>{% endfor %}{% if diffs %}<td></td>{% endif %}</tr>
</table>
{% if summary.pairwise %}
<h2>Pairwise (both orders; only consistent verdicts count)</h2>
<table><tr>{% for k, v in summary.pairwise.items() %}<th>{{ k }}</th>{% endfor %}<th>net wins</th></tr>
<tr>{% for k, v in summary.pairwise.items() %}<td>{{ v }}</td>{% endfor %}<td>{{ diff(summary.pairwise_net) }}</td></tr></table>
{% endif %}

<h2>By question type</h2>
<table><tr><th>type</th><th>n</th>{% for role in roles %}<th>{{ role }} A</th><th>{{ role }} C</th>{% endfor %}</tr>
{% for kind, by_role in summary.per_type.items() %}<tr><td>{{ kind }}</td><td>{{ by_role[roles[0]].answers }}</td>
{% for role in roles %}<td>{{ rate(by_role[role].a_rate) }}</td><td>{{ rate(by_role[role].c_rate) }}</td>{% endfor %}</tr>
{% endfor %}</table>

<h2>Regressions ({{ regressions | length }}{% if regressions | length > shown | length %}, first {{ shown | length }} shown{% endif %})</h2>
{% if not live %}<p class="muted">No live version to compare with.</p>
{% elif not regressions %}<p>No question was answered worse than by the live version.</p>
{% else %}<table><tr><th>type</th><th>question</th><th>reference</th><th>candidate</th><th>live</th></tr>
{% for row in shown %}<tr><td>{{ row.item.question_type }}</td><td>{{ row.item.question }}</td><td class="answer">{{ row.item.reference }}</td>
<td class="answer"><b>{{ row.grades.candidate.grade }}</b> {{ row.answers.candidate }}<br><span class="muted">{{ row.grades.candidate.note }}</span></td>
<td class="answer"><b>{{ row.grades.live.grade }}</b> {{ row.answers.live }}<br><span class="muted">{{ row.grades.live.note }}</span></td></tr>
{% endfor %}</table>{% endif %}
</body></html>
"""


def _rate(interval: Interval) -> str:
    if math.isnan(interval.estimate):
        return "n/a"
    return interval.describe(percent=True)


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
    max_regressions: int = 50,
) -> str:
    """The report page as a string."""
    from jinja2 import Environment

    by_id = {row.item.id: row for row in rows}
    regressions = [by_id[i] for i in summary.regressions if i in by_id]
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
        "shown": regressions[:max_regressions],
        "rate": _rate,
        "diff": _diff,
    }
    environment = Environment(autoescape=True, keep_trailing_newline=True)
    return environment.from_string(TEMPLATE).render(**context)


def role_line(role: str, stats: RoleStats) -> str:
    """One line of numbers for the step's log."""
    return (
        f"{role}: A {_rate(stats.a_rate)}, C {_rate(stats.c_rate)}, "
        f"refusals {stats.refused_unanswerable}/{stats.unanswerable}"
    )
