"""What judges produce: a grade per answer (A/B/C, or None when the judge's reply did not parse),
pairwise outcomes, and the strict parser of a judge's `[[X]]` verdict."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from mlops.datasets.ragqa import EvalItem

GRADES = ("A", "B", "C")
ROLES = ("candidate", "live")
# pairwise outcomes, from the candidate's side; the last two are counted, never scored
WIN, LOSS, TIE, INCONSISTENT, UNPARSEABLE = "win", "loss", "tie", "inconsistent", "unparseable"

_VERDICT = re.compile(r"\[\[\s*([A-Za-z])\s*\]\]")


@dataclass(frozen=True)
class Grade:
    """A judge's grade of one answer. `grade` None: the judge's reply held no parseable verdict."""

    grade: str | None
    refusal: bool
    score: float | None = None  # reference judge: token F1
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grade:
        return cls(data.get("grade"), bool(data.get("refusal")), data.get("score"), str(data.get("note", "")))


class Judge(Protocol):
    """A grading backend: `reference` (offline) or `llm` (a chat endpoint)."""

    @property
    def name(self) -> str: ...

    def grade(self, item: EvalItem, answer: str) -> Grade: ...


@runtime_checkable
class PairwiseJudge(Protocol):
    def compare(self, item: EvalItem, first: str, second: str) -> str | None:
        """'A' (first better), 'B' (second better), 'C' (tie), or None if the reply did not parse."""
        ...


def parse_verdict(reply: str, allowed: tuple[str, ...] = GRADES) -> str | None:
    """The verdict of a judge's reply: its final `[[X]]` token, only if nothing but whitespace or a
    full stop follows it and no earlier `[[Y]]` token disagrees. Anything else is None (never a grade)."""
    text = reply.rstrip().rstrip(".").rstrip()
    found = list(_VERDICT.finditer(text))
    if not found or found[-1].end() != len(text):
        return None
    verdicts = {m.group(1) for m in found}
    if len(verdicts) != 1:
        return None
    verdict = found[-1].group(1)
    return verdict if verdict in allowed else None


def pairwise_outcome(candidate_first: str | None, live_first: str | None) -> str:
    """Combine the two orders into one outcome for the candidate; position bias cancels, a flip is inconsistent.

    `candidate_first`: the verdict with the candidate shown as A; `live_first`: with the live answer as A.
    """
    if candidate_first is None or live_first is None:
        return UNPARSEABLE
    as_first = {"A": WIN, "B": LOSS, "C": TIE}[candidate_first]
    as_second = {"A": LOSS, "B": WIN, "C": TIE}[live_first]
    return as_first if as_first == as_second else INCONSISTENT
