"""Run whole workflows through `mlops run` as a user would, against the session's local stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, LocalStack

WorkflowRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_workflow(local_stack: LocalStack, tmp_path: Path) -> WorkflowRunner:
    """`run_workflow("triton-training", model_name=..., **params)` -> the finished `mlops run` process."""

    def run(
        workflow: str | Path, *, params_file: str | None = "workflows/params/local.yaml", **params: str
    ) -> subprocess.CompletedProcess[str]:
        path = workflow if isinstance(workflow, Path) else REPO_ROOT / "workflows" / f"{workflow}.yaml"
        command = [
            sys.executable,
            "-m",
            "mlops.cli",
            "run",
            str(path),
            "--state-dir",
            str(tmp_path / "state"),
        ]
        if params_file:
            command += ["--params", str(REPO_ROOT / params_file)]
        merged = {
            "mlflow-tracking-uri": local_stack.mlflow_uri,
            "s3-endpoint-url": local_stack.s3_endpoint,
            **params,
        }
        for key, value in merged.items():
            command += ["-p", f"{key.replace('_', '-')}={value}"]
        env = {**os.environ, **local_stack.env, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=1500, check=False
        )
        print(result.stdout[-20000:])
        print(result.stderr[-5000:], file=sys.stderr)
        return result

    return run


@pytest.fixture
def model_names() -> dict[str, str]:
    """Model names private to one test, so tests sharing the stack never see each other's aliases."""
    suffix = uuid.uuid4().hex[:6]
    return {"model-name": f"resnet18-e2e-{suffix}", "onnx-model-name": f"resnet18-e2e-{suffix}-onnx"}
