"""Strict schema validation against hera's models, and the subset the local executor supports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlops.argo.schema import (
    WorkflowFileError,
    check_document,
    check_supported,
    load_workflow,
    validate_strict,
)

GOLDEN = Path(__file__).parent / "golden"


def minimal(**template: Any) -> dict[str, Any]:
    body = template or {"container": {"image": "python:3.11-slim", "command": ["python", "-c", "print(1)"]}}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "x"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", **body}]},
    }


def test_hera_alone_accepts_a_misspelt_field_which_is_why_strictness_is_added() -> None:
    from hera.workflows.models import WorkflowTemplate

    doc = load_workflow(GOLDEN / "invalid" / "misspelt.yaml")
    WorkflowTemplate.model_validate(doc)  # no error: unknown keys are ignored by the models
    assert validate_strict(doc) == [
        "spec.templates[0].outputs.parameters[0].valuFrom: unknown field (did you mean 'valueFrom'?)"
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.yaml")))
def test_every_golden_workflow_is_valid_and_supported(name: str) -> None:
    assert check_document(load_workflow(GOLDEN / name)) == []


def test_unknown_keys_are_found_at_every_depth_with_their_path() -> None:
    doc = minimal()
    doc["metadata"]["nmae"] = "typo"
    doc["spec"]["entrypiont"] = "main"
    doc["spec"]["templates"][0]["container"]["comand"] = ["python"]
    doc["spec"]["templates"][0]["retryStrategy"] = {"limit": 1, "backof": {"duration": "1s"}}
    errors = validate_strict(doc)
    assert "metadata.nmae: unknown field (did you mean 'name'?)" in errors
    assert "spec.entrypiont: unknown field (did you mean 'entrypoint'?)" in errors
    assert "spec.templates[0].container.comand: unknown field (did you mean 'command'?)" in errors
    assert "spec.templates[0].retryStrategy.backof: unknown field (did you mean 'backoff'?)" in errors


def test_only_argo_json_names_count_not_python_field_names() -> None:
    doc = minimal(
        active_deadline_seconds=5,
        container={"image": "python", "command": ["python"]},
    )
    assert validate_strict(doc) == [
        "spec.templates[0].active_deadline_seconds: unknown field (did you mean 'activeDeadlineSeconds'?)"
    ]


def test_free_form_maps_and_root_models_are_not_mistaken_for_fields() -> None:
    doc = minimal(
        activeDeadlineSeconds="{{workflow.parameters.deadline}}",  # IntOrString as a string
        container={
            "image": "python",
            "command": ["python"],
            "resources": {"limits": {"cpu": "2", "nvidia.com/gpu": 1}},  # Quantity written as a number
        },
        synchronization={"mutexes": [{"name": "model-resnet18"}]},
    )
    doc["metadata"]["labels"] = {"app.kubernetes.io/part-of": "mlops", "any-key": "ok"}
    doc["spec"]["synchronization"] = {"mutexes": [{"name": "workflow-wide"}]}
    assert validate_strict(doc) == []


def test_singular_mutex_removed_in_argo_v4_is_rejected() -> None:
    doc = minimal(synchronization={"mutex": {"name": "old-style"}})
    assert validate_strict(doc) == [
        "spec.templates[0].synchronization.mutex: removed in Argo v4: use 'mutexes' (a list); "
        "`argo convert` rewrites a file to the current syntax"
    ]


def test_type_errors_come_from_model_validate_with_document_paths() -> None:
    doc = minimal(
        activeDeadlineSeconds=[5],
        container={"image": "python", "command": "python -c 1"},
        inputs={"parameters": [{"name": "threshold", "default": 0.9}]},
    )
    errors = validate_strict(doc)
    assert "spec.templates[0].container.command: Input should be a valid list" in errors
    assert any(
        e.startswith("spec.templates[0].activeDeadlineSeconds: Input should be a valid") for e in errors
    )
    assert (
        "spec.templates[0].inputs.parameters[0].default: Input should be a valid string (quote it: '0.9')"
        in errors
    )


def test_kind_api_version_and_name_are_required() -> None:
    assert validate_strict({"kind": "Deployment"})[0].startswith("kind: expected one of WorkflowTemplate")
    doc = minimal()
    doc["apiVersion"] = "argoproj.io/v1"
    del doc["metadata"]["name"]
    errors = validate_strict(doc)
    assert "apiVersion: expected 'argoproj.io/v1alpha1', found 'argoproj.io/v1'" in errors
    assert "metadata: needs a name or a generateName" in errors


@pytest.mark.parametrize("kind", ["Workflow", "ClusterWorkflowTemplate"])
def test_other_kinds_validate_against_their_own_models(kind: str) -> None:
    doc = minimal()
    doc["kind"] = kind
    assert validate_strict(doc) == []
    doc["spec"]["bogus"] = 1
    assert validate_strict(doc) == ["spec.bogus: unknown field"]


def test_unsupported_fields_are_named_with_the_supported_alternatives() -> None:
    doc = load_workflow(GOLDEN / "invalid" / "unsupported.yaml")
    errors = check_supported(doc)
    resource = [e for e in errors if e.startswith("spec.templates[1].resource:")]
    assert len(resource) == 1  # once per field: templates[2] is counted, not repeated
    assert "not supported by the local executor (mlops run); Argo supports it" in resource[0]
    assert "container, script, steps, dag" in resource[0]
    assert "(and 1 more place(s) in this file)" in resource[0]
    assert any(e.startswith("spec.templates[0].steps[0][0].hooks: not supported") for e in errors)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda t: t["container"].update(
                env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "s", "key": "k"}}}]
            ),
            # a Secret's key is supported (unset locally: tests/unit/argo/test_argo_secret_env.py)
            "spec.templates[0].container.env[0].valueFrom.configMapKeyRef: not supported",
        ),
        (
            # volumeMounts are allowed and ignored (cluster mounts); a device is not
            lambda t: t["container"].update(volumeDevices=[{"name": "v", "devicePath": "/dev/x"}]),
            "container.volumeDevices",
        ),
        (
            lambda t: t.update(retryStrategy={"limit": 1, "retryPolicy": "OnTransientError"}),
            "'OnTransientError'",
        ),
        (
            lambda t: t.update(outputs={"artifacts": [{"name": "model", "path": "/tmp/m"}]}),
            "outputs.artifacts",
        ),
        (
            lambda t: t["container"].pop("command"),
            "container.command: required by the local executor (mlops run); Argo accepts",
        ),
        (lambda t: t.update(resource={"action": "create"}), "spec.templates[0].resource: not supported"),
        (lambda t: t.update(suspend={}), "exactly one of container, script, steps, dag, suspend"),
    ],
)
def test_unsupported_details(change: Any, expected: str) -> None:
    doc = minimal()
    change(doc["spec"]["templates"][0])
    assert any(expected in e for e in check_supported(doc)), check_supported(doc)


def test_deadline_on_a_steps_template_is_refused_because_argo_ignores_it() -> None:
    doc = minimal(activeDeadlineSeconds=10, steps=[[{"name": "a", "template": "main"}]])
    assert any(
        "activeDeadlineSeconds: Argo applies it only to container templates" in e
        for e in check_supported(doc)
    )


def test_check_document_does_not_report_one_path_twice() -> None:
    doc = load_workflow(GOLDEN / "invalid" / "misspelt.yaml")
    errors = check_document(copy.deepcopy(doc))
    assert len([e for e in errors if "valuFrom" in e]) == 1


def test_load_workflow_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(WorkflowFileError, match="not valid YAML"):
        load_workflow(bad)
    two = tmp_path / "two.yaml"
    two.write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(WorkflowFileError, match="exactly one YAML document"):
        load_workflow(two)
    with pytest.raises(WorkflowFileError, match="cannot read"):
        load_workflow(tmp_path / "missing.yaml")
