"""The evaluation judge and gate steps, run as `python -m evaluation.<step>` against the local stack
(real MLflow tracking and registry). Each test registers versions of a model of its own and starts an
evaluation run shaped as `evaluation.generate` leaves it (tags + `evaluation/answers.jsonl`); the
answers are written here, so no vLLM server is needed. Checks: a verdict alias on the staged version
with its tags and report; nothing moved on any error."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from evaluation.runs import TAG_LIVE, TAG_MODEL, TAG_STAGED, dump_jsonl
from mlops.datasets.ragqa import REFUSAL, EvalItem, prompt_id
from mlops.registry import Registry, mlflow_registry
from tests.conftest import LocalStack
from tests.integration.steps import StepRun, assert_bad_input, assert_transient, run_module

pytestmark = pytest.mark.integration


def item(n: int, kind: str) -> EvalItem:
    prompt = f"[INST] Component {n} listens on port {8000 + n}.\n\nQuestion: q{n} [/INST]"
    reference = REFUSAL if kind == "unanswerable" else f"Component {n} listens on port {8000 + n}."
    return EvalItem(prompt_id(prompt), f"q{n}", f"Component {n} ...", reference, kind, prompt)


def answers_rows(candidate_right: int, live_right: int | None, total: int = 12) -> list[dict[str, object]]:
    """`total` numeric questions (the first N answered right by each slot) and 4 unanswerable ones."""
    rows: list[dict[str, object]] = []
    for n in range(total):
        it = item(n, "numeric")
        answers = {"candidate": it.reference if n < candidate_right else "Port 1."}
        if live_right is not None:
            answers["live"] = it.reference if n < live_right else "Port 1."
        rows.append({"item": it.to_json(), "answers": answers})
    for n in range(100, 104):
        answers = {"candidate": REFUSAL}
        if live_right is not None:
            answers["live"] = "I can't answer this from the given context."
        rows.append({"item": item(n, "unanswerable").to_json(), "answers": answers})
    return rows


def setup(live: bool) -> tuple[Registry, str, str, str | None]:
    """A model of its own with v1 (live, if asked) and v2 (staged)."""
    registry = mlflow_registry()
    model = f"eval-it-{uuid.uuid4().hex[:8]}"
    v1 = registry.register(model, "s3://x/adapters/1", None)
    v2 = registry.register(model, "s3://x/adapters/2", None)
    if live:
        registry.move_alias(model, "live", v1, reason="test")
    registry.move_alias(model, "staged", v2, reason="test")
    return registry, model, v2, v1 if live else None


def evaluation_run(model: str, staged: str, live: str | None, rows: list[dict[str, object]]) -> str:
    mlflow.set_experiment(model)
    with mlflow.start_run(run_name="evaluation (test)") as run:
        mlflow.set_tags({TAG_MODEL: model, TAG_STAGED: staged, TAG_LIVE: live or ""})
        mlflow.log_text(dump_jsonl(rows), "evaluation/answers.jsonl")
        return str(run.info.run_id)


def step(stack: LocalStack, name: str, *args: str, workdir: Path) -> StepRun:
    return run_module(stack, f"evaluation.{name}", *args, workdir=workdir)


def aliases(registry: Registry, model: str) -> dict[str, str | None]:
    return {a: registry.alias(model, a) for a in ("staged", "live", "eval-passed", "eval-failed")}


def test_a_candidate_as_good_as_live_gets_eval_passed_with_tags_and_report(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    registry, model, staged, live = setup(live=True)
    run_id = evaluation_run(model, staged, live, answers_rows(candidate_right=11, live_right=10))
    judged = step(local_stack, "judge", f"--run-id={run_id}", "--backend=reference", workdir=tmp_path)
    assert judged.returncode == 0, judged.explain()
    assert judged.outputs["unparseable"] == "0"
    gated = step(local_stack, "gate", f"--run-id={run_id}", f"--model-name={model}", workdir=tmp_path)
    assert gated.returncode == 0, gated.explain()
    assert gated.outputs["verdict"] == "pass" and gated.outputs["version"] == staged
    assert aliases(registry, model) == {
        "staged": staged,
        "live": live,
        "eval-passed": staged,
        "eval-failed": None,
    }
    tags = registry.tags(model, staged)
    assert tags["eval.verdict"] == "pass" and tags["eval.run_id"] == run_id
    assert float(tags["eval.a_rate"]) == pytest.approx(15 / 16, abs=1e-4)
    assert float(tags["eval.live_a_rate"]) == pytest.approx(14 / 16, abs=1e-4)
    assert tags["eval.refusal_accuracy"] == "1.0000" and tags["eval.judge"] == "reference"
    client = MlflowClient()
    files = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {
        f"evaluation/{n}"
        for n in ("answers.jsonl", "grades.jsonl", "summary.json", "verdict.json", "report.html")
    } <= files
    page = Path(client.download_artifacts(run_id, "evaluation/report.html", str(tmp_path))).read_text()
    assert "Verdict: PASS" in page and "By question type" in page
    metrics = client.get_run(run_id).data.metrics
    assert metrics["a_rate_diff"] == pytest.approx(1 / 16)
    assert [e.alias for e in registry.history(model)][-1] == "eval-passed"


def test_a_worse_first_model_gets_eval_failed_and_a_re_evaluation_moves_it_to_passed(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    registry, model, staged, _ = setup(live=False)
    poor = evaluation_run(model, staged, None, answers_rows(candidate_right=3, live_right=None))
    assert step(local_stack, "judge", f"--run-id={poor}", workdir=tmp_path).returncode == 0
    gated = step(local_stack, "gate", f"--run-id={poor}", f"--model-name={model}", workdir=tmp_path)
    assert gated.returncode == 0 and gated.outputs["verdict"] == "fail", gated.explain()
    assert "a_rate.estimate" in gated.outputs["reason"]
    assert aliases(registry, model)["eval-failed"] == staged
    good = evaluation_run(model, staged, None, answers_rows(candidate_right=12, live_right=None))
    assert step(local_stack, "judge", f"--run-id={good}", workdir=tmp_path).returncode == 0
    gated = step(local_stack, "gate", f"--run-id={good}", f"--model-name={model}", workdir=tmp_path)
    assert gated.outputs["verdict"] == "pass", gated.explain()
    assert (
        aliases(registry, model)["eval-passed"] == staged and aliases(registry, model)["eval-failed"] is None
    )


def test_staged_moved_since_generation_is_bad_input_and_moves_nothing(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    registry, model, staged, live = setup(live=True)
    run_id = evaluation_run(model, staged, live, answers_rows(candidate_right=12, live_right=10))
    assert step(local_stack, "judge", f"--run-id={run_id}", workdir=tmp_path).returncode == 0
    v3 = registry.register(model, "s3://x/adapters/3", None)
    registry.move_alias(model, "staged", v3, reason="another deployment")
    before = aliases(registry, model)
    gated = step(local_stack, "gate", f"--run-id={run_id}", f"--model-name={model}", workdir=tmp_path)
    assert_bad_input(gated, "staged", "evaluate again")
    assert aliases(registry, model) == before
    assert "eval.verdict" not in registry.tags(model, staged)


def test_a_judge_endpoint_that_is_down_is_transient_and_the_gate_then_has_no_verdict(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    registry, model, staged, live = setup(live=True)
    run_id = evaluation_run(model, staged, live, answers_rows(candidate_right=12, live_right=10))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judged = step(
        local_stack,
        "judge",
        f"--run-id={run_id}",
        "--backend=llm",
        f"--judge-endpoint=http://127.0.0.1:{port}",
        "--judge-model=judge",
        "--attempts=2",
        "--retry-wait-s=0",
        workdir=tmp_path,
    )
    assert_transient(judged, "unreachable")
    gated = step(local_stack, "gate", f"--run-id={run_id}", f"--model-name={model}", workdir=tmp_path)
    assert_bad_input(gated, "grades.jsonl", "evaluation.judge")
    assert aliases(registry, model)["eval-passed"] is None and aliases(registry, model)["eval-failed"] is None


def test_an_empty_evaluation_and_a_foreign_run_are_bad_input(local_stack: LocalStack, tmp_path: Path) -> None:
    registry, model, staged, live = setup(live=True)
    empty = evaluation_run(model, staged, live, [])
    assert_bad_input(step(local_stack, "judge", f"--run-id={empty}", workdir=tmp_path), "no answers")
    with mlflow.start_run() as other:
        pass
    assert_bad_input(
        step(local_stack, "judge", f"--run-id={other.info.run_id}", workdir=tmp_path), "not an evaluation run"
    )
    assert_bad_input(
        step(local_stack, "gate", f"--run-id={empty}", "--model-name=another-model", workdir=tmp_path),
        "not another-model",
    )
    assert aliases(registry, model)["eval-passed"] is None


def test_unparseable_grades_leave_no_verdict(local_stack: LocalStack, tmp_path: Path) -> None:
    registry, model, staged, live = setup(live=True)
    run_id = evaluation_run(model, staged, live, [])
    rows = []
    for row in answers_rows(candidate_right=12, live_right=10):
        grades = {role: {"grade": None, "refusal": False, "note": "no verdict"} for role in row["answers"]}  # type: ignore[union-attr]
        rows.append({**row, "grades": grades, "pairwise": None})
    MlflowClient().log_text(run_id, dump_jsonl(rows), "evaluation/grades.jsonl")
    gated = step(local_stack, "gate", f"--run-id={run_id}", f"--model-name={model}", workdir=tmp_path)
    assert_bad_input(gated, "could not be parsed")
    assert aliases(registry, model)["eval-passed"] is None and aliases(registry, model)["eval-failed"] is None
    assert json.loads(json.dumps(registry.tags(model, staged))).get("eval.verdict") is None
