"""The layering contracts of pyproject.toml ([tool.importlinter]) pass, and fail on a forbidden import.

import-linter runs in its own cached environment (the `importlint` extra, created here on first
use by scripts/ensure_venv.py, a few seconds); each case copies the five packages into a
temporary folder, adds one forbidden import and expects the contract it breaks to say so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mlops", "training", "deployment", "evaluation", "performance")


@pytest.fixture(scope="module")
def lint_imports() -> Path:
    made = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "ensure_venv.py"), "--extras", "importlint"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert made.returncode == 0, f"could not create the importlint environment:\n{made.stderr[-3000:]}"
    return Path(made.stdout.strip().splitlines()[-1]) / "bin" / "lint-imports"


def copy_of_the_packages(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def run(lint_imports: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(lint_imports), "--no-cache", *args],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_repository_keeps_every_contract(lint_imports: Path) -> None:
    result = run(lint_imports, REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("training/llm/register.py", "evaluation.gate", "stages"),
        ("performance/loadtest.py", "training.llm.records", "stages"),
        ("mlops/registry.py", "training.resnet.gates", "library"),
        ("mlops/argo/executor.py", "deployment.vllm.promote", "executor"),
        ("mlops/argo/executor.py", "mlops.step", "executor"),
        ("mlops/argo/workflow.py", "mlops.config", "executor"),  # the seam is lint's alone
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    lint_imports: Path, tmp_path: Path, module: str, forbidden: str, contract: str
) -> None:
    root = copy_of_the_packages(tmp_path)
    source = root / module
    source.write_text(source.read_text() + f"\nimport {forbidden}  # noqa: E402\n")
    result = run(lint_imports, root, "--contract", contract)
    importer = module.removesuffix(".py").replace("/", ".")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and f"{importer} -> {forbidden}" in result.stdout, result.stdout
