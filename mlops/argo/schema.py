"""Strict validation of Argo YAML against hera's models, and the subset the local executor runs.

hera's models (pydantic v2, generated from Argo's API) accept unknown keys, so a misspelt
`valuFrom` passes `model_validate`. `validate_strict` walks the document against the model
classes field by field (by their Argo JSON names) and reports every key that is not a field,
then runs `model_validate` for type errors. `check_supported` names every field the local
executor would otherwise have to ignore.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, RootModel, ValidationError

KINDS = ("WorkflowTemplate", "Workflow", "ClusterWorkflowTemplate")
# Kinds lint validates against Argo's schema but the local executor does not run: a CronWorkflow
# is a schedule that submits its spec.workflowSpec (argo cron create), refused as unsupported.
SCHEDULED_KIND = "CronWorkflow"
SCHEMA_KINDS = (*KINDS, SCHEDULED_KIND)
API_VERSION = "argoproj.io/v1alpha1"
# Fields Argo (v3.7 / v4) defines that hera 7.1's models predate, by hera model: valid Argo, so
# never "unknown field"; the local executor does not emulate them, and says so.
NEWER_ARGO_FIELDS: dict[str, frozenset[str]] = {
    "WorkflowSpec": frozenset({"podResources", "resourceClaims"}),
    "Template": frozenset({"podResources", "resourceClaims"}),
}
# Fields Argo v4 removed (docs/deprecations.md, "Removed features"), by hera model: still an error,
# naming the field that replaced them (`argo convert` rewrites a file to the modern syntax).
REMOVED_ARGO_FIELDS: dict[str, dict[str, str]] = {
    "Synchronization": {"mutex": "mutexes", "semaphore": "semaphores"},
    "CronWorkflowSpec": {"schedule": "schedules"},
}
# Argo template kinds the local executor does not run (each refused by name, once).
UNSUPPORTED_BODIES = ("resource", "http", "plugin", "containerSet", "data")


class WorkflowFileError(ValueError):
    """A workflow or parameters file that cannot be read or parsed."""


def load_documents(path: str | Path) -> list[dict[str, Any]]:
    """Every YAML document of a file (`---` separated, as `kubectl apply` and `argo lint` read it)."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise WorkflowFileError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    try:
        # libyaml's safe loader where PyYAML was built with it (the same documents, several times
        # faster than the pure-Python one on the long templates)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        documents = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        raise WorkflowFileError(f"{file}: not valid YAML: {exc}") from exc
    for i, doc in enumerate(documents):
        if not isinstance(doc, dict):
            where = f" (document {i + 1})" if len(documents) > 1 else ""
            raise WorkflowFileError(
                f"{file}{where}: expected a mapping at the top level, found {type(doc).__name__}"
            )
    return documents


def load_workflow(path: str | Path) -> dict[str, Any]:
    """Read one YAML document (a WorkflowTemplate, Workflow or ClusterWorkflowTemplate)."""
    documents = load_documents(path)
    if len(documents) != 1:
        raise WorkflowFileError(f"{path}: expected exactly one YAML document, found {len(documents)}")
    return documents[0]


def is_argo_document(doc: Mapping[str, Any]) -> bool:
    """An Argo object (`argoproj.io/...`), not a ConfigMap or Secret shipped beside it in one file."""
    return str(doc.get("apiVersion", "")).startswith("argoproj.io/") or doc.get("kind") in SCHEMA_KINDS


def _model_for_kind(kind: str) -> type[BaseModel]:
    from hera.workflows import models

    model: type[BaseModel] = getattr(models, kind)
    return model


# --- walking the document against the model classes ----------------------------------------


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    """Argo JSON name -> annotation; only the alias counts (populate_by_name would accept snake_case)."""
    return {(field.alias or name): field.annotation for name, field in model.model_fields.items()}


def _unwrap(annotation: Any, value: Any) -> Any:
    """Strip Annotated/Optional/Union down to the one type that fits `value`'s JSON shape."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin is typing.Union or origin is types.UnionType:
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = _pick_member(members, value)
            continue
        return annotation


def _shape(annotation: Any) -> str:
    origin = typing.get_origin(annotation) or annotation
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "dict"
    if isinstance(origin, type) and issubclass(origin, RootModel):
        root = origin.model_fields["root"].annotation
        return _shape(_unwrap(root, None))
    if isinstance(origin, type) and issubclass(origin, BaseModel):
        return "dict"
    return "scalar"


def _pick_member(members: list[Any], value: Any) -> Any:
    if len(members) == 1:
        return members[0]
    wanted = "dict" if isinstance(value, dict) else "list" if isinstance(value, list) else "scalar"
    for member in members:
        if _shape(member) == wanted:
            return member
    return Any


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _walk(value: Any, annotation: Any, path: str, errors: list[str]) -> None:
    annotation = _unwrap(annotation, value)
    if annotation is Any or annotation is None:
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple) and isinstance(value, list):
        item_type = args[0] if args else Any
        for i, item in enumerate(value):
            _walk(item, item_type, f"{path}[{i}]", errors)
        return
    if origin is dict and isinstance(value, dict):
        value_type = args[1] if len(args) == 2 else Any
        for key, item in value.items():
            _walk(item, value_type, f"{path}.{key}", errors)
        return
    if not isinstance(annotation, type) or not issubclass(annotation, BaseModel):
        return
    if issubclass(annotation, RootModel):
        _walk(value, annotation.model_fields["root"].annotation, path, errors)
        return
    if not isinstance(value, dict):
        return  # a type error; model_validate reports it
    fields = _field_names(annotation)
    if not fields:
        return  # a free-form Argo object (an executor plugin's settings, an item): any keys
    newer = NEWER_ARGO_FIELDS.get(annotation.__name__, frozenset())
    removed = REMOVED_ARGO_FIELDS.get(annotation.__name__, {})
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key in newer:
            errors.append(
                f"{where}: not supported by the local executor (mlops run); Argo supports it "
                "(a field newer than the schema lint checks against)"
            )
            continue
        if key in removed and key not in fields:
            errors.append(
                f"{where}: removed in Argo v4: use {removed[key]!r} (a list); "
                "`argo convert` rewrites a file to the current syntax"
            )
            continue
        if key not in fields:
            errors.append(f"{where}: unknown field{_did_you_mean(str(key), list(fields))}")
            continue
        _walk(item, fields[key], where, errors)


def _format_location(doc: Any, loc: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into a document path, dropping union-member tags."""
    parts: list[str] = []
    node = doc
    for item in loc:
        if isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            parts.append(f"[{item}]")
            node = node[item]
        elif isinstance(node, dict) and item in node:
            parts.append(f".{item}" if parts else str(item))
            node = node[item]
    return "".join(parts) or "(document)"


def _is_numeric_quantity(error: Any) -> bool:
    """Kubernetes accepts `nvidia.com/gpu: 1`; hera's Quantity model only takes strings."""
    loc = [str(part) for part in error["loc"]]
    in_resources = "resources" in loc and ("limits" in loc or "requests" in loc)
    return bool(
        in_resources and error["type"] == "string_type" and isinstance(error.get("input"), (int, float))
    )


def _type_errors(doc: dict[str, Any], model: type[BaseModel]) -> list[str]:
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        by_path: dict[str, list[str]] = {}
        for error in exc.errors():
            if _is_numeric_quantity(error):
                continue
            where = _format_location(doc, tuple(error["loc"]))
            if error["type"] == "missing" and error["loc"] and isinstance(error["loc"][-1], str):
                # the missing field is not in the document, so name it after the place it belongs
                parent = _format_location(doc, tuple(error["loc"][:-1]))
                where = error["loc"][-1] if parent == "(document)" else f"{parent}.{error['loc'][-1]}"
            message = error["msg"]
            if error["type"] == "string_type" and isinstance(error.get("input"), (int, float, bool)):
                message += f" (quote it: '{error['input']}')"
            if message not in by_path.setdefault(where, []):
                by_path[where].append(message)
        return [f"{where}: {' or '.join(messages)}" for where, messages in by_path.items()]
    return []


def validate_strict(doc: Mapping[str, Any]) -> list[str]:
    """Every unknown key and every type error in an Argo document, as `path: problem` lines."""
    if not isinstance(doc, Mapping):
        return ["(document): expected a mapping"]
    document = dict(doc)
    kind = document.get("kind")
    if kind not in SCHEMA_KINDS:
        return [f"kind: expected one of {', '.join(SCHEMA_KINDS)}, found {kind!r}"]
    errors: list[str] = []
    if document.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion: expected {API_VERSION!r}, found {document.get('apiVersion')!r}")
    model = _model_for_kind(str(kind))
    _walk(document, model, "", errors)
    errors.extend(_type_errors(document, model))
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        errors.append("metadata: needs a name or a generateName")
    spec = document.get("spec")
    if kind == SCHEDULED_KIND:
        spec = spec.get("workflowSpec") if isinstance(spec, dict) else None
    referenced = isinstance(spec, dict) and spec.get("workflowTemplateRef") is not None
    if not referenced and (not isinstance(spec, dict) or not spec.get("templates")):
        errors.append("spec.templates: at least one template is required (or a spec.workflowTemplateRef)")
    return errors


# --- the subset the local executor supports --------------------------------------------------

ANY: dict[str, Any] = {}  # sentinel: allowed, contents not checked (ignored locally or free-form)

_PARAMETER_IN = {"name": None, "value": None, "default": None, "description": None, "enum": None}
_PARAMETER_ARG = {"name": None, "value": None, "description": None, "enum": None}
_PARAMETER_OUT = {
    "name": None,
    "description": None,
    "valueFrom": {"path": None, "default": None, "parameter": None},
}
_ARGUMENTS = {"parameters": _PARAMETER_ARG}
_SYNCHRONIZATION = {"mutexes": {"name": None}}
_METADATA_IGNORED = ANY
_TASK_COMMON = {
    "name": None,
    "template": None,
    "templateRef": {"name": None, "template": None, "clusterScope": None},
    "arguments": _ARGUMENTS,
    "when": None,
    "onExit": None,
    "continueOn": {"failed": None, "error": None},
    "withItems": ANY,
    "withParam": None,
    "withSequence": {"count": None, "start": None, "end": None, "format": None},
}
_STEP = dict(_TASK_COMMON)
_TASK = {**_TASK_COMMON, "dependencies": None, "depends": None}
_CONTAINER = {
    "image": None,
    "command": None,
    "args": None,
    # valueFrom: a Secret's key on a cluster (the MLflow identity); not set when run locally
    "env": {"name": None, "value": None, "valueFrom": {"secretKeyRef": {"name": None, "key": None}}},
    "workingDir": None,
    "resources": ANY,
    "imagePullPolicy": None,
    "name": None,
    "securityContext": ANY,
    # Cluster mounts (the /tmp emptyDir under a read-only root, the vLLM adapter volume), with the
    # spec's `volumes`: locally the same folders are paths on this machine, so ignored.
    "volumeMounts": ANY,
}
_TEMPLATE = {
    "name": None,
    "inputs": {"parameters": _PARAMETER_IN},
    "outputs": {"parameters": _PARAMETER_OUT},
    "container": _CONTAINER,
    "script": {**_CONTAINER, "source": None},
    "steps": _STEP,
    "dag": {"tasks": _TASK, "failFast": None},
    "suspend": {"duration": None},
    "retryStrategy": {
        "limit": None,
        "expression": None,
        "retryPolicy": None,
        "backoff": {"duration": None, "factor": None, "maxDuration": None, "cap": None},
    },
    "activeDeadlineSeconds": None,
    "timeout": None,
    "parallelism": None,
    "synchronization": _SYNCHRONIZATION,
    "memoize": {"key": None, "maxAge": None, "cache": {"configMap": {"name": None, "key": None}}},
    # Pod placement and metadata: meaningful on a cluster, ignored locally.
    "metadata": _METADATA_IGNORED,
    "nodeSelector": ANY,
    "tolerations": ANY,
    "affinity": ANY,
    "serviceAccountName": None,
    "priorityClassName": None,
    "securityContext": ANY,
}
_SPEC = {
    "entrypoint": None,
    "workflowTemplateRef": {"name": None, "clusterScope": None},
    "arguments": _ARGUMENTS,
    "templates": _TEMPLATE,
    "templateDefaults": _TEMPLATE,
    "onExit": None,
    "synchronization": _SYNCHRONIZATION,
    "activeDeadlineSeconds": None,
    "parallelism": None,
    # Cluster housekeeping: allowed, ignored locally.
    "serviceAccountName": None,
    "podGC": ANY,
    "ttlStrategy": ANY,
    "workflowMetadata": ANY,
    "podMetadata": ANY,
    "nodeSelector": ANY,
    "tolerations": ANY,
    "affinity": ANY,
    "imagePullSecrets": ANY,
    "securityContext": ANY,
    "archiveLogs": None,
    # Pod plumbing added by a cluster overlay (the vLLM adapter volume, infra/base/workflows):
    # locally the same folder is a path on this machine, so these are allowed and ignored too.
    "volumes": ANY,
    "podSpecPatch": None,
}
_DOCUMENT = {
    "apiVersion": None,
    "kind": None,
    "metadata": {"name": None, "generateName": None, "labels": ANY, "annotations": ANY, "namespace": None},
    "spec": _SPEC,
}
RETRY_POLICIES = ("Always", "OnFailure", "OnError")


def _normalised(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def _once_per_field(errors: list[str]) -> list[str]:
    """One line per unsupported field: the first place, and how many more have it."""
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    kept: list[str] = []
    for error in errors:
        if "not supported" not in error:
            kept.append(error)
            continue
        key = _normalised(error.split(":", 1)[0])
        counts[key] = counts.get(key, 0) + 1
        if key not in first:
            first[key] = len(kept)
            kept.append(error)
    for key, index in first.items():
        if counts[key] > 1:
            kept[index] += f" (and {counts[key] - 1} more place(s) in this file)"
            counts[key] = 1  # a second pass (check_document) does not count again
    return kept


def _check_allowed(value: Any, allowed: Any, path: str, errors: list[str]) -> None:
    if allowed is None or allowed is ANY:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_allowed(item, allowed, f"{path}[{i}]", errors)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in allowed:
            supported = ", ".join(allowed)
            errors.append(
                f"{where}: not supported by the local executor (mlops run); Argo supports it "
                f"(supported here: {supported})"
            )
            continue
        _check_allowed(item, allowed[key], where, errors)


def _template_body_errors(template: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    bodies = [kind for kind in ("container", "script", "steps", "dag", "suspend") if kind in template]
    if len(bodies) != 1 and not any(kind in template for kind in UNSUPPORTED_BODIES):
        found = ", ".join(bodies) if bodies else "none"
        errors.append(
            f"{path}: a template needs exactly one of container, script, steps, dag, suspend (found: {found})"
        )
    if "activeDeadlineSeconds" in template and not ({"container", "script"} & set(template)):
        errors.append(
            f"{path}.activeDeadlineSeconds: Argo applies it only to container templates; "
            "use spec.activeDeadlineSeconds or set it on the containers"
        )
    if "timeout" in template and not ({"container", "script"} & set(template)):
        errors.append(
            f"{path}.timeout: not supported by the local executor (mlops run) on a steps or dag template; "
            "Argo accepts it but documents that it may not be applied there: set it on the containers"
        )
    for kind in ("container", "script"):
        body = template.get(kind)
        if isinstance(body, dict) and not body.get("command"):
            errors.append(
                f"{path}.{kind}.command: required by the local executor (mlops run); Argo accepts a "
                "container without one and runs its image's entrypoint, which is unknown here"
            )
    retry = template.get("retryStrategy")
    if isinstance(retry, dict) and retry.get("retryPolicy") not in (None, *RETRY_POLICIES):
        errors.append(
            f"{path}.retryStrategy.retryPolicy: {retry['retryPolicy']!r} not supported by the local executor "
            f"(supported: {', '.join(RETRY_POLICIES)})"
        )
    return errors


def check_supported(doc: Mapping[str, Any]) -> list[str]:
    """Every field outside the subset the local executor runs, named with its path."""
    errors: list[str] = []
    _check_allowed(dict(doc), _DOCUMENT, "", errors)
    spec = doc.get("spec")
    templates = spec.get("templates") if isinstance(spec, dict) else None
    if isinstance(templates, list):
        for i, template in enumerate(templates):
            if isinstance(template, dict):
                errors.extend(_template_body_errors(template, f"spec.templates[{i}]"))
    return _once_per_field(errors)


def check_document(doc: Mapping[str, Any]) -> list[str]:
    """`validate_strict` then `check_supported`, without naming one path twice."""
    errors = validate_strict(doc)
    if errors and errors[0].startswith("kind:"):
        return errors
    if doc.get("kind") == SCHEDULED_KIND:
        return [
            *errors,
            f"kind: {SCHEDULED_KIND} not supported by the local executor (mlops run); Argo supports it "
            "(a schedule that submits spec.workflowSpec): run that spec as a kind: Workflow",
        ]
    reported = {error.split(":", 1)[0] for error in errors}
    for error in check_supported(doc):
        if error.split(":", 1)[0] not in reported:
            errors.append(error)
    return _once_per_field(errors)
