"""Refusal detection: the canonical refusal and close paraphrases are refusals; answers that merely
contain "cannot", or refuse and then answer anyway, are not."""

from __future__ import annotations

import pytest

from evaluation.refusal import is_refusal
from mlops.datasets.ragqa import REFUSAL

REFUSALS = [
    REFUSAL,
    "I can't answer this question with the given context.",
    "I cannot answer this question based on the provided context.",
    "Sorry, I cannot answer that from the context.",
    "I am unable to answer this question with the given context.",
    "I'm not able to tell from the context.",
    "The context does not mention the monthly cost.",
    "The given context doesn't say.",
    "This question cannot be answered from the given context.",
    "I don't know.",
    "Based on the given context, I cannot answer this question.",
    "The answer is not in the context.",
    "There is no information about this in the context.",
    "Unfortunately, the provided context does not contain this information.",
    "It is not mentioned in the context.",
    "  i CANNOT answer this question with the given context  ",
    "I cannot answer this question with the given context. I cannot answer this question with the given",
    "I cannot answer this question with the given context\u2019s information.",
]

NOT_REFUSALS = [
    "",
    "Orbel gateway listens on port 8443.",
    "No, Orbel gateway cannot use mutual TLS.",
    "Requests cannot take longer than 30 seconds.",
    "It cannot answer requests after 30 seconds.",
    "The service cannot be reached without mutual TLS.",
    "Yes, the context says the gateway cannot scale beyond 4 replicas.",
    "I cannot answer this question with the given context. However, it listens on port 8443.",
    "I cannot answer this question with the given context, but the owner is team Falcon.",
    "The context does not mention the cost, but it is probably 100 dollars.",
    "I know the answer: 8443.",
    "No.",
    "The gateway does not support mutual TLS.",
    "Cannot.",
]


@pytest.mark.parametrize("answer", REFUSALS)
def test_refusals_and_close_paraphrases_are_refusals(answer: str) -> None:
    assert is_refusal(answer)


@pytest.mark.parametrize("answer", NOT_REFUSALS)
def test_answers_that_merely_contain_refusal_words_are_not(answer: str) -> None:
    assert not is_refusal(answer)
