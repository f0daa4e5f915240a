"""Is an answer a refusal? The canonical refusal and close paraphrases are; an answer that merely
contains "cannot" (or refuses, then answers anyway) is not.

The answer is normalised (case, apostrophes, contractions, "unable to" -> "cannot"), cut into
clauses at sentence ends and at "but" / "however", and every clause must be either a refusal
statement or filler ("sorry", "unfortunately"). One clause that states something else makes the
answer an answer: a refusal followed by a guess is graded as the guess.
"""

from __future__ import annotations

import re

_CONTRACTIONS = {
    "can't": "cannot",
    "can not": "cannot",
    "couldn't": "could not",
    "don't": "do not",
    "doesn't": "does not",
    "didn't": "did not",
    "isn't": "is not",
    "aren't": "are not",
    "won't": "will not",
    "i'm": "i am",
    "it's": "it is",
    "there's": "there is",
    "am unable to": "cannot",
    "unable to": "cannot",
    "am not able to": "cannot",
    "not able to": "cannot",
}
_CLAUSE_SPLIT = re.compile(r"[.!?;:\n]+|,?\s+\bbut\b\s+|,?\s*\bhowever\b,?\s+")
_LEADING = re.compile(
    r"^(?:(?:i am |i'm )?sorry|unfortunately|apologies|regrettably|"
    r"(?:based on|given|according to|from) (?:the |this )?(?:given |provided |above )?(?:context|information|document)"
    r")\s*,?\s*"
)
_CONTEXT = r"(?:the |this |given |provided |above |available )*(?:context|information|document|text|passage)"
_REFUSALS = [
    # I cannot answer this question with the given context / I cannot tell from the context
    re.compile(
        r"^i (?:cannot|could not|am not able to) (?:answer|tell|say|determine|find|provide|know|give)\b"
    ),
    re.compile(r"^i do not (?:know|have (?:enough |sufficient |the )?(?:information|context|data))\b"),
    re.compile(r"^(?:there is )?(?:no|not enough|insufficient) (?:information|data|answer|mention)\b"),
    re.compile(
        rf"^{_CONTEXT} (?:does|do|did) not (?:contain|mention|say|state|provide|include|specify|give|answer)\b"
    ),
    re.compile(rf"^{_CONTEXT} (?:has|contains|provides|gives) no\b"),
    re.compile(
        r"^(?:this|the|that) (?:question|information|answer) (?:cannot|could not) be (?:answered|found|determined)\b"
    ),
    re.compile(
        rf"^(?:the |this )?(?:answer|information) (?:is|was) not (?:in|available in|present in|given in|"
        rf"provided in|stated in|mentioned in|found in) {_CONTEXT}"
    ),
    re.compile(rf"^(?:it|this|that) is not (?:mentioned|stated|specified|given|provided) in {_CONTEXT}"),
]
_FILLER = re.compile(r"^(?:(?:i am |i'm )?sorry|unfortunately|apologies|regrettably)?$")


def normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    for short, full in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}", full, text)
    return re.sub(r"[ \t]+", " ", text).strip()


def clauses(text: str) -> list[str]:
    return [c.strip(" ,\"'()*") for c in _CLAUSE_SPLIT.split(normalise(text)) if c.strip(" ,\"'()*")]


def is_refusal_clause(clause: str) -> bool:
    body = _LEADING.sub("", clause, count=1)
    return any(pattern.match(body) for pattern in _REFUSALS)


def is_refusal(answer: str) -> bool:
    """True when the answer declines to answer from the context and says nothing else."""
    parts = clauses(answer)
    if not any(is_refusal_clause(c) for c in parts):
        return False
    return all(is_refusal_clause(c) or _FILLER.match(c) for c in parts)
