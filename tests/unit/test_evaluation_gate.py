"""The evaluation gate (pure), the verdict's registry effects on an in-memory registry, and the report."""

from __future__ import annotations

import pytest

from evaluation.gate import FAILED, PASSED, Thresholds, evaluation_gate, metrics, record_verdict, version_tags
from evaluation.grades import LOSS, WIN, Grade
from evaluation.report import render
from evaluation.summary import GradedRow, summarize
from mlops.datasets.ragqa import REFUSAL, EvalItem, prompt_id
from mlops.errors import AliasConflict, BadInput
from mlops.registry import InMemoryBackend, Registry

MODEL = "mistral-7b-lora"


def row(n: int, kind: str, candidate: str | None, live: str | None = None, **extra: str) -> GradedRow:
    prompt = f"[INST] context {n}\n\nQuestion: q{n} [/INST]"
    reference = REFUSAL if kind == "unanswerable" else f"answer {n}"
    item = EvalItem(prompt_id(prompt), f"q{n}", f"context {n}", reference, kind, prompt)
    refused = kind == "unanswerable" and candidate == "A"
    grades = {"candidate": Grade(candidate, refused)}
    answers = {"candidate": extra.get("candidate_text", f"cand {n}")}
    if live is not None or "live_text" in extra:
        grades["live"] = Grade(live, kind == "unanswerable" and live == "A")
        answers["live"] = extra.get("live_text", f"live {n}")
    return GradedRow(item, answers, grades, extra.get("pairwise"))


def dataset(candidate: list[str], live: list[str] | None, unanswerable_refused: int = 10) -> list[GradedRow]:
    rows = [
        row(i, "factual", c, live[i] if live else None)  # type: ignore[arg-type]
        for i, c in enumerate(candidate)
    ]
    for j in range(10):
        grade = "A" if j < unanswerable_refused else "C"
        rows.append(row(1000 + j, "unanswerable", grade, "A" if live else None))
    return rows


def test_an_equal_or_better_candidate_passes_and_a_worse_one_fails() -> None:
    live = ["A"] * 30 + ["C"] * 10
    better = ["A"] * 35 + ["C"] * 5
    worse = ["A"] * 25 + ["B"] * 5 + ["C"] * 10
    passed = evaluation_gate(summarize(dataset(better, live)), Thresholds())
    assert passed.passed, passed.reason
    assert [c.name for c in passed.checks] == [
        "a_rate_vs_live.estimate",
        "c_rate_vs_live.estimate",
        "refusal_accuracy.estimate",
    ]
    failed = evaluation_gate(summarize(dataset(worse, live)), Thresholds())
    assert not failed.passed and "a_rate_vs_live" in failed.reason
    assert evaluation_gate(summarize(dataset(live, live)), Thresholds()).passed  # a tie is not a regression


def test_a_small_regression_passes_within_the_margin() -> None:
    live = ["A"] * 40
    slightly_worse = ["A"] * 39 + ["B"]
    assert not evaluation_gate(summarize(dataset(slightly_worse, live)), Thresholds()).passed
    assert evaluation_gate(summarize(dataset(slightly_worse, live)), Thresholds(margin=0.05)).passed


def test_requiring_significance_compares_the_confidence_bounds() -> None:
    live = ["A"] * 20 + ["C"] * 20
    a_bit_better = ["C"] * 5 + ["A"] * 22 + ["C"] * 13  # 5 questions lost, 7 won: noise
    rows = dataset(a_bit_better, live)
    assert evaluation_gate(summarize(rows), Thresholds()).passed
    strict = evaluation_gate(summarize(rows), Thresholds(require_significance=True, min_refusal_accuracy=0))
    assert not strict.passed and "a_rate_vs_live.ci_low" in strict.reason
    much_better = ["A"] * 40
    assert evaluation_gate(
        summarize(dataset(much_better, live)), Thresholds(require_significance=True, min_refusal_accuracy=0)
    ).passed


def test_refusal_accuracy_below_ninety_percent_fails() -> None:
    live = ["A"] * 40
    verdict = evaluation_gate(summarize(dataset(live, live, unanswerable_refused=8)), Thresholds())
    assert not verdict.passed and "refusal_accuracy.estimate=0.8" in verdict.reason


def test_a_first_model_is_held_to_absolute_thresholds_only() -> None:
    good = ["A"] * 30 + ["B"] * 5 + ["C"] * 5
    summary = summarize(dataset(good, None))
    verdict = evaluation_gate(summary, Thresholds())
    assert verdict.passed and [c.name for c in verdict.checks] == [
        "a_rate.estimate",
        "c_rate.estimate",
        "refusal_accuracy.estimate",
    ]
    poor = ["A"] * 10 + ["C"] * 30
    assert not evaluation_gate(summarize(dataset(poor, None)), Thresholds()).passed


def test_pairwise_losses_fail_the_gate() -> None:
    rows = dataset(["A"] * 40, ["A"] * 40)
    rows = [
        GradedRow(r.item, r.answers, r.grades, LOSS if i < 30 else WIN)
        if r.item.question_type == "factual"
        else r
        for i, r in enumerate(rows)
    ]
    verdict = evaluation_gate(summarize(rows), Thresholds())
    assert not verdict.passed and "pairwise_net_wins" in verdict.reason


def test_no_verdict_when_the_grades_cannot_support_one() -> None:
    with pytest.raises(BadInput, match="empty"):
        evaluation_gate(summarize([]), Thresholds())
    unparsed = dataset(["A"] * 30 + [None] * 10, None)  # type: ignore[list-item]
    with pytest.raises(BadInput, match="could not be parsed for 10 of 50"):
        evaluation_gate(summarize(unparsed), Thresholds())
    no_unanswerable = [r for r in dataset(["A"] * 10, None) if r.item.question_type != "unanswerable"]
    with pytest.raises(BadInput, match="unanswerable"):
        evaluation_gate(summarize(no_unanswerable), Thresholds())
    assert evaluation_gate(summarize(no_unanswerable), Thresholds(min_refusal_accuracy=0)).passed
    with pytest.raises(BadInput, match="percent"):
        evaluation_gate(summarize(no_unanswerable), Thresholds(min_refusal_accuracy=90))


def test_per_type_breakdown_and_regressions_worst_first() -> None:
    rows = [row(1, "factual", "B", "A"), row(2, "numeric", "C", "A"), row(3, "numeric", "A", "C")]
    summary = summarize(rows)
    assert summary.per_type["numeric"]["candidate"].a_rate.estimate == 0.5
    assert summary.regressions == [rows[1].item.id, rows[0].item.id]
    flat = metrics(summary)
    assert flat["candidate_a_rate.numeric"] == 0.5 and "a_rate_diff_ci_low" in flat


def test_the_verdict_moves_one_alias_guarded_and_clears_the_other() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    version = registry.register(MODEL, "src", None)
    summary = summarize(dataset(["A"] * 30 + ["C"] * 10, None))
    failing = evaluation_gate(summary, Thresholds(min_a_rate=0.9))
    record_verdict(registry, model=MODEL, version=version, verdict=failing, tags={"eval.verdict": "fail"})
    assert registry.alias(MODEL, FAILED) == version and registry.alias(MODEL, PASSED) is None
    passing = evaluation_gate(summary, Thresholds())
    tags = version_tags(summary, passing, "run1", "reference")
    record_verdict(registry, model=MODEL, version=version, verdict=passing, tags=tags)
    assert registry.alias(MODEL, PASSED) == version and registry.alias(MODEL, FAILED) is None
    stored = registry.tags(MODEL, version)
    assert (
        stored["eval.verdict"] == "pass"
        and stored["eval.a_rate"] == "0.8000"
        and stored["eval.run_id"] == "run1"
    )
    # the old verdict comes off before the new one goes on: never both at once
    assert [(e.alias, e.to_version) for e in registry.history(MODEL)][-2:] == [
        (FAILED, None),
        (PASSED, version),
    ]


def test_a_verdict_alias_moved_by_someone_else_is_not_overwritten() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    version = registry.register(MODEL, "src", None)
    verdict = evaluation_gate(summarize(dataset(["A"] * 40, None)), Thresholds())

    class Racing(InMemoryBackend):
        def get_alias(self, model: str, alias: str) -> str | None:
            value = super().get_alias(model, alias)
            if alias == PASSED and not getattr(self, "raced", False):
                self.raced = True
                self.aliases.setdefault(model, {})[PASSED] = version  # someone else, between read and move
            return value

    racing = Registry(Racing(), actor="test")
    racing.backend.versions = registry.backend.versions  # type: ignore[attr-defined]
    with pytest.raises(AliasConflict):
        record_verdict(racing, model=MODEL, version=version, verdict=verdict, tags={})


def test_report_shows_summary_types_and_regressions_with_escaped_answers() -> None:
    rows = [
        row(1, "factual", "C", "A", candidate_text="<script>alert(1)</script>", live_text="answer 1"),
        row(2, "unanswerable", "A", "A"),
    ]
    summary = summarize(rows)
    verdict = evaluation_gate(summary, Thresholds(min_refusal_accuracy=0.5))
    page = render(summary, verdict, rows, model=MODEL, staged="3", live="2", judge="reference")
    assert "Verdict: FAIL" in page and "against live v2" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "By question type" in page and "<td>unanswerable</td>" in page
    assert "Regressions: 1 question(s)" in page and "answer 1" in page
    first = render(
        summarize([row(1, "factual", "A")]), verdict, [], model=MODEL, staged="1", live=None, judge="x"
    )
    assert "first model" in first and "no live version to compare with" in first


def test_report_rates_carry_their_count_total_and_interval() -> None:
    rows = [row(i, "factual", "A" if i < 7 else "B" if i < 10 else "C") for i in range(40)]
    rows += [row(100 + j, "unanswerable", "A" if j < 3 else "C") for j in range(4)]
    summary = summarize(rows)
    page = render(
        summary,
        evaluation_gate(summary, Thresholds(min_refusal_accuracy=0.5)),
        rows,
        model=MODEL,
        staged="1",
        live=None,
        judge="reference",
    )
    # 10 of 44 graded are A (7 factual + 3 refusals); B 3 of 44; refusals 3 of 4
    assert "10 of 44, 22.7% [12.8, 37.0]" in page
    assert "3 of 44, 6.8% [" in page  # B is a rate now, not a bare count
    assert "3 of 4, 75.0% [" in page
    assert "0 of 40, 0.0% [0.0, 8.8]" in page  # false refusals: of the answerable questions


def test_first_model_report_shows_a_sample_of_candidate_answers_with_reasons() -> None:
    rows = [row(i, "factual", "A" if i % 2 else "C") for i in range(60)]
    rows = [
        GradedRow(
            r.item,
            r.answers,
            {"candidate": Grade(r.grades["candidate"].grade, False, None, f"F1 0.{r.item.question[1:]}")},
        )
        for r in rows
    ]
    summary = summarize(rows)
    verdict = evaluation_gate(summary, Thresholds(min_refusal_accuracy=0.0))
    page = render(
        summary, verdict, rows, model=MODEL, staged="1", live=None, judge="reference", max_answers=20
    )
    assert "Answers (20 of 60 shown" in page
    assert "<td>q0</td>" in page and "cand 0" in page and "answer 0" in page and "F1 0.0" in page


def test_report_puts_disagreements_first_regressions_before_improvements() -> None:
    rows = [row(1, "factual", "A", "A"), row(2, "factual", "A", "C"), row(3, "factual", "C", "A")]
    summary = summarize(rows)
    page = render(
        summary,
        evaluation_gate(summary, Thresholds(min_refusal_accuracy=0.0)),
        rows,
        model=MODEL,
        staged="2",
        live="1",
        judge="reference",
    )
    answers = page[page.index('id="answers"') :]
    assert answers.index("<td>q3</td>") < answers.index("<td>q2</td>") < answers.index("<td>q1</td>")


def weak_factual() -> list[GradedRow]:
    """0 of 12 factual answers right while 8 of 12 numeric and 8 of 12 procedural are."""
    rows = [row(i, "factual", "C") for i in range(12)]
    rows += [row(100 + i, "numeric", "A" if i < 8 else "C") for i in range(12)]
    rows += [row(200 + i, "procedural", "A" if i < 8 else "C") for i in range(12)]
    rows += [row(300 + i, "unanswerable", "A") for i in range(5)]
    return rows


def test_a_type_far_below_the_others_is_flagged_in_the_summary_and_the_report() -> None:
    summary = summarize(weak_factual())
    assert summary.weak_types == ["factual"]
    verdict = evaluation_gate(summary, Thresholds(min_a_rate=0.3, max_c_rate=0.7))
    assert verdict.passed  # overall the rates pass: that is what the flag is for
    page = render(summary, verdict, weak_factual(), model=MODEL, staged="1", live=None, judge="reference")
    assert 'id="weak-types"' in page and "<b>factual</b>" in page and "factual (far below)" in page
    assert (
        summarize(
            [row(i, "factual", "A" if i % 2 else "C") for i in range(10)]
            + [row(50 + i, "numeric", "A" if i % 2 else "C") for i in range(10)]
        ).weak_types
        == []
    )


def test_the_per_type_floor_fails_a_verdict_that_passes_overall() -> None:
    summary = summarize(weak_factual())
    verdict = evaluation_gate(summary, Thresholds(min_a_rate=0.3, max_c_rate=0.7, min_type_a_rate=0.3))
    assert not verdict.passed and "a_rate[factual]" in verdict.reason
    names = [c.name for c in verdict.checks]
    assert "a_rate[numeric].estimate" in names and not any("unanswerable" in n for n in names)
    with pytest.raises(BadInput):
        evaluation_gate(summary, Thresholds(min_type_a_rate=1.5))
