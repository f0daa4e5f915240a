"""Run whole workflows through `mlops run` as a user would, against the session's local stack."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LocalStack, VllmStack, mlops_run

WorkflowRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_workflow(local_stack: LocalStack, tmp_path: Path) -> WorkflowRunner:
    """`run_workflow("triton-training", model_name=..., **params)` -> the finished `mlops run` process."""

    def run(
        workflow: str | Path, *, params_file: str | None = "workflows/params/local.yaml", **params: str
    ) -> subprocess.CompletedProcess[str]:
        result = mlops_run(local_stack, workflow, tmp_path / "state", params_file, **params)
        print(result.stdout[-20000:])
        print(result.stderr[-5000:], file=sys.stderr)
        return result

    return run


@pytest.fixture
def model_names() -> dict[str, str]:
    """Model names private to one test, so tests sharing the stack never see each other's aliases."""
    suffix = uuid.uuid4().hex[:6]
    return {"model-name": f"resnet18-e2e-{suffix}", "onnx-model-name": f"resnet18-e2e-{suffix}-onnx"}


def release_session_adapter(
    run: WorkflowRunner, vllm_stack: VllmStack, model: str, reason: str, **slot: str
) -> str:
    """The session's trained adapter as a new version of `model`, deployed (vllm-deployment) and
    released (vllm-promote) through the workflows, with both gate verdicts moved by hand (the gates
    have tests of their own); `slot`: the workflows' slot parameters. Returns the version, now live."""
    from mlops.registry import mlflow_registry
    from tests.integration.test_vllm_serving import register_adapter, session_adapter

    registry = mlflow_registry()
    version = register_adapter(vllm_stack, model, session_adapter(vllm_stack))
    registry.move_alias(model, "candidate", version, reason=reason)
    deployed = run("vllm-deployment", **slot)
    assert deployed.returncode == 0, deployed.stdout[-4000:]
    for verdict in ("eval-passed", "perf-passed"):
        registry.move_alias(model, verdict, version, reason=reason)
    promoted = run("vllm-promote", **slot)
    assert promoted.returncode == 0, promoted.stdout[-4000:]
    assert registry.alias(model, "live") == version
    return version
