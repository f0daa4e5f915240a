"""Step: grade every answer of an evaluation run with a judge backend (a setting).

`--backend=reference`: deterministic and offline (token F1 / exact match against the reference
answer, refusal detection); what local runs and tests use. `--backend=llm`: an OpenAI-compatible
chat endpoint grades A/B/C by rubric; `--pairwise=true` also compares candidate and live answers
in both orders and keeps consistent verdicts. Replies without a parseable `[[X]]` verdict are
recorded as unparseable (grade null) and counted; the gate decides whether too many of them
leave no verdict. A judge endpoint that stays down is transient (exit 3): Argo retries, and the
gate never runs. Writes `evaluation/grades.jsonl` and judge metrics to the run.
Outputs: `run-id`, `graded`, `unparseable`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal

from pydantic import Field, SecretStr

from evaluation.grades import Grade, Judge, PairwiseJudge, pairwise_outcome
from evaluation.llm_judge import ChatEndpoint, LlmJudge
from evaluation.reference_judge import ReferenceJudge
from evaluation.runs import ANSWERS, GRADES, dump_jsonl, evaluation_run, log_text, read_jsonl
from evaluation.summary import GradedRow
from mlops import step
from mlops.config import StepConfig
from mlops.datasets.ragqa import EvalItem
from mlops.errors import BadInput, Transient
from mlops.step import StepResult
from mlops.tracking import mlflow_errors, tracking_client


class JudgeSettings(StepConfig):
    """How to judge, without what: the judge step's settings, shared with the production probe."""

    backend: Literal["reference", "llm"] = Field("reference", description="reference (offline) or llm")
    judge_endpoint: str = Field("", description="llm: OpenAI-compatible base URL, e.g. http://judge:8000")
    judge_model: str = Field("", description="llm: the judge model's served name")
    judge_api_key: SecretStr = Field(SecretStr(""), description="llm: bearer token (env MLOPS_JUDGE_API_KEY)")
    judge_max_tokens: int = Field(512, ge=16, description="llm: max tokens of a judge reply")
    pairwise: bool = Field(False, description="llm: also compare candidate vs live in both orders")
    a_min_f1: float = Field(0.8, ge=0.0, le=1.0, description="reference: token F1 for grade A")
    b_min_f1: float = Field(0.5, ge=0.0, le=1.0, description="reference: token F1 for grade B")
    concurrency: int = Field(8, ge=1, le=256, description="judge requests in flight")
    attempts: int = Field(4, ge=1, description="tries per judge request on transient faults")
    retry_wait_s: float = Field(1.0, ge=0.0, description="first wait between tries (doubles, at most 30 s)")
    timeout_s: float = Field(120.0, gt=0.0, description="timeout of one judge request")


class Config(JudgeSettings):
    run_id: str = Field(description="the evaluation run (run-id output of evaluation.generate)")


def build_judge(cfg: JudgeSettings) -> Judge:
    if cfg.backend == "reference":
        if cfg.pairwise:
            raise BadInput("--pairwise needs --backend=llm (the reference judge grades each answer alone)")
        if cfg.b_min_f1 > cfg.a_min_f1:
            raise BadInput(f"--b-min-f1={cfg.b_min_f1} is above --a-min-f1={cfg.a_min_f1}")
        return ReferenceJudge(a_min=cfg.a_min_f1, b_min=cfg.b_min_f1)
    chat = ChatEndpoint(
        cfg.judge_endpoint, cfg.judge_model, cfg.judge_api_key.get_secret_value(), cfg.timeout_s
    )
    return LlmJudge(chat, max_tokens=cfg.judge_max_tokens)


def grade_rows(
    judge: Judge,
    rows: list[dict[str, Any]],
    *,
    pairwise: bool = False,
    concurrency: int = 8,
    attempts: int = 4,
    retry_wait_s: float = 1.0,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> list[GradedRow]:
    """Grade every answer of every row (and compare pairs), concurrently, retrying transient faults."""
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    retried = retry(
        retry=retry_if_exception_type(Transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=retry_wait_s, max=30),
        reraise=True,
    )
    items = [EvalItem.from_json(row["item"]) for row in rows]
    answers = [{str(k): str(v) for k, v in row["answers"].items()} for row in rows]
    tasks: list[tuple[int, str, Callable[[], Any]]] = []
    for index, (item, by_role) in enumerate(zip(items, answers, strict=True)):
        for role, text in by_role.items():
            tasks.append((index, role, retried(partial(judge.grade, item, text))))
        if pairwise and {"candidate", "live"} <= by_role.keys():
            compare = judge.compare  # type: ignore[attr-defined]
            c, live = by_role["candidate"], by_role["live"]
            tasks.append((index, "pair:candidate-first", retried(partial(compare, item, c, live))))
            tasks.append((index, "pair:live-first", retried(partial(compare, item, live, c))))
    results: dict[tuple[int, str], Any] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval-judge") as pool:
        futures = [(index, key, pool.submit(call)) for index, key, call in tasks]
        for done, (index, key, future) in enumerate(futures, start=1):
            try:
                results[(index, key)] = future.result()
            except BaseException:
                for *_, pending in futures:
                    pending.cancel()
                raise
            progress(done, len(futures))
    graded = []
    for index, (item, by_role) in enumerate(zip(items, answers, strict=True)):
        grades: dict[str, Grade] = {role: results[(index, role)] for role in by_role}
        outcome = None
        if (index, "pair:candidate-first") in results:
            outcome = pairwise_outcome(
                results[(index, "pair:candidate-first")], results[(index, "pair:live-first")]
            )
        graded.append(GradedRow(item, by_role, grades, outcome))
    return graded


def run(cfg: Config, judge: Judge | None = None) -> StepResult:
    from evaluation.generate import rich_progress

    judge = judge or build_judge(cfg)
    if cfg.pairwise and not isinstance(judge, PairwiseJudge):
        raise BadInput(f"the {judge.name} judge cannot compare pairs")
    client = tracking_client()
    evaluation_run(client, cfg.run_id)
    rows = read_jsonl(client, cfg.run_id, ANSWERS, "evaluation.generate")
    if not rows:
        raise BadInput(f"run {cfg.run_id} has no answers: the evaluation set was empty")
    update, stop = rich_progress(f"judging ({judge.name})")
    try:
        graded = grade_rows(
            judge,
            rows,
            pairwise=cfg.pairwise,
            concurrency=cfg.concurrency,
            attempts=cfg.attempts,
            retry_wait_s=cfg.retry_wait_s,
            progress=update,
        )
    finally:
        stop()
    grades = [g for row in graded for g in row.grades.values()]
    unparseable = sum(g.grade is None for g in grades)
    log_text(client, cfg.run_id, dump_jsonl(row.to_json() for row in graded), GRADES)
    with mlflow_errors(f"logging judge metrics to run {cfg.run_id}"):
        client.set_tag(cfg.run_id, "eval.judge", judge.name)
        client.log_param(cfg.run_id, "judge", f"{judge.name}{' pairwise' if cfg.pairwise else ''}")
        client.log_metric(cfg.run_id, "judge_unparseable", float(unparseable))
        client.log_metric(cfg.run_id, "judge_graded", float(len(grades) - unparseable))
    return StepResult(
        outputs={
            "run-id": cfg.run_id,
            "graded": str(len(grades) - unparseable),
            "unparseable": str(unparseable),
        },
        summary=f"{len(grades)} answers judged by {judge.name}: {unparseable} unparseable",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
