"""The `reference` judge: deterministic and offline, grading an answer against the reference answer.

- unanswerable question: A if the answer is a refusal (`evaluation.refusal`), else C (it made
  something up);
- answerable question answered with a refusal: C;
- a number of the reference missing from the answer: C (wrong or hallucinated value);
- yes/no: the answer's leading yes/no must agree with the reference's, else C;
- the deciding value right (the numbers, or the yes/no) but few words in common: at least B;
- otherwise token F1 (SQuAD normalisation): exact match or F1 >= a_min -> A, F1 >= b_min -> B, else C.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

from evaluation.grades import Grade
from evaluation.refusal import is_refusal
from mlops.datasets.ragqa import EvalItem

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def tokens(text: str) -> list[str]:
    text = text.lower().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of words, SQuAD style)."""
    predicted, expected = tokens(prediction), tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> bool:
    return tokens(prediction) == tokens(reference)


def polarity(text: str) -> str:
    words = tokens(text)
    return words[0] if words and words[0] in ("yes", "no") else ""


@dataclass(frozen=True)
class ReferenceJudge:
    """Grades by overlap with the reference answer; `a_min` / `b_min` are F1 fractions."""

    a_min: float = 0.8
    b_min: float = 0.5
    name: str = "reference"

    def grade(self, item: EvalItem, answer: str) -> Grade:
        refused = is_refusal(answer)
        f1 = round(token_f1(answer, item.reference), 4)
        if not answer.strip():
            return Grade("C", refused, f1, "empty answer")
        if item.unanswerable:
            return (
                Grade("A", True, f1, "refused an unanswerable question")
                if refused
                else Grade("C", False, f1, "answered an unanswerable question")
            )
        if refused:
            return Grade("C", True, f1, "refused an answerable question")
        if exact_match(answer, item.reference):
            return Grade("A", False, f1, "exact match")
        expected_numbers, numbers = set(_NUMBER.findall(item.reference)), set(_NUMBER.findall(answer))
        if expected_numbers - numbers:
            return Grade("C", False, f1, f"missing value {', '.join(sorted(expected_numbers - numbers))}")
        expected = polarity(item.reference)
        if expected and polarity(answer) != expected:
            return Grade("C", False, f1, f"expected '{expected}'")
        if f1 >= self.a_min:
            return Grade("A", False, f1, f"token F1 {f1:.2f}")
        # the deciding value is right (every number, no other; or the yes/no): terse, not wrong
        right_value = bool(expected) or bool(expected_numbers and numbers <= expected_numbers)
        if f1 >= self.b_min or right_value:
            return Grade("B", False, f1, f"token F1 {f1:.2f}")
        return Grade("C", False, f1, f"token F1 {f1:.2f}")
