"""Read-only views of a workflow document and of the WorkflowTemplates beside it (`templateRef`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.argo.schema import KINDS, WorkflowFileError, is_argo_document, load_documents, load_workflow

KUSTOMIZE_API = "kustomize.config.k8s.io/"


def is_kustomization(path: Path) -> bool:
    """A kustomize file (`kind: Kustomization`, the cluster's list of templates), not a workflow."""
    try:
        doc = load_workflow(path)
    except WorkflowFileError:
        return False
    return doc.get("kind") == "Kustomization" and str(doc.get("apiVersion", "")).startswith(KUSTOMIZE_API)


def workflow_files(directory: Path) -> list[Path]:
    """The workflow files of a folder: every `*.yaml` / `*.yml` but a kustomization."""
    found = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    return [path for path in found if not is_kustomization(path)]


@dataclass
class WorkflowDoc:
    """One parsed WorkflowTemplate / Workflow / ClusterWorkflowTemplate and where it came from."""

    path: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        metadata = self.doc.get("metadata")
        return metadata if isinstance(metadata, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or self.metadata.get("generateName") or self.path.stem)

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.doc.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def templates(self) -> dict[str, dict[str, Any]]:
        """Templates by name, each with `spec.templateDefaults` merged in (the template's own fields win)."""
        return self.templates_with(self.spec.get("templateDefaults"))

    def templates_with(self, defaults: Any) -> dict[str, dict[str, Any]]:
        """Templates by name with the given templateDefaults merged in (none: as written).

        Argo merges the *running* workflow's templateDefaults into every template it runs: a
        template reached through templateRef gets the caller's, never its own WorkflowTemplate's
        (argoproj/argo-workflows#5842).
        """
        templates = self.spec.get("templates") or []
        return {
            t["name"]: with_defaults(t, defaults) if isinstance(defaults, dict) else t
            for t in templates
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        }

    @property
    def parameters(self) -> list[dict[str, Any]]:
        """The declared workflow parameters (`spec.arguments.parameters`)."""
        arguments = self.spec.get("arguments") or {}
        params = arguments.get("parameters") if isinstance(arguments, dict) else None
        return [p for p in params or [] if isinstance(p, dict)]


TEMPLATE_TYPES = (
    "container",
    "script",
    "steps",
    "dag",
    "resource",
    "suspend",
    "http",
    "plugin",
    "containerSet",
    "data",
)


def _merge(defaults: Any, own: Any, key: str = "") -> Any:
    """A strategic merge as Kubernetes does it for a Template: mappings merge, `env` merges by name, lists replace."""
    if isinstance(defaults, dict) and isinstance(own, dict):
        merged = dict(defaults)
        for k, v in own.items():
            merged[k] = _merge(defaults[k], v, k) if k in defaults else v
        return merged
    if key == "env" and isinstance(defaults, list) and isinstance(own, list):
        names = {e.get("name") for e in own if isinstance(e, dict)}
        return [e for e in defaults if isinstance(e, dict) and e.get("name") not in names] + own
    return own


def with_defaults(template: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`spec.templateDefaults` merged into one template, as Argo's controller does it.

    The template's fields take precedence (https://argo-workflows.readthedocs.io/en/latest/template-defaults/);
    the template keeps its own type: a default `container` does not turn a steps template into a pod.
    """
    merged: dict[str, Any] = _merge(defaults, template)
    own_type = [kind for kind in TEMPLATE_TYPES if kind in template]
    for kind in TEMPLATE_TYPES:
        if kind in merged and kind not in own_type:
            del merged[kind]
    return merged


@dataclass
class Library:
    """The WorkflowTemplates in one folder, by `metadata.name`, for resolving `templateRef`."""

    directory: Path
    _index: dict[tuple[str, bool], WorkflowDoc] | None = field(default=None, repr=False)
    _loaded: dict[Path, WorkflowDoc] = field(default_factory=dict, repr=False)
    _documents: dict[Path, list[WorkflowDoc]] = field(default_factory=dict, repr=False)

    def _build_index(self) -> dict[tuple[str, bool], WorkflowDoc]:
        index: dict[tuple[str, bool], WorkflowDoc] = {}
        for path in workflow_files(self.directory):
            try:
                documents = self.load_all(path)
            except WorkflowFileError:
                continue  # an unreadable neighbour only matters if referenced, and then it is "not found"
            for wf in documents:  # a file may hold several WorkflowTemplates, `---` separated
                if wf.kind in KINDS and wf.metadata.get("name"):
                    index.setdefault((str(wf.metadata["name"]), wf.kind == "ClusterWorkflowTemplate"), wf)
        return index

    def load(self, path: Path) -> WorkflowDoc:
        """The one workflow a file holds (WorkflowFileError for a file of several documents)."""
        resolved = path.resolve()
        if resolved not in self._loaded:
            self._loaded[resolved] = WorkflowDoc(path, load_workflow(path))
        return self._loaded[resolved]

    def load_all(self, path: Path) -> list[WorkflowDoc]:
        """Every document of a file; in a file of several, objects shipped beside the Argo ones (a ConfigMap) are left out."""
        resolved = path.resolve()
        if resolved not in self._documents:
            documents = load_documents(path)
            if len(documents) > 1:
                documents = [doc for doc in documents if is_argo_document(doc)]
            self._documents[resolved] = [WorkflowDoc(path, doc) for doc in documents]
        return self._documents[resolved]

    def get(self, name: str, cluster_scope: bool = False) -> WorkflowDoc | None:
        if self._index is None:
            self._index = self._build_index()
        return self._index.get((name, cluster_scope))

    def declared_parameters(self) -> set[str]:
        """Every `spec.arguments.parameters` name of every workflow in the folder."""
        if self._index is None:
            self._index = self._build_index()
        return {str(p.get("name")) for wf in self._index.values() for p in wf.parameters}

    def names(self, cluster_scope: bool = False) -> list[str]:
        if self._index is None:
            self._index = self._build_index()
        return sorted(name for name, scope in self._index if scope == cluster_scope)


def from_workflow_template_ref(wf: WorkflowDoc, library: Library) -> WorkflowDoc:
    """A Workflow that runs a WorkflowTemplate (`spec.workflowTemplateRef`) as the document Argo runs.

    Argo merges the two specs: the template's, with the Workflow's own fields on top, and the
    Workflow's `arguments.parameters` overriding the template's by name. ValueError naming a
    missing template. A document without the field is returned as it is.
    """
    ref = wf.spec.get("workflowTemplateRef")
    if not isinstance(ref, dict):
        return wf
    cluster = bool(ref.get("clusterScope"))
    other = library.get(str(ref.get("name")), cluster)
    if other is None:
        kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
        known = ", ".join(library.names(cluster)) or "none"
        raise ValueError(
            f"spec.workflowTemplateRef: no {kind} named {ref.get('name')!r} in {library.directory} (found: {known})"
        )
    spec = {**other.spec, **{k: v for k, v in wf.spec.items() if k != "workflowTemplateRef"}}
    overrides = {str(p.get("name")): p for p in wf.parameters}
    params = [overrides.pop(str(p.get("name")), p) for p in other.parameters] + list(overrides.values())
    spec["arguments"] = {**(other.spec.get("arguments") or {}), "parameters": params}
    metadata = {**other.metadata, **wf.metadata}
    return WorkflowDoc(wf.path, {**wf.doc, "metadata": metadata, "spec": spec})


def resolve_target(
    step: dict[str, Any], current: WorkflowDoc, library: Library
) -> tuple[dict[str, Any], WorkflowDoc]:
    """The template a step/task calls and the document it lives in; ValueError naming what is missing."""
    if step.get("templateRef") is not None:
        ref = step["templateRef"]
        if not isinstance(ref, dict):
            raise ValueError("templateRef must be a mapping with name and template")
        cluster = bool(ref.get("clusterScope"))
        other = library.get(str(ref.get("name")), cluster)
        if other is None:
            kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
            known = ", ".join(library.names(cluster)) or "none"
            raise ValueError(
                f"templateRef: no {kind} named {ref.get('name')!r} in {library.directory} (found: {known})"
            )
        template = other.templates.get(str(ref.get("template")))
        if template is None:
            raise ValueError(
                f"templateRef: {other.name} has no template {ref.get('template')!r} "
                f"(has: {', '.join(other.templates)})"
            )
        return template, other
    name = step.get("template")
    if not isinstance(name, str):
        raise ValueError("needs template or templateRef")
    template = current.templates.get(name)
    if template is None:
        raise ValueError(
            f"template {name!r} not found in {current.name} (has: {', '.join(current.templates)})"
        )
    return template, current


def iter_steps(template: dict[str, Any]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(group index, index in group, step) for every step of a steps template."""
    for g, group in enumerate(template.get("steps") or []):
        for j, step in enumerate(group or []):
            if isinstance(step, dict):
                yield g, j, step


def dag_tasks(template: dict[str, Any]) -> list[dict[str, Any]]:
    dag = template.get("dag") or {}
    return [t for t in (dag.get("tasks") or []) if isinstance(t, dict)]


def task_dependencies(task: dict[str, Any]) -> tuple[list[str], str]:
    """The tasks a DAG task waits for and the `depends` expression that decides whether it runs."""
    from mlops.argo.expr import dependencies_as_depends, depends_tasks

    if task.get("depends"):
        expression = str(task["depends"])
        return depends_tasks(expression), expression
    deps = [str(d) for d in task.get("dependencies") or []]
    return deps, dependencies_as_depends(deps)
