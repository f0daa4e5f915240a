"""Run whole workflows through `mlops run` as a user would, against the session's local stack."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LocalStack, mlops_run

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
