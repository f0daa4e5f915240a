"""Validation of one raw RAG-QA row into a `mlops.datasets.ragqa.QARecord` (the format lives there).

A record has `context`, `question`, `reference_answer` and `metadata.question_type`. Training
text is `[INST] {context}\n\nQuestion: {question} [/INST] {answer}`; inference text is the same
without the answer, so the model learns to continue exactly the prompt it will be served.
Unanswerable questions carry the canonical refusal, word for word.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops.datasets.ragqa import REFUSAL, REQUIRED_TEXT_FIELDS, UNANSWERABLE, QARecord


@dataclass(frozen=True)
class RowError:
    """A schema violation of one input row, addressed so a person can find it."""

    line: int
    message: str
    unit: str = "line"  # "line" for JSONL/CSV, "row" for Parquet

    def __str__(self) -> str:
        return f"{self.unit} {self.line}: {self.message}"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):  # pandas/pyarrow give NaN for an empty cell
        return True
    return isinstance(value, str) and not value.strip()


def _metadata_of(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The row's metadata as a dict, accepting the nested (JSONL), JSON-string and flat (CSV) shapes."""
    raw = row.get("metadata")
    if isinstance(raw, Mapping):
        metadata = dict(raw)
    elif isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return None, "metadata is not a JSON object"
        if not isinstance(parsed, dict):
            return None, "metadata is not a JSON object"
        metadata = parsed
    elif _is_missing(raw):
        metadata = {}
    else:
        return None, f"metadata must be an object, got {type(raw).__name__}"
    for key in ("metadata.question_type", "question_type"):
        if key in row and not _is_missing(row[key]) and "question_type" not in metadata:
            metadata["question_type"] = row[key]
    return metadata, None


def validate_row(row: Mapping[str, Any], line: int, unit: str = "line") -> QARecord | list[RowError]:
    """A QARecord, or every schema problem of the row (each naming its line)."""
    errors: list[RowError] = []
    if not isinstance(row, Mapping):
        return [RowError(line, f"expected an object with {', '.join(REQUIRED_TEXT_FIELDS)}", unit)]
    texts: dict[str, str] = {}
    for name in REQUIRED_TEXT_FIELDS:
        value = row.get(name)
        if name not in row or _is_missing(value):
            errors.append(RowError(line, f"missing field {name!r}", unit))
        elif not isinstance(value, str):
            errors.append(RowError(line, f"field {name!r} must be text, got {type(value).__name__}", unit))
        else:
            texts[name] = value
    metadata, problem = _metadata_of(row)
    if problem:
        errors.append(RowError(line, problem, unit))
    question_type = ""
    if metadata is not None:
        value = metadata.get("question_type")
        if _is_missing(value):
            errors.append(RowError(line, "missing field 'metadata.question_type'", unit))
        elif not isinstance(value, str):
            errors.append(RowError(line, "metadata.question_type must be text", unit))
        else:
            question_type = value.strip()
    if (
        question_type == UNANSWERABLE
        and "reference_answer" in texts
        and texts["reference_answer"].strip() != REFUSAL
    ):
        errors.append(
            RowError(line, f"question_type 'unanswerable' needs the canonical refusal {REFUSAL!r}", unit)
        )
    if errors:
        return errors
    extra = {k: v for k, v in (metadata or {}).items() if k not in ("question_type", "source_line")}
    return QARecord(
        context=texts["context"],
        question=texts["question"],
        reference_answer=texts["reference_answer"],
        question_type=question_type,
        source_line=line,
        extra_metadata=extra,
    )
