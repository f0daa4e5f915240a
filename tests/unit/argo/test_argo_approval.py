"""The promote workflows' optional approval gate: a suspend step before the promotion, gated by
`require-approval` (default "false"), in vllm-promote and triton-deployment and declared by the e2e
workflows that call them."""

from __future__ import annotations

import pytest

from mlops.argo.expr import evaluate_when
from mlops.argo.schema import load_workflow
from mlops.argo.substitute import substitute
from tests.conftest import REPO_ROOT

GATED = {"vllm-promote.yaml": "promote", "triton-deployment.yaml": "set-aliases"}


def _main_steps(doc: dict) -> list[str]:
    main = next(t for t in doc["spec"]["templates"] if t["name"] == "main")
    return [step["name"] for group in main["steps"] for step in group]


@pytest.mark.parametrize(("file", "promotion"), GATED.items())
def test_the_approval_step_comes_right_before_the_promotion_and_is_a_suspend(
    file: str, promotion: str
) -> None:
    doc = load_workflow(REPO_ROOT / "workflows" / file)
    steps = _main_steps(doc)
    assert steps.index("approve") == steps.index(promotion) - 1
    approval = next(t for t in doc["spec"]["templates"] if t["name"] == "approval")
    assert "suspend" in approval


@pytest.mark.parametrize("file", [*GATED, "vision-e2e.yaml", "llm-e2e.yaml"])
def test_require_approval_is_declared_and_off_by_default(file: str) -> None:
    doc = load_workflow(REPO_ROOT / "workflows" / file)
    params = {p["name"]: p for p in doc["spec"]["arguments"]["parameters"]}
    assert params["require-approval"]["value"] == "false"
    assert params["require-approval"]["enum"] == ["true", "false"]


@pytest.mark.parametrize(("value", "waits"), [("false", False), ("true", True)])
def test_the_gate_waits_only_when_approval_is_required(value: str, waits: bool) -> None:
    doc = load_workflow(REPO_ROOT / "workflows" / "vllm-promote.yaml")
    main = next(t for t in doc["spec"]["templates"] if t["name"] == "main")
    approve = next(s for group in main["steps"] for s in group if s["name"] == "approve")
    condition = substitute(approve["when"], {"workflow.parameters.require-approval": value}, "when")
    assert evaluate_when(condition) is waits
    doc = load_workflow(REPO_ROOT / "workflows" / "triton-deployment.yaml")
    main = next(t for t in doc["spec"]["templates"] if t["name"] == "main")
    approve = next(s for group in main["steps"] for s in group if s["name"] == "approve")
    scope = {
        "workflow.parameters.require-approval": value,
        "steps.fetch.outputs.parameters.up-to-date": "false",
    }
    assert evaluate_when(substitute(approve["when"], scope, "when")) is waits
    scope["steps.fetch.outputs.parameters.up-to-date"] = "true"  # nothing to promote: no gate
    assert evaluate_when(substitute(approve["when"], scope, "when")) is False
