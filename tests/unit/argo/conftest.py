"""Fixtures for the local executor tests: an isolated state dir and a captured, non-TTY console."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from mlops.argo.executor import run_workflow
from mlops.argo.nodes import WorkflowResult
from mlops.argo.process import LocalEnvironment

GOLDEN = Path(__file__).parent / "golden"


@dataclass
class Ran:
    result: WorkflowResult
    output: str


@pytest.fixture
def environment(tmp_path: Path) -> LocalEnvironment:
    return LocalEnvironment(state_dir=tmp_path / "state", kill_grace_seconds=2.0)


def captured_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False, color_system=None), buffer


@pytest.fixture
def run(environment: LocalEnvironment) -> Callable[..., Ran]:
    """Run a golden workflow (name relative to golden/, or a path) and capture what it printed."""

    def _run(
        workflow: str | Path,
        params: Mapping[str, str] | None = None,
        *,
        file_params: Mapping[str, str] | None = None,
        quiet: bool = False,
        env: LocalEnvironment | None = None,
    ) -> Ran:
        path = Path(workflow) if Path(workflow).is_absolute() else GOLDEN / workflow
        console, buffer = captured_console()
        result = run_workflow(
            path,
            dict(params or {}),
            workflows_dir=path.parent,
            environment=env or environment,
            console=console,
            file_params=file_params,
            quiet=quiet,
        )
        return Ran(result, buffer.getvalue())

    return _run
