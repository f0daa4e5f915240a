"""`mlops lint`: step flags checked against each step's Config, params files checked against the
declared parameters, and the repository's own workflows/ folder clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops.argo.lint import lint, lint_workflows, step_config
from mlops.argo.parameters import WorkflowInvalid
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
        text.replace("  activeDeadlineSeconds: 7200\n", "  activeDeadlineSeconds: 7200\n  priority: 2\n", 1)
    )
    problems = lint_workflows(folder, repo_root=REPO_ROOT)
    assert any("spec.priority: not supported by the local executor" in p for p in problems), problems


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


# --- valid Argo is never called invalid ------------------------------------------------------------

HEAD = """apiVersion: argoproj.io/v1alpha1
kind: {kind}
metadata:
  name: {name}
spec:
"""
ECHO = """    - name: echo
      inputs:
        parameters: [{name: word}]
      container:
        image: python:3.11-slim
        command: [python, tests/unit/argo/golden_step.py, --out, "word={{inputs.parameters.word}}"]
      outputs:
        parameters:
          - name: word
            valueFrom: {path: /tmp/outputs/word}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )


def test_newer_argo_fields_and_plugins_are_unsupported_not_unknown(tmp_path: Path) -> None:
    text = (
        HEAD.format(kind="WorkflowTemplate", name="newer")
        + """  entrypoint: main
  podResources:
    requests: {cpu: "1"}
  templates:
    - name: main
      resourceClaims:
        - name: gpu
      container:
        image: python:3.11-slim
        command: [python, -c, "pass"]
    - name: hello
      plugin:
        hello: {message: one}
    - name: hello-again
      plugin:
        hello: {message: two}
"""
    )
    _write(tmp_path / "wf", "newer.yaml", text)
    problems = lint_workflows(tmp_path / "wf", repo_root=REPO_ROOT)
    assert not [p for p in problems if "unknown field" in p or "invalid" in p], problems
    assert not [p for p in problems if "needs exactly one of" in p], problems
    by_field = {p.split(": ", 2)[1]: p for p in problems}
    assert set(by_field) == {
        "spec.podResources",
        "spec.templates[0].resourceClaims",
        "spec.templates[1].plugin",
    }
    assert all("Argo supports it" in p for p in problems)
    assert "(and 1 more place(s) in this file)" in by_field["spec.templates[1].plugin"]  # once per field


def test_unsupported_template_kinds_are_refused_once_without_a_redundant_body_error() -> None:
    problems = lint_workflows(
        Path(__file__).parent / "golden" / "invalid" / "unsupported.yaml", repo_root=REPO_ROOT
    )
    assert any(
        ".resource: not supported by the local executor (mlops run); Argo supports it" in p for p in problems
    )
    assert not [p for p in problems if "needs exactly one of" in p], problems


def test_workflow_template_ref_lints_and_runs_with_the_workflows_arguments(tmp_path: Path, run: Any) -> None:
    folder = tmp_path / "wf"
    library = (
        HEAD.format(kind="WorkflowTemplate", name="echo-library")
        + """  entrypoint: main
  arguments:
    parameters: [{name: word, value: from-template}]
  templates:
    - name: main
      steps:
        - - name: say
            template: echo
            arguments:
              parameters: [{name: word, value: "{{workflow.parameters.word}}"}]
"""
        + ECHO
    )
    _write(folder, "library.yaml", library)
    caller = (
        HEAD.format(kind="Workflow", name="by-ref")
        + """  workflowTemplateRef:
    name: echo-library
  arguments:
    parameters: [{name: word, value: from-workflow}]
"""
    )
    path = _write(folder, "by-ref.yaml", caller)
    assert lint_workflows(folder, repo_root=REPO_ROOT) == []
    result = run(path, quiet=True).result
    assert result.phase == "Succeeded"
    assert result.node("say").outputs == {"word": "from-workflow"}
    broken = _write(tmp_path / "other", "by-ref.yaml", caller.replace("echo-library", "no-such-template"))
    problems = lint_workflows(broken.parent, repo_root=REPO_ROOT)
    assert any("workflowTemplateRef: no WorkflowTemplate named 'no-such-template'" in p for p in problems)


def test_entrypoint_inputs_come_from_the_submitter(tmp_path: Path, run: Any) -> None:
    text = (
        HEAD.format(kind="WorkflowTemplate", name="entry-inputs")
        + "  entrypoint: echo\n  templates:\n"
        + ECHO
    )
    path = _write(tmp_path / "wf", "entry.yaml", text)
    assert lint_workflows(path.parent, repo_root=REPO_ROOT) == []
    result = run(path, {"word": "given"}, quiet=True).result
    assert result.phase == "Succeeded" and result.root.outputs == {"word": "given"}
    with pytest.raises(WorkflowInvalid, match="parameter 'word' has no value"):
        run(path, quiet=True)
    as_workflow = _write(
        tmp_path / "wf2", "entry.yaml", text.replace("kind: WorkflowTemplate", "kind: Workflow")
    )
    assert any("needs input(s) word" in p for p in lint_workflows(as_workflow.parent, repo_root=REPO_ROOT))


def test_undeclared_arguments_and_retry_without_limit_are_named_warnings(tmp_path: Path) -> None:
    text = (
        HEAD.format(kind="WorkflowTemplate", name="policies")
        + """  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: say
            template: echo
            arguments:
              parameters: [{name: word, value: hi}, {name: extra, value: ignored}]
    - name: echo
      inputs:
        parameters: [{name: word}]
      retryStrategy:
        retryPolicy: OnFailure
      container:
        image: python:3.11-slim
        command: [python, -c, "pass"]
"""
    )
    path = _write(tmp_path / "wf", "policies.yaml", text)
    report = lint(path.parent, repo_root=REPO_ROOT)
    assert report.errors == []
    assert any(
        "[undeclared-argument] template echo has no input(s) extra, so Argo ignores them" in w
        for w in report.warnings
    )
    assert any("[retry-without-limit]" in w for w in report.warnings)
    assert lint_workflows(path.parent, repo_root=REPO_ROOT) == []
    assert len(lint_workflows(path.parent, repo_root=REPO_ROOT, strict=True)) == 2
    relaxed, strict = _cli("lint", str(path)), _cli("lint", str(path), "--strict")
    assert relaxed.returncode == 0 and "warning: " in relaxed.stdout and "2 warning(s)" in relaxed.stdout
    assert strict.returncode == 1 and "error: " in strict.stdout, strict.stdout


def test_lint_of_one_file_and_of_a_params_file_anywhere(tmp_path: Path) -> None:
    params = _write(tmp_path, "p.yaml", 'treshold: "0.995"\nepochs: "1"\n')
    one = _cli("lint", "workflows/triton-training.yaml")
    assert one.returncode == 0, one.stdout + one.stderr
    assert "1 workflow file(s)" in one.stdout
    bad = _cli("lint", "workflows", "--params", str(params))
    assert bad.returncode == 1
    assert f"{params}: treshold: no workflow in" in bad.stdout
    assert "(did you mean 'threshold'?)" in bad.stdout
    assert "epochs" not in bad.stdout.replace("treshold", "")  # a declared key passes


def test_kustomization_files_beside_the_workflows_are_not_linted(tmp_path: Path) -> None:
    folder = tmp_path / "wf"
    shutil.copy(REPO_ROOT / "workflows" / "triton-training.yaml", _write(folder, "x", "").parent / "t.yaml")
    (folder / "x").unlink()
    _write(folder, "kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
    _write(
        folder,
        "extra.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
    )
    report = lint(folder, repo_root=REPO_ROOT)
    assert report.errors == [] and [p.name for p in report.workflow_files] == ["t.yaml"]


# --- a step's required flags ------------------------------------------------------------------------


def test_a_container_that_omits_a_required_flag_fails_lint(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    text = (REPO_ROOT / "workflows" / "triton-training.yaml").read_text()
    gate = "command: [python, -m, training.resnet.quality_gate]\n        args:\n"
    given = gate + '          - "--run-id={{inputs.parameters.run-id}}"\n'
    assert text.count(given) == 1
    (folder / "triton-training.yaml").write_text(text.replace(given, gate))
    problems = lint_workflows(folder, repo_root=REPO_ROOT)
    assert problems == [
        f"{folder / 'triton-training.yaml'}: template quality-gate: training.resnet.quality_gate requires "
        "--run-id, which the container passes neither as an arg nor as env"
    ]


REQUIRED = """    - name: gate
      container:
        image: training:latest
        command: [python, -m, training.resnet.quality_gate]
        args: [{args}]
{env}"""


@pytest.mark.parametrize(
    ("args", "env", "found"),
    [
        ('"--threshold=0.9"', "", True),
        ('"--run-id", "{{inputs.parameters.run-id}}"', "", False),  # flag and value apart
        ('"--threshold=0.9"', "        env: [{name: MLOPS_RUN_ID, value: abc}]\n", False),
        ('"--threshold=0.9"', "        env: [{name: MLOPS_RUN, value: abc}]\n", True),
        ('"--config=/etc/gate.yaml"', "", False),  # the file may hold it: lint cannot tell
    ],
    ids=["omitted", "as-two-args", "as-env", "wrong-env", "config-file"],
)
def test_a_required_flag_may_be_an_arg_or_env(tmp_path: Path, args: str, env: str, found: bool) -> None:
    text = HEAD.format(kind="WorkflowTemplate", name="required") + "  entrypoint: gate\n  templates:\n"
    path = _write(tmp_path / "wf", "required.yaml", text + REQUIRED.format(args=args, env=env))
    problems = lint_workflows(path.parent, repo_root=REPO_ROOT)
    assert [p for p in problems if "requires --run-id" in p] == (
        [
            f"{path}: template gate: training.resnet.quality_gate requires --run-id, which the container "
            "passes neither as an arg nor as env"
        ]
        if found
        else []
    ), problems
