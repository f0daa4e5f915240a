"""Small builders of LLM test inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops.datasets.ragqa import REFUSAL, QARecord

CONTEXT = "Orbel gateway is the gateway service of the Skyloom platform. It listens on port 8443."


def row(
    question: str = "On which port does Orbel gateway listen?",
    answer: str = "Orbel gateway listens on port 8443.",
    question_type: str = "numeric",
    context: str = CONTEXT,
) -> dict[str, Any]:
    return {
        "context": context,
        "question": question,
        "reference_answer": answer,
        "metadata": {"question_type": question_type},
    }


def record(
    question: str = "On which port does Orbel gateway listen?",
    answer: str = "Orbel gateway listens on port 8443.",
    question_type: str = "numeric",
    context: str = CONTEXT,
    line: int = 1,
) -> QARecord:
    return QARecord(context, question, answer, question_type, line)


def distinct_rows(count: int) -> list[dict[str, Any]]:
    """`count` rows about `count` different contexts, all four question types."""
    types = ["factual", "numeric", "yes_no", "unanswerable"]
    rows = []
    for i in range(count):
        kind = types[i % 4]
        context = f"Component number {i} of Skyloom runs in zone {i % 7} and keeps data for {i + 3} days."
        answer = REFUSAL if kind == "unanswerable" else f"Component {i} answer {kind}."
        rows.append(row(f"What about component {i} ({kind})?", answer, kind, context))
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path
