"""`mlops lint`: step flags checked against each step's Config, params files checked against the
declared parameters, and the repository's own workflows/ folder clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mlops.argo.lint import lint_workflows, step_config
from tests.conftest import REPO_ROOT

LINT = Path(__file__).parent / "golden" / "lint"


def _problems() -> list[str]:
    return lint_workflows(LINT, repo_root=REPO_ROOT)


def test_a_flag_the_step_does_not_accept_is_named_with_what_it_accepts() -> None:
    problems = [p for p in _problems() if "template gate" in p]
    assert len(problems) == 1
    assert "arg --treshold is not accepted by tests.unit.argo.flag_step" in problems[0]
    assert "--threshold" in problems[0]  # the accepted flags are listed


def test_accepted_flags_space_separated_values_and_config_file_pass() -> None:
    assert not [p for p in _problems() if "template train" in p]


def test_a_step_module_without_config_is_a_finding_not_a_crash() -> None:
    problems = [p for p in _problems() if "template forgot" in p]
    assert len(problems) == 1
    assert "template forgot: tests.unit.argo.no_config_step has no module-level Config" in problems[0]


def test_params_files_must_be_flat_and_name_declared_parameters() -> None:
    problems = _problems()
    broken = [p for p in problems if "broken.yaml" in p]
    local = [p for p in problems if "local.yaml" in p]
    assert any("epoch: no workflow" in p for p in broken), broken
    assert any("epochs" in p and "epoch:" not in p for p in broken), broken  # the nested value
    assert local == []


def test_unimportable_module_is_reported() -> None:
    found = step_config("tests.unit.argo.does_not_exist", REPO_ROOT)
    assert isinstance(found, str)
    assert "cannot import tests.unit.argo.does_not_exist" in found


def test_misspelt_field_in_a_copy_of_a_real_workflow_fails_lint(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    text = (REPO_ROOT / "workflows" / "triton-training.yaml").read_text()
    assert "retryStrategy: &retry-transient" in text
    (folder / "triton-training.yaml").write_text(
        text.replace("retryStrategy: &retry-transient", "retryStrategey: &retry-transient")
    )
    problems = lint_workflows(folder, repo_root=REPO_ROOT)
    assert any("retryStrategey" in p for p in problems), problems


def test_unsupported_argo_field_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    text = (REPO_ROOT / "workflows" / "triton-training.yaml").read_text()
    (folder / "wf.yaml").write_text(
        text.replace(
            "  activeDeadlineSeconds: 7200\n", "  activeDeadlineSeconds: 7200\n  parallelism: 2\n", 1
        )
    )
    problems = lint_workflows(folder, repo_root=REPO_ROOT)
    assert any("spec.parallelism: not supported by the local executor" in p for p in problems), problems


def test_repository_workflows_are_clean_and_the_cli_says_so(tmp_path: Path) -> None:
    assert lint_workflows(REPO_ROOT / "workflows", repo_root=REPO_ROOT) == []
    ok = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "lint"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    bad = tmp_path / "bad"
    shutil.copytree(LINT, bad)
    failed = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "lint", str(bad)], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert failed.returncode == 1
    assert "problem(s)" in failed.stdout


def test_a_kustomization_beside_the_workflows_is_skipped_but_nothing_else_is(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    text = (REPO_ROOT / "workflows" / "triton-training.yaml").read_text()
    (folder / "triton-training.yaml").write_text(text)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - triton-training.yaml\n"
    )
    assert lint_workflows(folder, repo_root=REPO_ROOT) == []
    # the same `kind` without kustomize's apiVersion is no kustomization: linted, and refused
    (folder / "other.yaml").write_text("apiVersion: v1\nkind: Kustomization\n")
    problems = lint_workflows(folder, repo_root=REPO_ROOT)
    assert any("other.yaml" in p and "kind: expected one of" in p for p in problems), problems
