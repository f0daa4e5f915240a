"""Judges: the strict `[[X]]` verdict parser, pairwise consistency, the reference grades, and the llm
judge over a scripted chat endpoint (a fake at the chat boundary) and an unreachable one."""

from __future__ import annotations

import socket

import pytest

from evaluation.grades import INCONSISTENT, LOSS, TIE, UNPARSEABLE, WIN, pairwise_outcome, parse_verdict
from evaluation.judge import Config, build_judge, grade_rows
from evaluation.llm_judge import ChatEndpoint, LlmJudge
from evaluation.reference_judge import ReferenceJudge, token_f1
from mlops.datasets.ragqa import REFUSAL, EvalItem, prompt_id
from mlops.errors import BadInput, Transient


def item(reference: str, question_type: str = "numeric", question: str = "Which port?") -> EvalItem:
    prompt = f"[INST] ctx\n\nQuestion: {question} [/INST]"
    return EvalItem(prompt_id(prompt + reference), question, "ctx", reference, question_type, prompt)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("The answer is right. [[A]]", "A"),
        ("Partially.\n\n[[B]]\n", "B"),
        ("Wrong port. [[C]].", "C"),
        ("Verdict: [[ a ]]", None),  # lower case is not a grade
        ("[[A]] because it is correct", None),  # not final
        ("I would say A.", None),
        ("Between [[A]] and [[C]]: [[C]]", None),  # disagreeing tokens: ambiguous
        ("It deserves [[A]]. Final: [[A]]", "A"),
        ("[[D]]", None),
        ("[A]", None),
        ("", None),
    ],
)
def test_verdicts_are_parsed_strictly_from_a_final_token(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_pairwise_keeps_only_verdicts_consistent_across_both_orders() -> None:
    assert pairwise_outcome("A", "B") == WIN  # candidate better whether shown first or second
    assert pairwise_outcome("B", "A") == LOSS
    assert pairwise_outcome("C", "C") == TIE
    assert pairwise_outcome("A", "A") == INCONSISTENT  # the judge prefers whatever is shown first
    assert pairwise_outcome("A", None) == UNPARSEABLE


@pytest.mark.parametrize(
    ("reference", "kind", "answer", "grade"),
    [
        ("Orbel keeps its data for 30 days.", "numeric", "Orbel keeps its data for 30 days.", "A"),
        ("Orbel keeps its data for 30 days.", "numeric", "Orbel keeps its data for 45 days.", "C"),
        ("Orbel keeps its data for 30 days.", "numeric", "30 days.", "B"),
        ("Orbel keeps its data for 30 days.", "numeric", "", "C"),
        ("Orbel keeps its data for 30 days.", "numeric", REFUSAL, "C"),
        ("Yes, Orbel supports mutual TLS.", "yes_no", "No, Orbel does not support mutual TLS.", "C"),
        ("Yes, Orbel supports mutual TLS.", "yes_no", "Yes.", "B"),
        ("Yes, Orbel supports mutual TLS.", "yes_no", "Yes, Orbel supports mutual TLS!", "A"),
        ("Orbel is owned by team Falcon.", "factual", "Orbel is owned by the Falcon team.", "A"),
        ("Orbel is owned by team Falcon.", "factual", "The platform team runs it in Europe.", "C"),
        (REFUSAL, "unanswerable", "I can't answer this from the given context.", "A"),
        (REFUSAL, "unanswerable", "It costs 100 dollars a month.", "C"),
        (REFUSAL, "unanswerable", f"{REFUSAL} But it costs 100 dollars.", "C"),
    ],
)
def test_reference_judge_grades(reference: str, kind: str, answer: str, grade: str) -> None:
    assert ReferenceJudge().grade(item(reference, kind), answer).grade == grade


def test_token_f1_known_values() -> None:
    assert token_f1("the cat sat", "cat sat") == 1.0  # articles dropped
    assert token_f1("cat", "cat sat") == pytest.approx(2 / 3)
    assert token_f1("dog", "cat") == 0.0


class ScriptedChat:
    """A stand-in for an OpenAI-compatible judge: replies from a script, records prompts."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def chat(self, system: str, user: str, max_tokens: int = 512) -> str:
        self.prompts.append(user)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def test_llm_judge_grades_and_records_unparseable_replies_as_no_grade() -> None:
    judge = LlmJudge(ScriptedChat("Correct and complete. [[A]]", "I think it is fine."))
    good = judge.grade(item("Port 8443."), "Port 8443.")
    bad = judge.grade(item("Port 8443."), "Port 8443.")
    assert good.grade == "A"
    assert bad.grade is None and "fine" in bad.note


def test_pairwise_asks_both_orders_and_counts_the_consistent_outcome() -> None:
    chat = ScriptedChat(
        "[[A]]", "[[B]]"
    )  # candidate first: A wins; live first: B wins -> candidate both times
    rows = [{"item": item("Port 8443.").to_json(), "answers": {"candidate": "8443", "live": "80"}}]
    graded = grade_rows(LlmJudge(ScriptedChat("[[A]]")), rows, concurrency=1)
    assert graded[0].pairwise is None
    judge = LlmJudge(chat)
    judge.grade = lambda i, a: LlmJudge(ScriptedChat("[[B]]")).grade(i, a)  # type: ignore[method-assign]
    graded = grade_rows(judge, rows, pairwise=True, concurrency=1)
    assert graded[0].pairwise == WIN
    assert graded[0].grades["candidate"].grade == "B"
    shown = [p.split("[Answer A]\n", 1)[1].split("\n", 1)[0] for p in chat.prompts]
    assert shown == ["8443", "80"]


class FlakyJudge:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def grade(self, item: EvalItem, answer: str):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls <= self.failures:
            raise Transient("judge down")
        return ReferenceJudge().grade(item, answer)


def test_transient_judge_faults_are_retried_then_raised() -> None:
    rows = [{"item": item("Port 8443.").to_json(), "answers": {"candidate": "Port 8443."}}]
    assert grade_rows(FlakyJudge(2), rows, attempts=3, retry_wait_s=0)[0].grades["candidate"].grade == "A"
    with pytest.raises(Transient, match="judge down"):
        grade_rows(FlakyJudge(5), rows, attempts=3, retry_wait_s=0)


def test_an_unreachable_judge_endpoint_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    chat = ChatEndpoint(f"http://127.0.0.1:{port}", "judge", timeout_s=2)
    with pytest.raises(Transient, match="unreachable"):
        chat.chat("system", "user")


def test_judge_settings_are_checked() -> None:
    with pytest.raises(BadInput, match="judge-endpoint"):
        build_judge(Config(run_id="r1", backend="llm", judge_model="judge"))
    with pytest.raises(BadInput, match="pairwise"):
        build_judge(Config(run_id="r1", backend="reference", pairwise=True))
    assert "secret" not in Config(run_id="r1", judge_api_key="secret").model_dump_json()  # type: ignore[arg-type]
