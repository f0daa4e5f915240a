"""Valid Argo that `mlops lint` once called invalid: each class of field and file shape, in a small workflow.

Found by linting Argo's own example workflows; every case also keeps the real check beside it
(a misspelt field or attribute is still an error).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops.argo.lint import lint_workflows
from tests.conftest import REPO_ROOT

STEP = "tests/unit/argo/golden_step.py"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _lint(path: Path) -> list[str]:
    return lint_workflows(path, repo_root=REPO_ROOT)


CRON = """apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: nightly-retrain
spec:
  schedules: ["0 2 * * *"]
  concurrencyPolicy: Forbid
  workflowSpec:
    entrypoint: train
    templates:
      - name: train
        container:
          image: python:3.11-slim
          command: [python, -c, "print('train')"]
"""


def test_a_cron_workflow_is_checked_against_argos_schema_and_refused_as_unsupported(tmp_path: Path) -> None:
    problems = _lint(_write(tmp_path, "cron.yaml", CRON))
    assert problems == [
        f"{tmp_path / 'cron.yaml'}: kind: CronWorkflow not supported by the local executor (mlops run); "
        "Argo supports it (a schedule that submits spec.workflowSpec): run that spec as a kind: Workflow"
    ]
    misspelt = _lint(_write(tmp_path / "b", "cron.yaml", CRON.replace("entrypoint:", "entrypont:")))
    assert any(
        "spec.workflowSpec.entrypont: unknown field (did you mean 'entrypoint'?)" in p for p in misspelt
    )
    old = _lint(
        _write(tmp_path / "c", "cron.yaml", CRON.replace('schedules: ["0 2 * * *"]', 'schedule: "0 2 * * *"'))
    )
    assert any("spec.schedule: removed in Argo v4: use 'schedules'" in p for p in old), old
    assert any("spec.schedules: Field required" in p for p in old), old
    other = _lint(
        _write(tmp_path / "d", "cron.yaml", CRON.replace("kind: CronWorkflow", "kind: CronWorkflw"))
    )
    assert any("kind: expected one of" in p for p in other)


LIBRARY = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  word: hello
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: say-library
spec:
  templates:
    - name: say
      inputs:
        parameters: [{name: word}]
      container:
        image: python:3.11-slim
        command: [python, STEP, --out, "word={{inputs.parameters.word}}"]
      outputs:
        parameters:
          - name: word
            valueFrom: {path: /tmp/outputs/word}
---
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: shout-library
spec:
  templates:
    - name: shout
      steps:
        - - name: inner
            templateRef: {name: say-library, template: say}
            arguments:
              parameters: [{name: word, value: HELLO}]
""".replace("STEP", STEP)
CALLER = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: caller-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: loud
            templateRef: {name: shout-library, template: shout}
"""


def test_a_file_of_several_workflow_templates_is_linted_per_document_and_resolves_refs(
    tmp_path: Path, run: Any
) -> None:
    folder = tmp_path / "wf"
    _write(folder, "library.yaml", LIBRARY)
    caller = _write(folder, "caller.yaml", CALLER)
    assert _lint(folder) == []
    assert _lint(folder / "library.yaml") == []
    result = run(caller, quiet=True).result
    assert result.phase == "Succeeded"
    assert result.node("loud.inner").outputs == {"word": "HELLO"}
    broken = _write(
        tmp_path / "broken", "library.yaml", LIBRARY.replace("valueFrom: {path", "valuFrom: {path")
    )
    problems = _lint(broken)
    assert problems == [
        f"{broken} (WorkflowTemplate say-library): spec.templates[0].outputs.parameters[0].valuFrom: "
        "unknown field (did you mean 'valueFrom'?)"
    ], problems
    _write(
        tmp_path / "missing",
        "library.yaml",
        LIBRARY.replace("  name: say-library\nspec", "  name: other-library\nspec"),
    )
    _write(tmp_path / "missing", "caller.yaml", CALLER)
    assert any("no WorkflowTemplate named 'say-library'" in p for p in _lint(tmp_path / "missing"))


FAN_OUT = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: fan-out-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: score
            template: score
            arguments:
              parameters: [{name: n, value: "{{item}}"}]
            withItems: ["1", "2"]
        - - name: report
            template: report
            arguments:
              parameters: [{name: all, value: "{{steps.score.outputs.parameters}}"}]
    - name: score
      inputs:
        parameters: [{name: n}]
      container:
        image: python:3.11-slim
        command: [python, STEP, --out, "n={{inputs.parameters.n}}", --out, "double={{inputs.parameters.n}}{{inputs.parameters.n}}"]
      outputs:
        parameters:
          - {name: n, valueFrom: {path: /tmp/outputs/n}}
          - {name: double, valueFrom: {path: /tmp/outputs/double}}
    - name: report
      inputs:
        parameters: [{name: all}]
      container:
        image: python:3.11-slim
        command: [python, STEP, --out, "all={{inputs.parameters.all}}"]
      outputs:
        parameters:
          - {name: all, valueFrom: {path: /tmp/outputs/all}}
""".replace("STEP", STEP)


def test_a_fanned_out_steps_whole_outputs_parameters_is_the_json_list_argo_aggregates(
    tmp_path: Path, run: Any
) -> None:
    path = _write(tmp_path, "fan.yaml", FAN_OUT)
    assert _lint(path) == []
    result = run(path, quiet=True).result
    assert result.phase == "Succeeded"
    assert json.loads(result.node("report").outputs["all"]) == [
        {"double": "11", "n": "1"},
        {"double": "22", "n": "2"},
    ]
    single = _write(
        tmp_path / "b",
        "fan.yaml",
        FAN_OUT.replace('            withItems: ["1", "2"]\n', "").replace("{{item}}", "1"),
    )
    assert any(
        "{{steps.score.outputs.parameters}} is only set for a step with withItems, withParam or withSequence"
        in p
        for p in _lint(single)
    ), _lint(single)
    typo = _write(
        tmp_path / "c", "fan.yaml", FAN_OUT.replace("score.outputs.parameters}}", "score.outputs.paramters}}")
    )
    assert any("has unknown attribute 'outputs.paramters'" in p for p in _lint(typo))


EXIT_CODE = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: exit-code-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: probe
            template: probe
            continueOn: {failed: true}
        - - name: show
            template: show
            arguments:
              parameters: [{name: code, value: "{{steps.probe.outputs.exitCode}}"}]
    - name: probe
      container:
        image: python:3.11-slim
        command: [python, STEP, --exit, "7"]
    - name: show
      inputs:
        parameters: [{name: code}]
      container:
        image: python:3.11-slim
        command: [python, STEP, --out, "code={{inputs.parameters.code}}"]
      outputs:
        parameters:
          - {name: code, valueFrom: {path: /tmp/outputs/code}}
""".replace("STEP", STEP)


def test_a_steps_outputs_exit_code_is_known_to_lint_and_set_by_run(tmp_path: Path, run: Any) -> None:
    path = _write(tmp_path, "exit.yaml", EXIT_CODE)
    assert _lint(path) == []
    result = run(path, quiet=True).result
    assert result.node("show").outputs == {"code": "7"}
    typo = _write(tmp_path / "b", "exit.yaml", EXIT_CODE.replace("outputs.exitCode", "outputs.exitcode"))
    assert any("has unknown attribute 'outputs.exitcode'" in p for p in _lint(typo))


MULTILINE = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: multiline-
spec:
  entrypoint: main
  arguments:
    parameters: [{name: size, value: "3"}]
  templates:
    - name: main
      steps:
        - - name: double
            template: double
            arguments:
              parameters:
                - name: doubled
                  value: >-
                    {{=
                      asInt(workflow.parameters.size)
                      * 2
                    }}
    - name: double
      inputs:
        parameters: [{name: doubled}]
      container:
        image: python:3.11-slim
        command: [python, STEP, --out, "doubled={{inputs.parameters.doubled}}"]
      outputs:
        parameters:
          - {name: doubled, valueFrom: {path: /tmp/outputs/doubled}}
""".replace("STEP", STEP)


def test_an_expression_tag_over_several_lines_is_checked_and_evaluated(tmp_path: Path, run: Any) -> None:
    path = _write(tmp_path, "multi.yaml", MULTILINE)
    assert _lint(path) == []
    assert run(path, quiet=True).result.node("double").outputs == {"doubled": "6"}
    closure = _write(tmp_path / "b", "multi.yaml", MULTILINE.replace("* 2", "* map([1], {# + 1})[0]"))
    problems = _lint(closure)
    assert any("not supported by the local executor (mlops run)" in p and "Argo" in p for p in problems), (
        problems
    )


DESTRUCTURE = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: destructure-
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: config
        value: '{"lr": "0.1", "epochs": "3"}'
  templates:
    - name: main
      inputs:
        parameters:
          - name: lr
            value: "{{=jsonpath(workflow.parameters.config, '$.lr')}}"
      container:
        image: python:3.11-slim
        command: [python, STEP, --out, "lr={{inputs.parameters.lr}}"]
      outputs:
        parameters:
          - {name: lr, valueFrom: {path: /tmp/outputs/lr}}
""".replace("STEP", STEP)


def test_an_entrypoint_inputs_own_value_is_substituted_and_a_submitted_one_wins(
    tmp_path: Path, run: Any
) -> None:
    path = _write(tmp_path, "destructure.yaml", DESTRUCTURE)
    assert _lint(path) == []
    assert run(path, quiet=True).result.root.outputs == {"lr": "0.1"}
    assert run(path, {"lr": "0.5"}, quiet=True).result.root.outputs == {"lr": "0.5"}
