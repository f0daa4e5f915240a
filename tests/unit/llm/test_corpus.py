"""The synthetic Skyloom corpus: seeded, every question type, answers grounded in their context."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from mlops.datasets.ragqa import REFUSAL, UNANSWERABLE, QARecord
from training.llm import corpus
from training.llm.generate_corpus import Config, run
from training.llm.records import validate_row


def test_the_same_seed_gives_the_same_corpus() -> None:
    assert corpus.generate(20, seed=1) == corpus.generate(20, seed=1)
    assert corpus.generate(20, seed=1) != corpus.generate(20, seed=2)


def test_every_row_is_valid_and_every_type_appears(corpus_rows: list[dict[str, Any]]) -> None:
    assert all(isinstance(validate_row(r, i), QARecord) for i, r in enumerate(corpus_rows, 1))
    types = Counter(r["metadata"]["question_type"] for r in corpus_rows)
    assert set(types) == {"factual", "numeric", "yes_no", UNANSWERABLE}
    assert min(types.values()) >= 15


def test_unanswerable_questions_get_the_canonical_refusal(corpus_rows: list[dict[str, Any]]) -> None:
    for r in corpus_rows:
        assert (r["reference_answer"] == REFUSAL) == (r["metadata"]["question_type"] == UNANSWERABLE)


def test_numeric_answers_are_stated_in_the_context(corpus_rows: list[dict[str, Any]]) -> None:
    for r in corpus_rows:
        if r["metadata"]["question_type"] == "numeric":
            number = re.search(r"\d+", r["reference_answer"])
            assert number and number.group() in r["context"], r


def test_yes_no_answers_agree_with_the_context(corpus_rows: list[dict[str, Any]]) -> None:
    for r in corpus_rows:
        if r["metadata"]["question_type"] == "yes_no" and "TLS" in r["question"]:
            supports = "It supports mutual TLS." in r["context"]
            assert r["reference_answer"].startswith("Yes" if supports else "No"), r


def test_noise_adds_duplicates_that_cleaning_removes() -> None:
    clean_rows = corpus.generate(60, seed=4, noise=0.0)
    noisy = corpus.generate(60, seed=4, noise=0.3)
    assert len(noisy) > len(clean_rows)


def test_the_command_writes_a_file(tmp_path: Path) -> None:
    result = run(Config(output=str(tmp_path / "c.csv"), documents=5, seed=1))
    assert (tmp_path / "c.csv").read_text().startswith("context,")
    assert int(result.outputs["rows"]) >= 20
