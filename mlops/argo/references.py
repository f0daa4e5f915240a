"""Cross-reference checks: every template, step, task, parameter and output a workflow names exists.

Used by `mlops lint` and before `mlops run` starts anything, so a typo in a step name fails
in a second rather than an hour into a pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlops.argo.expr import ExpressionError
from mlops.argo.exprtag import TAG_FUNCTIONS, tag_names
from mlops.argo.substitute import tags
from mlops.argo.workflow import (
    Library,
    WorkflowDoc,
    dag_tasks,
    from_workflow_template_ref,
    iter_steps,
    resolve_target,
    task_dependencies,
)

WORKFLOW_VARIABLES = {
    "workflow.name",
    "workflow.uid",
    "workflow.namespace",
    "workflow.serviceAccountName",
    "workflow.creationTimestamp",
    "workflow.mainEntrypoint",
}
EXIT_HANDLER_VARIABLES = {"workflow.status", "workflow.failures", "workflow.duration"}
NODE_ATTRIBUTES = (
    "outputs.parameters.<name>",
    "outputs.parameters",
    "outputs.result",
    "status",
    "exitCode",
    "outputs.exitCode",
)


def _strings(value: Any, skip: tuple[str, ...] = ()) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                yield from _strings(item)


def input_names(template: dict[str, Any]) -> list[str]:
    params = (template.get("inputs") or {}).get("parameters") or []
    return [str(p["name"]) for p in params if isinstance(p, dict) and "name" in p]


def output_names(template: dict[str, Any]) -> list[str]:
    params = (template.get("outputs") or {}).get("parameters") or []
    return [str(p["name"]) for p in params if isinstance(p, dict) and "name" in p]


def required_inputs(template: dict[str, Any]) -> list[str]:
    params = (template.get("inputs") or {}).get("parameters") or []
    return [
        str(p["name"])
        for p in params
        if isinstance(p, dict) and "name" in p and p.get("value") is None and p.get("default") is None
    ]


class _TemplateChecker:
    def __init__(self, wf: WorkflowDoc, library: Library, exit_templates: set[str]) -> None:
        self.wf = wf
        self.library = library
        self.exit_templates = exit_templates
        self.params = {str(p.get("name")) for p in wf.parameters}
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.looped: set[str] = set()  # steps/tasks of the template being checked that fan out

    def check(self, template: dict[str, Any]) -> list[str]:
        name = str(template.get("name"))
        where = f"template {name}"
        inputs = set(input_names(template))
        retry = template.get("retryStrategy")
        if isinstance(retry, dict) and retry.get("limit") is None:
            self.warnings.append(
                f"{where}: [retry-without-limit] retryStrategy has no limit: Argo retries until it succeeds "
                "(or a backoff.maxDuration or deadline ends it); this project's policy is a limit"
            )
        context = {"inputs": inputs, "retries": retry is not None, "exit": name in self.exit_templates}
        for text in _strings(template, skip=("steps", "dag", "outputs")):
            self._check_text(text, where, context, None, {}, {})
        if "steps" in template:
            self._check_steps(template, where, context)
        elif "dag" in template:
            self._check_dag(template, where, context)
        else:
            for text in _strings(template.get("outputs")):
                self._check_text(text, where, context, None, {}, {})
        return self.errors

    def _target(self, step: dict[str, Any], where: str) -> dict[str, Any] | None:
        try:
            target, source = resolve_target(step, self.wf, self.library)
        except ValueError as exc:
            self.errors.append(f"{where}: {exc}")
            return None
        if source is not self.wf and source.spec.get("templateDefaults") is not None:
            self.warnings.append(
                f"{where}: [template-defaults-ignored] {source.name} has spec.templateDefaults, which Argo "
                f"does not apply to its templates called through templateRef (argoproj/argo-workflows#5842): "
                f"{target.get('name')} runs with {self.wf.name}'s templateDefaults instead"
            )
        provided = [
            str(p.get("name"))
            for p in (step.get("arguments") or {}).get("parameters") or []
            if isinstance(p, dict)
        ]
        missing = [n for n in required_inputs(target) if n not in provided]
        unknown = [n for n in provided if n not in input_names(target)]
        target_name = target.get("name")
        if missing:
            self.errors.append(f"{where}: template {target_name} needs input(s) {', '.join(missing)}")
        if unknown:
            self.warnings.append(
                f"{where}: [undeclared-argument] template {target_name} has no input(s) {', '.join(unknown)}, "
                f"so Argo ignores them (inputs: {', '.join(input_names(target)) or 'none'})"
            )
        on_exit = step.get("onExit")
        if on_exit is not None and on_exit not in self.wf.templates:
            self.errors.append(f"{where}: onExit template {on_exit!r} not found")
        return target

    def _check_steps(self, template: dict[str, Any], where: str, context: dict[str, Any]) -> None:
        all_steps: dict[str, dict[str, Any] | None] = {}
        groups: dict[str, int] = {}
        for g, _, step in iter_steps(template):
            step_name = str(step.get("name"))
            step_where = f"{where}, step {step_name}"
            if step_name in all_steps:
                self.errors.append(f"{step_where}: duplicate step name")
            all_steps[step_name] = self._target(step, step_where)
            groups[step_name] = g
            if _loops(step):
                self.looped.add(step_name)
        for g, _, step in iter_steps(template):
            step_where = f"{where}, step {step.get('name')}"
            visible = {n: t for n, t in all_steps.items() if groups[n] < g}
            step_context = {**context, "item": _loops(step)}
            for text in _strings({k: v for k, v in step.items() if k != "name"}):
                self._check_text(text, step_where, step_context, "steps", visible, all_steps)
        for text in _strings(template.get("outputs")):
            self._check_text(text, where, context, "steps", all_steps, all_steps)

    def _check_dag(self, template: dict[str, Any], where: str, context: dict[str, Any]) -> None:
        tasks = dag_tasks(template)
        targets: dict[str, dict[str, Any] | None] = {}
        deps: dict[str, list[str]] = {}
        for task in tasks:
            task_name = str(task.get("name"))
            task_where = f"{where}, task {task_name}"
            if task_name in targets:
                self.errors.append(f"{task_where}: duplicate task name")
            targets[task_name] = self._target(task, task_where)
            if _loops(task):
                self.looped.add(task_name)
            if task.get("depends") and task.get("dependencies"):
                self.errors.append(f"{task_where}: use either depends or dependencies, not both")
            try:
                deps[task_name] = task_dependencies(task)[0]
            except ExpressionError as exc:
                self.errors.append(f"{task_where}: {exc}")
                deps[task_name] = []
        for task_name, names in deps.items():
            for dep in names:
                if dep not in targets:
                    self.errors.append(f"{where}, task {task_name}: depends on unknown task {dep!r}")
        ancestors = {name: self._ancestors(name, deps) for name in deps}
        for name, found in ancestors.items():
            if name in found:
                self.errors.append(f"{where}, task {name}: dependency cycle")
        for task in tasks:
            task_name = str(task.get("name"))
            visible = {n: t for n, t in targets.items() if n in ancestors.get(task_name, set())}
            task_context = {**context, "item": _loops(task)}
            for text in _strings(
                {k: v for k, v in task.items() if k not in ("name", "depends", "dependencies")}
            ):
                self._check_text(text, f"{where}, task {task_name}", task_context, "tasks", visible, targets)
        for text in _strings(template.get("outputs")):
            self._check_text(text, where, context, "tasks", targets, targets)

    @staticmethod
    def _ancestors(name: str, deps: dict[str, list[str]]) -> set[str]:
        found: set[str] = set()
        stack = list(deps.get(name, []))
        while stack:
            dep = stack.pop()
            if dep not in found:
                found.add(dep)
                stack.extend(deps.get(dep, []))
        return found

    def _check_text(
        self,
        text: str,
        where: str,
        context: dict[str, Any],
        kind: str | None,
        visible: dict[str, dict[str, Any] | None],
        existing: dict[str, dict[str, Any] | None],
    ) -> None:
        for tag in tags(text):
            problem = self._tag_problem(tag, context, kind, visible, existing)
            if problem:
                self.errors.append(f"{where}: {{{{{tag}}}}} {problem}")

    def _tag_problem(
        self,
        tag: str,
        context: dict[str, Any],
        kind: str | None,
        visible: dict[str, dict[str, Any] | None],
        existing: dict[str, dict[str, Any] | None],
    ) -> str | None:
        if tag.startswith("="):
            return self._expression_problem(tag[1:], context, kind, visible, existing)
        parts = tag.split(".")
        if parts[0] == "inputs":
            if len(parts) == 3 and parts[1] == "parameters":
                if parts[2] in context["inputs"]:
                    return None
                declared = ", ".join(sorted(context["inputs"])) or "none"
                return f"is not a declared input (inputs.parameters: {declared})"
            return "is not supported (only inputs.parameters.<name>)"
        if parts[0] == "workflow":
            return self._workflow_problem(tag, parts, context)
        if tag == "retries":
            return None if context["retries"] else "needs a retryStrategy on the template"
        if parts[0] in ("steps", "tasks"):
            return self._node_problem(parts, kind, visible, existing)
        if parts[0] == "item":
            if context.get("item"):
                return None
            return "is only set in a step or task with withItems, withParam or withSequence"
        return "is not a variable the local executor knows"

    def _expression_problem(
        self,
        expression: str,
        context: dict[str, Any],
        kind: str | None,
        visible: dict[str, dict[str, Any] | None],
        existing: dict[str, dict[str, Any] | None],
    ) -> str | None:
        try:
            variables, unsupported = tag_names(expression)
        except ExpressionError as exc:
            return (
                f"is not supported by the local executor (mlops run), which cannot parse it ({exc}); "
                "Argo evaluates the whole of expr-lang"
            )
        if unsupported:
            return (
                f"calls {', '.join(unsupported)}: not supported by the local executor (mlops run); "
                f"Argo supports expr-lang and sprig functions (supported here: {', '.join(sorted(TAG_FUNCTIONS))})"
            )
        for name in variables:
            if name.split(".")[0] == "sprig":
                continue
            problem = self._tag_problem(name, context, kind, visible, existing)
            if problem:
                return f"uses {name}, which {problem}"
        return None

    def _workflow_problem(self, tag: str, parts: list[str], context: dict[str, Any]) -> str | None:
        if tag in WORKFLOW_VARIABLES:
            return None
        if tag in EXIT_HANDLER_VARIABLES:
            return None if context["exit"] else "is only set in the onExit handler"
        if len(parts) == 3 and parts[1] in ("labels", "annotations"):
            return None
        if len(parts) == 3 and parts[1] == "parameters":
            if parts[2] in self.params:
                return None
            declared = ", ".join(sorted(self.params)) or "none"
            return f"is not declared in spec.arguments.parameters of {self.wf.name} (declared: {declared})"
        return "is not a workflow variable the local executor knows"

    def _node_problem(
        self,
        parts: list[str],
        kind: str | None,
        visible: dict[str, dict[str, Any] | None],
        existing: dict[str, dict[str, Any] | None],
    ) -> str | None:
        what = "step" if parts[0] == "steps" else "task"
        if kind != parts[0]:
            return f"refers to a {what}, but this is not a {'steps' if what == 'step' else 'dag'} template"
        if len(parts) < 3:
            return f"names no attribute (one of: {', '.join(NODE_ATTRIBUTES)})"
        name, attribute = parts[1], ".".join(parts[2:])
        if name not in existing:
            return f"names unknown {what} {name!r} (known: {', '.join(existing) or 'none'})"
        if name not in visible:
            order = "an earlier step group" if what == "step" else "a dependency of this task"
            return f"uses {what} {name!r} before it ran: it must be {order}"
        target = existing[name]
        if attribute in ("outputs.result", "status", "exitCode", "outputs.exitCode"):
            return None
        if attribute == "outputs.parameters":
            # Argo aggregates a fanned-out step's outputs into a JSON list of {name: value} maps
            if name in self.looped:
                return None
            return (
                f"is only set for a {what} with withItems, withParam or withSequence "
                "(the JSON list of each item's outputs); use outputs.parameters.<name>"
            )
        if len(parts) == 5 and parts[2:4] == ["outputs", "parameters"]:
            if target is None or parts[4] in output_names(target):
                return None
            declared = ", ".join(output_names(target)) or "none"
            return f"names an output {target.get('name')} does not declare (outputs: {declared})"
        return f"has unknown attribute {attribute!r} (one of: {', '.join(NODE_ATTRIBUTES)})"


def _loops(step: dict[str, Any]) -> bool:
    return any(key in step for key in ("withItems", "withParam", "withSequence"))


def _reachable(wf: WorkflowDoc, start: str | None) -> set[str]:
    found: set[str] = set()
    stack = [start] if start else []
    while stack:
        name = stack.pop()
        if name in found or name not in wf.templates:
            continue
        found.add(name)
        template = wf.templates[name]
        children = [s for _, _, s in iter_steps(template)] + dag_tasks(template)
        for child in children:
            if isinstance(child.get("template"), str) and child.get("templateRef") is None:
                stack.append(child["template"])
            if isinstance(child.get("onExit"), str):
                stack.append(child["onExit"])
    return found


def check_references(wf: WorkflowDoc, library: Library) -> list[str]:
    """Every dangling template/step/task/parameter/output reference in one workflow document."""
    return reference_findings(wf, library)[0]


def reference_findings(wf: WorkflowDoc, library: Library) -> tuple[list[str], list[str]]:
    """(errors, warnings): dangling references, then what Argo accepts but is worth a look.

    Warnings carry a `[name]`: `retry-without-limit` (a project policy: Argo retries forever),
    `undeclared-argument` (an argument the called template does not declare: Argo ignores it),
    `template-defaults-ignored` (a templateRef into a WorkflowTemplate whose templateDefaults Argo
    does not apply there).
    """
    errors: list[str] = []
    warnings: list[str] = []
    spec = wf.spec
    names = [t.get("name") for t in spec.get("templates") or [] if isinstance(t, dict)]
    for name in sorted({n for n in names if names.count(n) > 1}, key=str):
        errors.append(f"template {name}: duplicate template name")
    params = [str(p.get("name")) for p in wf.parameters]
    for name in sorted({p for p in params if params.count(p) > 1}):
        errors.append(f"spec.arguments.parameters: duplicate parameter {name!r}")
    if spec.get("workflowTemplateRef") is not None:
        try:
            from_workflow_template_ref(wf, library)
        except ValueError as exc:
            errors.append(str(exc))
        return errors, warnings  # the referenced WorkflowTemplate is checked as a file of its own
    for field in ("entrypoint", "onExit"):
        target = spec.get(field)
        if target is None:
            if field == "entrypoint" and wf.kind == "Workflow":
                errors.append("spec.entrypoint: required for a Workflow")
            continue
        if target not in wf.templates:
            errors.append(f"spec.{field}: template {target!r} not found (has: {', '.join(wf.templates)})")
            continue
        missing = [n for n in required_inputs(wf.templates[target]) if n not in params]
        if missing and not (field == "entrypoint" and wf.kind != "Workflow"):
            # a WorkflowTemplate's entrypoint inputs may come from the submitter (`argo submit -p`,
            # `mlops run -p`): Argo binds them from the workflow's arguments by name
            errors.append(
                f"spec.{field}: template {target} needs input(s) {', '.join(missing)}; "
                "declare them in spec.arguments.parameters"
            )
    exit_templates = _reachable(wf, spec.get("onExit"))
    for template in wf.templates.values():
        checker = _TemplateChecker(wf, library, exit_templates)
        errors.extend(checker.check(template))
        warnings.extend(checker.warnings)
    return errors, warnings
