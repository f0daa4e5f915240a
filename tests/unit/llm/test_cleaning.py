"""Cleaning: normalisation, length limits, exact and near duplicates, and when too much is dropped."""

from __future__ import annotations

import pytest

from mlops.errors import BadInput
from tests.unit.llm.factories import CONTEXT, record
from training.llm.cleaning import (
    REASON_CONTEXT_TOO_LONG,
    REASON_EXACT,
    REASON_NEAR,
    Limits,
    apply_limits,
    clean,
    context_clusters,
    deduplicate,
    normalize_text,
)


@pytest.mark.parametrize(
    ("raw", "clean_text"),
    [
        ("a\u00a0b", "a b"),  # non-breaking space
        ("port \uff18\uff14\uff14\uff13", "port 8443"),  # full-width digits (NFKC)
        ("  many   spaces\there  ", "many spaces here"),
        ("line one\r\nline two", "line one\nline two"),
        ("para\n\n\n\n\nnext", "para\n\nnext"),
        ("bell\x07 and null\x00 gone", "bell and null gone"),
        ("ﬁle", "file"),  # ligature
    ],
)
def test_normalize_text(raw: str, clean_text: str) -> None:
    assert normalize_text(raw) == clean_text


def test_rows_over_a_length_limit_are_dropped_with_the_reason() -> None:
    rows = [record(line=i) for i in range(40)] + [record(context="x" * 101, line=99)]
    kept, dropped = apply_limits(rows, Limits(max_context_chars=100, max_overlength_fraction=0.05))
    assert len(kept) == 40
    assert [(d.reason, d.record.source_line, d.detail) for d in dropped] == [
        (REASON_CONTEXT_TOO_LONG, 99, "101 > 100")
    ]


def test_too_many_overlong_contexts_is_bad_input_naming_lines() -> None:
    rows = [record(line=i) for i in range(10)] + [record(context="x" * 101, line=50 + i) for i in range(2)]
    with pytest.raises(BadInput) as caught:
        apply_limits(rows, Limits(max_context_chars=100, max_overlength_fraction=0.1))
    assert "2 of 12 rows (16.7%) are over the length limits" in str(caught.value)
    assert "lines 50, 51" in str(caught.value)


def test_question_and_answer_limits_apply_too() -> None:
    rows = [
        record(question="q" * 50, line=1),
        record(answer="a" * 50, line=2),
        *[record(line=3 + i) for i in range(40)],
    ]
    _, dropped = apply_limits(rows, Limits(max_question_chars=45, max_answer_chars=45))
    assert [d.reason for d in dropped] == ["question over max length", "answer over max length"]


def test_exact_duplicates_are_the_same_context_and_question_up_to_case_and_punctuation() -> None:
    rows = [
        record(line=1),
        record(question="on which port does ORBEL gateway listen", line=2),
        record(line=3),
    ]
    result = deduplicate(rows)
    assert [r.source_line for r in result.kept] == [1]
    assert [(d.reason, d.detail) for d in result.dropped] == [(REASON_EXACT, "same as line 1")] * 2


def test_near_duplicates_need_a_near_identical_question_and_answer() -> None:
    rows = [
        record(
            question="What is the maximum number of replicas of Orbel gateway?",
            answer="It scales to 12 replicas.",
            line=1,
        ),
        record(
            question="What is maximum number of replicas of Orbel gateway?",
            answer="It scales to 12 replicas.",
            line=2,
        ),
    ]
    result = deduplicate(rows)
    assert [(d.reason, d.detail) for d in result.dropped] == [(REASON_NEAR, "like line 1")]


def test_similar_questions_with_different_answers_are_kept() -> None:
    rows = [
        record(
            question="Does Orbel gateway support mutual TLS?",
            answer="Yes, Orbel gateway supports mutual TLS.",
            line=1,
        ),
        record(
            question="Does Orbel gateway support nightly backups?",
            answer="No, Orbel gateway takes no backups.",
            line=2,
        ),
        record(question="Is port 8443 open on Orbel gateway?", answer="Yes, port 8443 is open.", line=3),
        record(question="Is port 8444 open on Orbel gateway?", answer="No, port 8444 is closed.", line=4),
    ]
    assert len(deduplicate(rows).kept) == 4


def test_the_same_question_about_different_contexts_is_kept() -> None:
    other = "Tesk queue is the queue service of the Skyloom platform. It listens on port 9000."
    rows = [record(line=1), record(context=other, answer="Orbel gateway listens on port 9000.", line=2)]
    assert len(deduplicate(rows).kept) == 2


def test_near_identical_contexts_form_one_cluster() -> None:
    a = CONTEXT + " It keeps its data for 30 days. Nightly backups are enabled. It runs in the west-1 region."
    b = a.replace("platform.", "platform!")
    c = "Tesk queue is the queue service of the Skyloom platform. It listens on port 9000 and runs in north-2."
    clusters = context_clusters([a, b, c, a])
    assert clusters[0] == clusters[1] == clusters[3] != clusters[2]


def test_a_dataset_that_is_all_duplicates_is_bad_input() -> None:
    rows = [record(line=i) for i in range(1, 21)]
    with pytest.raises(BadInput, match=r"19 of 20 rows \(95.0%\) are duplicates"):
        clean(rows, Limits())


def test_clean_normalises_before_comparing() -> None:
    rows = [record(line=1), record(question="On which port does Orbel\u00a0gateway  listen?", line=2)]
    result = clean(rows, Limits(), max_duplicate_fraction=0.9)
    assert len(result.kept) == 1 and result.reasons() == {REASON_EXACT: 1}


def test_nothing_left_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no rows left"):
        clean([record(context="x" * 50)], Limits(max_context_chars=10, max_overlength_fraction=1.0))
