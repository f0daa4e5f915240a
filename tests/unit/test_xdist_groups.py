"""The suite's xdist groups really group: every test that uses an expensive session fixture (a
trained model, a vLLM server) runs on one worker, so the fixture is made once per run, and so do
the tests of one module that use a module-scoped fixture. Checked end to end with pytest-xdist
itself on a scratch suite, because a pytest/xdist pair that disagree on where a node id lives
ignores every xdist_group mark without a word."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SUITE = """
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def trained_resnet():  # same name as the expensive fixture of tests/e2e/conftest.py
    return "stand-in"


@pytest.mark.parametrize("case", range(6))
def test_uses_the_fixture(trained_resnet, case):
    Path(os.environ["WHERE"], f"fixture-{case}").write_text(os.environ["PYTEST_XDIST_WORKER"])


@pytest.mark.parametrize("case", range(6))
def test_marked(case):
    Path(os.environ["WHERE"], f"marked-{case}").write_text(os.environ["PYTEST_XDIST_WORKER"])


test_marked = pytest.mark.xdist_group("marked")(test_marked)


@pytest.fixture(scope="module")
def made_once_per_module():  # a module's own server or trained model
    return "stand-in"


@pytest.mark.parametrize("case", range(6))
def test_uses_a_module_fixture(made_once_per_module, case):
    Path(os.environ["WHERE"], f"module-{case}").write_text(os.environ["PYTEST_XDIST_WORKER"])
"""


def _workers(tmp_path: Path) -> dict[str, set[str]]:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_scratch.py").write_text(SUITE)
    where = tmp_path / "where"
    where.mkdir()
    suite = str(tmp_path / "suite")
    # the repository's grouping hook (tests/conftest.py) as a plugin, as the stack tiers load it
    plugin = ["-p", "tests.conftest", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            *plugin,
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "--rootdir",
            suite,
            suite,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "WHERE": str(where), "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found: dict[str, set[str]] = {"fixture": set(), "marked": set(), "module": set()}
    for file in where.iterdir():
        found[file.name.split("-")[0]].add(file.read_text())
    return found


def test_a_group_runs_on_one_worker_and_fixture_users_form_one(tmp_path: Path) -> None:
    found = _workers(tmp_path)
    assert found["marked"] and len(found["marked"]) == 1, found  # xdist honours xdist_group
    assert found["fixture"] and len(found["fixture"]) == 1, found  # tests/conftest.py marks fixture users
    assert found["module"] and len(found["module"]) == 1, found  # ... and a module fixture's users
