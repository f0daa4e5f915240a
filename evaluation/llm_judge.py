"""The `llm` judge: any OpenAI-compatible chat endpoint (a judge model on vLLM, or a hosted API).

Rubric grading asks for A (correct and complete), B (partially correct) or C (wrong or
hallucinated) and reads the verdict strictly from a final `[[X]]` token; a reply without one is
recorded as unparseable (grade None), never guessed. Pairwise comparison shows the two answers
in both orders (`evaluation.grades.pairwise_outcome` keeps only consistent verdicts).

Transport: unreachable, timeout, 5xx and 429 are Transient (exit 3, retried); other 4xx (bad
key, unknown judge model) are BadInput.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from evaluation.grades import GRADES, Grade, parse_verdict
from evaluation.refusal import is_refusal
from mlops.datasets.ragqa import EvalItem
from mlops.errors import BadInput, Transient

RUBRIC_SYSTEM = (
    "You are a strict grader of answers to questions about a document. Judge only against the "
    "document and the reference answer; do not use outside knowledge."
)
RUBRIC = """Document:
{context}

Question: {question}

Reference answer: {reference}

Answer to grade: {answer}

Grade the answer:
A = correct and complete (for a question the document cannot answer: the answer declines to answer)
B = partially correct or incomplete
C = wrong, hallucinated, or an answer to a question the document cannot answer

Explain briefly, then end your reply with the grade in double brackets on its own, e.g. [[A]]."""

PAIRWISE = """Document:
{context}

Question: {question}

Reference answer: {reference}

[Answer A]
{first}

[Answer B]
{second}

Which answer is better, judged against the document and the reference? Ignore the order the
answers are shown in and their length. Explain briefly, then end your reply with [[A]] if answer A
is better, [[B]] if answer B is better, or [[C]] for a tie."""


class ChatEndpoint:
    """POST /v1/chat/completions on an OpenAI-compatible server."""

    def __init__(self, endpoint: str, model: str, api_key: str = "", timeout_s: float = 60.0) -> None:
        if not endpoint:
            raise BadInput("the llm judge needs --judge-endpoint (an OpenAI-compatible base URL)")
        if not model:
            raise BadInput("the llm judge needs --judge-model")
        base = endpoint if "://" in endpoint else f"http://{endpoint}"
        self.endpoint = base.rstrip("/").removesuffix("/v1")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.endpoint, timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._http.close()

    def chat(self, system: str, user: str, max_tokens: int = 512) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0.0,
            "max_tokens": max_tokens,
        }
        where = f"judge {self.endpoint} ({self.model})"
        try:
            response = self._http.post("/v1/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise Transient(f"{where} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Transient(f"{where} unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise Transient(f"{where} answered {response.status_code}: {response.text[:300]}")
        if response.status_code >= 400:
            raise BadInput(f"{where} refused the request ({response.status_code}): {response.text[:300]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise Transient(f"{where}: malformed chat answer: {response.text[:300]}") from exc


@dataclass
class LlmJudge:
    """Rubric and pairwise judging through a chat endpoint (anything with `chat(system, user, max_tokens)`)."""

    chat: Any
    max_tokens: int = 512
    name: str = "llm"

    def grade(self, item: EvalItem, answer: str) -> Grade:
        reply = self.chat.chat(
            RUBRIC_SYSTEM,
            RUBRIC.format(
                context=item.context, question=item.question, reference=item.reference, answer=answer
            ),
            self.max_tokens,
        )
        verdict = parse_verdict(reply, GRADES)
        note = reply.strip()[-300:] if verdict is None else ""
        return Grade(verdict, is_refusal(answer), None, note or f"judge: {verdict}")

    def compare(self, item: EvalItem, first: str, second: str) -> str | None:
        reply = self.chat.chat(
            RUBRIC_SYSTEM,
            PAIRWISE.format(
                context=item.context,
                question=item.question,
                reference=item.reference,
                first=first,
                second=second,
            ),
            self.max_tokens,
        )
        return parse_verdict(reply, GRADES)
