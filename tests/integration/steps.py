"""Running step modules as a workflow would, for the integration tests: env, outputs, verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT, LocalStack

EXIT_BAD_INPUT = 2
EXIT_TRANSIENT = 3
STEP_TIMEOUT_S = 300


@dataclass(frozen=True)
class StepRun:
    """A finished step process and what it wrote to its own outputs folder."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    outputs_dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def outputs(self) -> dict[str, str]:
        if not self.outputs_dir.is_dir():
            return {}
        return {p.name: p.read_text() for p in self.outputs_dir.iterdir() if p.is_file()}

    def explain(self) -> str:
        return f"{' '.join(self.args)} -> {self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}"


def run_module(
    stack: LocalStack, module: str, *args: str, workdir: Path, env: dict[str, str] | None = None
) -> StepRun:
    """Run `python -m <module> ARGS` with the stack's env and a fresh outputs folder."""
    workdir.mkdir(parents=True, exist_ok=True)
    outputs_dir = workdir / f"outputs-{module.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:6]}"
    # Inherited MLOPS_* variables would be read as config values: keep only ours.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    full_env = {
        **inherited,
        **stack.env,
        "PYTHONPATH": str(REPO_ROOT),
        "MPLBACKEND": "Agg",
        "MLOPS_OUTPUTS_DIR": str(outputs_dir),
        **(env or {}),
    }
    command = [sys.executable, "-m", module, *args]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=full_env,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    return StepRun(command[2:], result.returncode, result.stdout, result.stderr, outputs_dir)


def assert_bad_input(run: StepRun, *fragments: str) -> None:
    """Exit 2, the step's `bad input:` line on stderr naming the problem, and no outputs written."""
    assert run.returncode == EXIT_BAD_INPUT, run.explain()
    assert "bad input:" in run.stderr, run.explain()
    for fragment in fragments:
        assert fragment in run.stderr, f"{fragment!r} not in stderr\n{run.explain()}"
    assert run.outputs == {}, run.explain()


def assert_transient(run: StepRun, *fragments: str) -> None:
    """Exit 3 with the step's `transient failure (retryable):` line naming the cause, and no outputs."""
    assert run.returncode == EXIT_TRANSIENT, run.explain()
    assert "transient failure (retryable):" in run.stderr, run.explain()
    for fragment in fragments:
        assert fragment in run.stderr, f"{fragment!r} not in stderr\n{run.explain()}"
    assert run.outputs == {}, run.explain()
