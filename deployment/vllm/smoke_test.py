"""Step: smoke-test the candidate slot on every replica, then move `staged` to the version.

Asks each replica's `<served-name>-candidate` a few questions from the version's own evaluation
split (answerable ones and unanswerable ones: the adapter must answer or refuse, not crash) and
checks each answer: non-empty, well-formed (a known finish reason, printable text with no
undecodable bytes) and under `--max-latency-s`. Before asking, it checks that every replica
serves exactly this version in the slot. All checks pass: `staged` moves to the version
(guarded) and the version is tagged with the figures. Any check fails: exit 2, `staged` does not
move (the workflow's exit handler puts the previous `staged` version back into the slot).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.vllm.adapters import adapter_path
from deployment.vllm.settings import VllmSettings, connect_all, workflow_name
from deployment.vllm.slots import CANDIDATE, agreed_root, slot_name
from mlops import step
from mlops.audit import utc_now
from mlops.datasets.ragqa import EvalItem, fetch_eval_file, parse_items
from mlops.errors import BadInput
from mlops.gates import Check, Verdict, check, verdict
from mlops.registry import Registry, mlflow_registry
from mlops.serving.vllm import Completion
from mlops.step import StepResult

FINISH_REASONS = ("stop", "length")


class Config(VllmSettings):
    version: str = Field(
        description="version expected in the candidate slot (version output of load_adapter)"
    )
    alias: str = Field("staged", description="alias moved to the version when every check passes")
    answerable: int = Field(2, ge=0, description="answerable questions asked per replica")
    unanswerable: int = Field(1, ge=0, description="unanswerable questions asked per replica")
    max_tokens: int = Field(48, ge=1, description="completion length per question")
    max_latency_s: float = Field(10.0, gt=0.0, description="slowest acceptable answer (seconds)")


def pick_questions(items: list[EvalItem], answerable: int, unanswerable: int) -> list[EvalItem]:
    """The first `answerable` answerable and `unanswerable` unanswerable questions of the split."""
    refuse = [item for item in items if item.unanswerable][:unanswerable]
    answer = [item for item in items if not item.unanswerable][:answerable]
    if len(refuse) + len(answer) == 0:
        raise BadInput("the evaluation split has no questions to smoke-test with")
    return answer + refuse


def answer_checks(label: str, completion: Completion, max_latency_s: float) -> list[Check]:
    """Pure: the checks of one answer."""
    text = completion.text.strip()
    printable = all(ch.isprintable() or ch in "\n\t" for ch in text) and "\ufffd" not in text
    return [
        check(f"{label}.non_empty", float(bool(text)), "==", 1.0),
        check(
            f"{label}.well_formed", float(printable and completion.finish_reason in FINISH_REASONS), "==", 1.0
        ),
        check(f"{label}.latency_s", completion.latency_s, "<=", max_latency_s),
    ]


def load_questions(registry: Registry, model: str, version: str, cfg: Config) -> list[EvalItem]:
    dataset_uri = registry.tags(model, version).get("dataset_uri", "")
    if not dataset_uri:
        raise BadInput(f"{model} v{version} has no dataset_uri tag: no evaluation split to ask from")
    with tempfile.TemporaryDirectory(prefix="vllm-smoke-") as tmp:
        items = parse_items(fetch_eval_file(dataset_uri, Path(tmp)).read_text())
    return pick_questions(items, cfg.answerable, cfg.unanswerable)


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    staged_before = registry.alias(cfg.model_name, cfg.alias)
    servers = connect_all(cfg)
    name = slot_name(cfg.served_name, CANDIDATE)
    expected = str(adapter_path(Path(cfg.adapter_dir), cfg.model_name, cfg.version).resolve())
    served = agreed_root(servers, name)
    if served != expected:
        raise BadInput(f"{name} serves {served or 'nothing'}, not v{cfg.version} ({expected}); load it first")
    questions = load_questions(registry, cfg.model_name, cfg.version, cfg)
    checks: list[Check] = []
    latencies: list[float] = []
    for server in servers:
        for index, record in enumerate(questions):
            answer = server.complete(name, record.prompt, max_tokens=cfg.max_tokens)
            latencies.append(answer.latency_s)
            label = f"{server.endpoint}.q{index}.{record.question_type}"
            checks.extend(answer_checks(label, answer, cfg.max_latency_s))
            print(
                f"[smoke] {label}: {answer.latency_s * 1000:.0f} ms, {answer.finish_reason}: {answer.text.strip()[:80]!r}"
            )
    result: Verdict = verdict(checks)
    if not result.passed:
        raise BadInput(
            f"smoke test of v{cfg.version} failed: {result.reason}; {cfg.alias} stays at {staged_before or 'unset'}"
        )
    registry.tag_version(
        cfg.model_name,
        cfg.version,
        {
            "smoke.verdict": "pass",
            "smoke.questions": str(len(questions) * len(servers)),
            "smoke.max_latency_s": f"{max(latencies):.3f}",
            "smoke.at": utc_now(),
        },
    )
    registry.move_alias(
        cfg.model_name,
        cfg.alias,
        cfg.version,
        expect_version=staged_before,
        reason=f"smoke test passed on {len(servers)} replica(s) in {workflow_name()}",
    )
    return StepResult(
        outputs={"version": cfg.version, "verdict": "pass"},
        summary=(
            f"{len(checks)} checks passed on {len(servers)} replica(s) (slowest {max(latencies):.2f}s); "
            f"{cfg.model_name}@{cfg.alias}: v{staged_before or 'unset'} -> v{cfg.version}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
