"""The record schema: one row validated, every problem named with its line; the two prompt formats."""

from __future__ import annotations

import math

import pytest

from mlops.datasets.ragqa import REFUSAL, QARecord, prompt_inference, prompt_training
from tests.unit.llm.factories import row
from training.llm.records import validate_row


def test_a_valid_row_becomes_a_record_with_its_line() -> None:
    record = validate_row(row(), 7)
    assert isinstance(record, QARecord)
    assert record.question_type == "numeric" and record.source_line == 7


@pytest.mark.parametrize("field", ["context", "question", "reference_answer"])
def test_a_missing_field_is_named_with_the_line(field: str) -> None:
    data = row()
    del data[field]
    errors = validate_row(data, 12)
    assert isinstance(errors, list)
    assert [str(e) for e in errors] == [f"line 12: missing field {field!r}"]


@pytest.mark.parametrize("blank", ["", "   ", None, math.nan])
def test_a_blank_field_counts_as_missing(blank: object) -> None:
    errors = validate_row({**row(), "question": blank}, 3)
    assert [str(e) for e in errors] == ["line 3: missing field 'question'"]  # type: ignore[union-attr]


def test_a_missing_question_type_is_named() -> None:
    errors = validate_row({**row(), "metadata": {}}, 4, unit="row")
    assert [str(e) for e in errors] == ["row 4: missing field 'metadata.question_type'"]  # type: ignore[union-attr]


def test_every_problem_of_a_row_is_reported() -> None:
    errors = validate_row({"context": 5}, 9)
    assert isinstance(errors, list)
    assert {str(e) for e in errors} == {
        "line 9: field 'context' must be text, got int",
        "line 9: missing field 'question'",
        "line 9: missing field 'reference_answer'",
        "line 9: missing field 'metadata.question_type'",
    }


def test_a_row_that_is_not_an_object_is_an_error() -> None:
    errors = validate_row(["a", "b"], 2)  # type: ignore[arg-type]
    assert isinstance(errors, list) and "expected an object" in str(errors[0])


@pytest.mark.parametrize(
    "shape",
    [
        {"metadata": '{"question_type": "factual"}'},
        {"metadata.question_type": "factual"},
        {"question_type": "factual"},
        {"metadata": {"question_type": "factual", "document_id": "d1"}},
    ],
)
def test_metadata_may_be_nested_json_text_or_a_flat_column(shape: dict[str, object]) -> None:
    data = {k: v for k, v in row().items() if k != "metadata"} | shape
    record = validate_row(data, 1)
    assert isinstance(record, QARecord) and record.question_type == "factual"


def test_metadata_that_is_not_an_object_is_an_error() -> None:
    errors = validate_row({**row(), "metadata": "not json"}, 5)
    assert any("metadata is not a JSON object" in str(e) for e in errors)  # type: ignore[union-attr]


def test_an_unanswerable_question_needs_the_canonical_refusal() -> None:
    errors = validate_row(row(answer="No idea.", question_type="unanswerable"), 6)
    assert isinstance(errors, list) and "canonical refusal" in str(errors[0])
    assert isinstance(validate_row(row(answer=REFUSAL, question_type="unanswerable"), 6), QARecord)


def test_prompts_follow_the_instruction_format() -> None:
    assert prompt_inference("C", "Q?") == "[INST] C\n\nQuestion: Q? [/INST]"
    assert prompt_training("C", "Q?", "A.") == "[INST] C\n\nQuestion: Q? [/INST] A."
    assert prompt_training("C", "Q?", "A.").startswith(prompt_inference("C", "Q?"))


def test_the_prepared_form_round_trips() -> None:
    record = validate_row({**row(), "metadata": {"question_type": "numeric", "document_id": "d9"}}, 11)
    assert isinstance(record, QARecord)
    data = record.to_json(split="train")
    assert data["prompt_training"] == record.prompt_training and data["split"] == "train"
    assert data["metadata"] == {"document_id": "d9", "question_type": "numeric", "source_line": 11}
    assert QARecord.from_json(data) == record
