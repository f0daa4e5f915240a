"""Every step module answers `python -m <module> --help`: exit 0, its own usage line and description,
its required flags listed apart, and without importing a heavy library (those load inside `run`)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

from mlops.config import StepConfig, required_flags
from tests.conftest import REPO_ROOT

STAGES = ("training", "deployment", "evaluation", "performance")
# Seconds to import each; a step's `--help` (and lint, which imports every step) must not pay for them.
HEAVY = ("torch", "transformers", "peft", "mlflow", "onnxruntime", "vllm", "pandas", "matplotlib", "boto3")


def step_modules() -> list[str]:
    """The modules whose `main` is `step.main(...)`: every step, found in the source, not listed by hand."""
    return sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for stage in STAGES
        for path in (REPO_ROOT / stage).rglob("*.py")
        if "return step.main(" in path.read_text()
    )


def workflow_modules() -> set[str]:
    found: set[str] = set()
    for path in (REPO_ROOT / "workflows").glob("*.yaml"):
        found |= set(re.findall(r"command: \[python3?, -m, ([\w.]+)\]", path.read_text()))
    return found


def test_every_module_a_workflow_runs_is_a_step_module() -> None:
    assert workflow_modules(), "no `python -m` container found in workflows/"
    assert workflow_modules() <= set(step_modules())


def first_paragraph(module: str) -> str:
    doc = importlib.import_module(module).__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


@pytest.mark.parametrize("module", step_modules())
def test_help_exits_0_with_usage_description_and_required_flags(module: str) -> None:
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, "--help"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert answer.stdout.startswith(f"usage: python -m {module} "), answer.stdout[:300]
    shown = " ".join(answer.stdout.split())
    assert "".join(first_paragraph(module).split()) in "".join(shown.split())  # argparse wraps at hyphens too
    config: type[StepConfig] = importlib.import_module(module).Config
    heading = "required (as a flag, in the env or in --config):"  # argparse leaves out an empty group
    required = shown.split(heading)[1].split(" optional:")[0] if heading in shown else ""
    assert set(re.findall(r"(--[a-z0-9-]+) [A-Z0-9_]+ ", required)) == required_flags(config)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in answer.stderr.splitlines()}
    assert not imported & set(HEAVY), f"{module} --help imports {sorted(imported & set(HEAVY))}"
