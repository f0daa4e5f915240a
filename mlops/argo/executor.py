"""`mlops run`: interpret a WorkflowTemplate locally, node by node, the way Argo would run it.

Supported: steps (groups in order, a group's steps in parallel threads), dag (depends /
dependencies, failFast), when, templateRef, workflowTemplateRef, script templates, loops
(withItems / withParam / withSequence, `mlops.argo.loops`) and parallelism, input/output parameters,
retryStrategy (limit, policy, expression, backoff), activeDeadlineSeconds, timeout, onExit (workflow and
step level), synchronization.mutexes (file locks shared by every local run), memoize (outputs
cached under the state folder, `mlops.argo.memo`), suspend (until `mlops resume`, or its duration;
`mlops stop` as `argo stop`: `mlops.argo.control`) and `{{=...}}` tags (`mlops.argo.exprtag`). Each container node runs in its own sandbox
(`mlops.argo.process`). Anything else is refused by `schema.check_supported` before a single
process starts. docs/local-executor.md lists it all.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import string
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from mlops.argo.control import RunControl
from mlops.argo.expr import (
    ExpressionError,
    evaluate_depends,
    evaluate_retry_expression,
    evaluate_when,
    retry_bindings,
)
from mlops.argo.locks import MutexWaitAborted, hold_mutexes
from mlops.argo.loops import aggregate_outputs, item_label, item_scope, loop_items, parameter_list
from mlops.argo.memo import Memo, memo_for
from mlops.argo.nodes import (
    ERROR,
    FAILED,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    UNSUCCESSFUL,
    Attempt,
    Node,
    WorkflowResult,
)
from mlops.argo.parameters import WorkflowInvalid, resolve_parameters
from mlops.argo.process import LocalEnvironment, ProcessResult, outputs_dir, run_process, sandbox_text
from mlops.argo.references import check_references
from mlops.argo.render import ProgressView
from mlops.argo.schema import WorkflowFileError, check_document
from mlops.argo.substitute import as_text, substitute, substitute_all
from mlops.argo.workflow import (
    Library,
    WorkflowDoc,
    dag_tasks,
    from_workflow_template_ref,
    resolve_target,
    task_dependencies,
)

Deadline = tuple[float, str]  # (time.monotonic() value, what exceeding it means)
STOPPED = "Stopped with strategy 'Stop'"  # Argo's words for `argo stop`

__all__ = ["LocalEnvironment", "WorkflowInvalid", "WorkflowResult", "preflight", "run_workflow"]


@dataclass(frozen=True)
class _Context:
    """What a node inherits from its parents: the tightest deadline and the mutexes already held."""

    deadline: Deadline | None = None
    held: frozenset[str] = frozenset()

    def tighten(self, seconds: float | None, reason: str) -> _Context:
        if seconds is None:
            return self
        candidate = (time.monotonic() + seconds, reason)
        if self.deadline is not None and self.deadline[0] <= candidate[0]:
            return self
        return _Context(candidate, self.held)

    def until(self, deadline: Deadline | None) -> _Context:
        """This context with an absolute deadline too, whichever comes first."""
        if deadline is None or (self.deadline is not None and self.deadline[0] <= deadline[0]):
            return self
        return _Context(deadline, self.held)

    def passed(self) -> str | None:
        if self.deadline is not None and time.monotonic() >= self.deadline[0]:
            return self.deadline[1]
        return None


@dataclass
class _Outcome:
    phase: str
    message: str = ""
    exit_code: int | None = None
    scope: dict[str, str] = field(default_factory=dict)  # steps/dag: the children's variables
    sandbox: Path | None = None  # a container node's own root (/tmp, /tmp/outputs, valueFrom.path)
    result: str | None = None


class _NodeError(Exception):
    """An executor-side error for one node (phase Error), e.g. a bad value after substitution."""


def _int_value(value: Any, scope: Mapping[str, str], where: str) -> int | None:
    if value is None:
        return None
    text = substitute(as_text(value), scope, where)
    try:
        return int(text)
    except ValueError:
        raise _NodeError(f"{where}: {text!r} is not an integer") from None


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(text: str, where: str) -> float:
    """Seconds in a duration, by Go's `time.ParseDuration` rules.

    An optional sign, then one or more decimal numbers each with a unit (ns, us/µs, ms, s, m,
    h): "300ms", "1.5h", "2h45m", "100us"; "0" alone is allowed; a number without a unit ("1.5")
    is not.
    """
    value = text.strip()
    sign = -1.0 if value.startswith("-") else 1.0
    body = value[1:] if value[:1] in "+-" else value
    if body == "0":
        return 0.0
    parts = _GO_PART.findall(body)
    if not body or not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"{where}: {text!r} is not a Go duration (e.g. 30s, 1m30s, 500ms, 100us)")
    return sign * sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _backoff_duration(text: str, where: str = "backoff.duration") -> float:
    """Argo's retry durations: a bare integer is seconds, anything else a Go duration."""
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return float(int(text.strip()))
    return go_duration(text, where)


def _cap(backoff: Mapping[str, Any], scope: Mapping[str, str]) -> float | None:
    cap = backoff.get("cap")
    return _backoff_duration(substitute(as_text(cap), scope, "backoff.cap"), "backoff.cap") if cap else None


def backoff_delay(base: float, factor: int, attempt: int, cap: float | None = None) -> float:
    """Argo's wait before retry `attempt + 1`: duration * factor^attempt, never capped unless `backoff.cap` says so."""
    delay = base * factor**attempt
    return float(min(delay, cap) if cap is not None else delay)


def _child_path(parent: Node, name: str) -> str:
    return f"{parent.path}.{name}" if parent.path else name


def _safe(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", path) or "root"


def _workflow_name(wf: WorkflowDoc) -> str:
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
    generate = wf.metadata.get("generateName")
    if generate:
        return f"{generate}{suffix}"
    return f"{wf.metadata.get('name') or wf.path.stem}-{suffix}"


def _referenced_docs(wf: WorkflowDoc, library: Library) -> list[WorkflowDoc]:
    """Every WorkflowTemplate reachable through templateRef, the workflow itself first."""
    found = [wf]
    seen = {wf.path.resolve()}
    i = 0
    while i < len(found):
        for template in found[i].templates.values():
            children = [s for group in template.get("steps") or [] for s in group or []] + dag_tasks(template)
            for child in children:
                ref = child.get("templateRef") if isinstance(child, dict) else None
                if not isinstance(ref, dict):
                    continue
                other = library.get(str(ref.get("name")), bool(ref.get("clusterScope")))
                if other is not None and other.path.resolve() not in seen:
                    seen.add(other.path.resolve())
                    found.append(other)
        i += 1
    return found


def preflight(path: str | Path, workflows_dir: str | Path | None = None) -> tuple[WorkflowDoc, Library]:
    """Load and check a workflow and everything it references; WorkflowInvalid lists every problem.

    A Workflow with `spec.workflowTemplateRef` becomes the WorkflowTemplate it names, with its
    own arguments on top, as Argo runs it.
    """
    file = Path(path)
    library = Library(Path(workflows_dir) if workflows_dir is not None else file.parent)
    try:
        wf = library.load(file)
    except WorkflowFileError as exc:
        raise WorkflowInvalid([str(exc)]) from exc
    problems = check_document(wf.doc)
    if problems:
        raise WorkflowInvalid([f"{wf.path}: {problem}" for problem in problems])
    try:
        wf = from_workflow_template_ref(wf, library)
    except ValueError as exc:
        raise WorkflowInvalid([f"{wf.path}: {exc}"]) from exc
    errors: list[str] = []
    for doc in _referenced_docs(wf, library):
        problems = check_document(doc.doc)
        if not problems:
            problems = check_references(doc, library)
        errors.extend(f"{doc.path}: {problem}" for problem in problems)
    if not errors and not wf.spec.get("entrypoint"):
        errors.append(f"{wf.path}: spec.entrypoint: required to run a workflow")
    if errors:
        raise WorkflowInvalid(errors)
    return wf, library


class _Run:
    """One run of one workflow: the node tree, the scope, the progress view."""

    def __init__(
        self,
        wf: WorkflowDoc,
        library: Library,
        env: LocalEnvironment,
        view: ProgressView,
        parameters: dict[str, str],
        cancel: threading.Event,
    ) -> None:
        self.wf = wf
        self.library = library
        self.env = env
        self.view = view
        self.parameters = parameters
        self.cancel = cancel
        self.name = _workflow_name(wf)
        self.uid = str(uuid.uuid4())
        self.started = time.time()
        self.run_dir = env.runs_dir / self.name
        self.control = RunControl(self.run_dir)
        self.stopped = False  # `mlops stop RUN` was asked for
        pods = wf.spec.get("parallelism")
        self.pods = threading.BoundedSemaphore(int(pods)) if pods else None  # spec.parallelism
        metadata = wf.metadata
        self.scope: dict[str, str] = {
            "workflow.name": self.name,
            "workflow.uid": self.uid,
            "workflow.namespace": str(metadata.get("namespace") or "local"),
            "workflow.serviceAccountName": str(wf.spec.get("serviceAccountName") or "default"),
            "workflow.creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "workflow.mainEntrypoint": str(wf.spec.get("entrypoint")),
        }
        self.scope.update({f"workflow.parameters.{k}": v for k, v in parameters.items()})
        for kind in ("labels", "annotations"):
            for key, value in (metadata.get(kind) or {}).items():
                self.scope[f"workflow.{kind}.{key}"] = as_text(value)

    # --- phases ---------------------------------------------------------------------------

    def _phase(self, node: Node, phase: str, message: str = "") -> None:
        node.phase = phase
        node.message = message
        if phase == RUNNING and node.started_at is None:
            node.started_at = time.time()
        if node.done:
            node.finished_at = time.time()
            if node.started_at is None:
                node.started_at = node.finished_at
        self.view.node_phase(node)

    # --- one node -------------------------------------------------------------------------

    def execute(
        self,
        node: Node,
        template: dict[str, Any],
        source: WorkflowDoc,
        arguments: Mapping[str, str],
        ctx: _Context,
    ) -> None:
        """Run `template` as `node` to a final phase; never raises for workflow-level problems."""
        node.template = str(template.get("name"))
        node.kind = (
            "Pod"
            if _pod_body(template)
            else "Suspend"
            if "suspend" in template
            else "Steps"
            if "steps" in template
            else "DAG"
        )
        not_started = ctx.passed() or ("cancelled" if self.cancel.is_set() else None)
        if not_started:
            self._phase(node, FAILED, f"not started: {not_started}")
            return
        try:
            scope = self._bind_inputs(template, arguments, f"template {node.template}")
            seconds = _int_value(template.get("activeDeadlineSeconds"), scope, "activeDeadlineSeconds")
            pod_deadline = (seconds, f"activeDeadlineSeconds={seconds} exceeded")
            timeout = _timeout(template, scope)
            memo = self._memo(template, scope)
            cached = memo.lookup() if memo else None
            if memo and cached is not None:
                node.outputs, node.result = cached
                self._phase(node, SUCCEEDED, f"memoized ({memo.key})")
                return
            # Argo counts a template's timeout from its pod node's start, Pending (a mutex wait) included
            first_timeout = (time.monotonic() + timeout[0], timeout[1]) if timeout else None
            mutexes = self._mutex_names(template.get("synchronization"), scope, ctx)
            with self._holding(mutexes, node, ctx.until(first_timeout)):
                inner = _Context(ctx.deadline, ctx.held | set(mutexes))
                self._with_retries(node, template, source, scope, inner, pod_deadline, timeout, first_timeout)
            if memo and node.phase == SUCCEEDED:
                memo.store(dict(node.outputs), node.result)
        except (_NodeError, ValueError, MutexWaitAborted) as exc:
            self._phase(node, ERROR if not isinstance(exc, MutexWaitAborted) else FAILED, str(exc))

    def _memo(self, template: dict[str, Any], scope: Mapping[str, str]) -> Memo | None:
        spec = template.get("memoize")
        if not spec:
            return None
        key = substitute(as_text(spec.get("key")), scope, "memoize.key")
        max_age = spec.get("maxAge")
        seconds = (
            go_duration(substitute(as_text(max_age), scope, "memoize.maxAge"), "memoize.maxAge")
            if max_age
            else None
        )
        return memo_for(spec, key, seconds, self.env.state)

    def _bind_inputs(
        self, template: dict[str, Any], arguments: Mapping[str, str], where: str
    ) -> dict[str, str]:
        scope = dict(self.scope)
        for param in (template.get("inputs") or {}).get("parameters") or []:
            name = str(param["name"])
            if name in arguments:
                value = arguments[name]
            elif param.get("value") is not None:
                value = substitute(as_text(param["value"]), scope, f"{where}.inputs.{name}")
            elif param.get("default") is not None:
                value = substitute(as_text(param["default"]), scope, f"{where}.inputs.{name}")
            else:
                raise _NodeError(f"{where}: input parameter {name!r} was not supplied")
            enum = param.get("enum")
            if enum and value not in [as_text(v) for v in enum]:
                raise _NodeError(
                    f"{where}: input {name}={value!r} is not one of {', '.join(map(as_text, enum))}"
                )
            scope[f"inputs.parameters.{name}"] = value
        return scope

    def _mutex_names(self, sync: Any, scope: Mapping[str, str], ctx: _Context) -> list[str]:
        names = [
            substitute(as_text(m.get("name")), scope, "synchronization.mutexes")
            for m in (sync or {}).get("mutexes") or []
        ]
        for name in names:
            if name in ctx.held:
                raise _NodeError(
                    f"mutex {name!r} is already held by an enclosing template (Argo would wait forever)"
                )
        return names

    @contextmanager
    def _holding(self, names: list[str], node: Node, ctx: _Context) -> Iterator[None]:
        if not names:
            yield
            return

        def waiting(name: str, holder: str) -> None:
            self._phase(node, PENDING, f"waiting for mutex {name!r} (held by {holder})")

        holder = (
            f"{self.name}/{node.path or 'workflow'}, pid {os.getpid()}, since {time.strftime('%H:%M:%S')}"
        )
        with hold_mutexes(
            names,
            self.env.locks_dir,
            holder=holder,
            deadline=ctx.deadline,
            cancel=self.cancel,
            on_wait=waiting,
        ):
            yield

    def _with_retries(
        self,
        node: Node,
        template: dict[str, Any],
        source: WorkflowDoc,
        scope: dict[str, str],
        ctx: _Context,
        pod_deadline: tuple[int | None, str],
        timeout: tuple[float, str] | None = None,
        first_timeout: Deadline | None = None,
    ) -> None:
        retry = template.get("retryStrategy")
        limit = _int_value(retry.get("limit"), scope, "retryStrategy.limit") if retry else 0
        node.retry_limit = limit if retry else None
        first_start = time.monotonic()
        # a shortened backoff (LocalEnvironment.retry_backoff_scale) still counts in full towards
        # backoff.maxDuration, so every retry decision is the one Argo would make
        first_start_argo = first_start
        attempt = 0
        while True:
            attempt_scope = {**scope, "retries": str(attempt)}
            self._phase(node, RUNNING)
            started = time.monotonic()
            attempt_ctx = ctx.tighten(*pod_deadline)
            if timeout is not None:  # each attempt is a pod node of its own, with its own start
                attempt_ctx = (
                    attempt_ctx.until(first_timeout) if attempt == 0 else attempt_ctx.tighten(*timeout)
                )
            try:
                outcome = self._run_body(node, template, source, attempt_scope, attempt_ctx, attempt)
                if outcome.phase == SUCCEEDED:
                    self._collect_outputs(node, template, outcome, attempt_scope)
            except (_NodeError, ValueError) as exc:
                outcome = _Outcome(ERROR, str(exc))
            duration = time.monotonic() - started
            node.exit_code = outcome.exit_code
            if retry is not None:
                node.attempts.append(
                    Attempt(attempt, outcome.phase, duration, outcome.exit_code, outcome.message)
                )
            if retry is None or outcome.phase == SUCCEEDED:
                self._phase(node, outcome.phase, outcome.message)
                return
            blocker = self._retry_blocker(
                retry, limit, attempt, outcome, duration, ctx, first_start_argo, scope
            )
            if blocker:
                suffix = f" ({blocker}, {len(node.attempts)} attempt{'s' if len(node.attempts) > 1 else ''})"
                self._phase(node, outcome.phase, outcome.message + suffix)
                return
            delay = self._backoff(retry, attempt, scope)
            wait = delay * self.env.retry_backoff_scale
            first_start_argo -= delay - wait
            node.phase = outcome.phase
            self.view.retrying(node, attempt, outcome.phase, outcome.exit_code, wait)
            if self.cancel.wait(wait):
                self._phase(node, outcome.phase, outcome.message + " (cancelled)")
                return
            attempt += 1

    def _retry_blocker(
        self,
        retry: dict[str, Any],
        limit: int | None,
        attempt: int,
        outcome: _Outcome,
        duration: float,
        ctx: _Context,
        first_start: float,
        scope: Mapping[str, str],
    ) -> str | None:
        if limit is not None and attempt >= limit:
            return f"retry limit {limit} reached" if limit else "retry limit 0"
        if ctx.passed():
            return str(ctx.passed())
        if self.cancel.is_set():
            return "cancelled"
        policy = retry.get("retryPolicy") or ("Always" if retry.get("expression") else "OnFailure")
        if (policy == "OnFailure" and outcome.phase != FAILED) or (
            policy == "OnError" and outcome.phase != ERROR
        ):
            return f"retryPolicy {policy} does not retry phase {outcome.phase}"
        expression = retry.get("expression")
        if expression:
            # Argo substitutes {{...}} (inputs, workflow parameters) before evaluating with lastRetry
            text = substitute(as_text(expression), scope, "retryStrategy.expression")
            bindings = retry_bindings(outcome.exit_code, outcome.phase, duration, outcome.message)
            if not evaluate_retry_expression(text, bindings):
                return f"not retried: {text} is false"
        max_duration = (retry.get("backoff") or {}).get("maxDuration")
        if max_duration:
            limit_s = _backoff_duration(substitute(as_text(max_duration), scope, "backoff.maxDuration"))
            elapsed = time.monotonic() - first_start
            if elapsed >= limit_s:
                return f"backoff.maxDuration {max_duration} reached"
            if elapsed + self._backoff(retry, attempt, scope) > limit_s:
                return f"backoff.maxDuration {max_duration}: the next backoff would pass it"
        return None

    def _backoff(self, retry: dict[str, Any], attempt: int, scope: Mapping[str, str]) -> float:
        backoff = retry.get("backoff") or {}
        if not backoff.get("duration"):
            return 0.0
        base = _backoff_duration(substitute(as_text(backoff["duration"]), scope, "backoff.duration"))
        factor = _int_value(backoff.get("factor"), scope, "backoff.factor")
        return backoff_delay(base, 1 if factor is None else factor, attempt, _cap(backoff, scope))

    def _run_body(
        self,
        node: Node,
        template: dict[str, Any],
        source: WorkflowDoc,
        scope: dict[str, str],
        ctx: _Context,
        attempt: int,
    ) -> _Outcome:
        if _pod_body(template):
            return self._run_container(node, template, scope, ctx, attempt)
        if "suspend" in template:
            return self._run_suspend(node, template, scope, ctx)
        node.children.clear()
        if "steps" in template:
            return self._run_steps(node, template, source, scope, ctx)
        return self._run_dag(node, template, source, scope, ctx)

    def _run_defaults(self, source: WorkflowDoc) -> dict[str, dict[str, Any]]:
        """`source`'s templates with the running workflow's templateDefaults (Argo ignores `source`'s own)."""
        if source is self.wf:
            return self.wf.templates
        return source.templates_with(self.wf.spec.get("templateDefaults"))

    # --- suspend ---------------------------------------------------------------------------

    def _run_suspend(
        self, node: Node, template: dict[str, Any], scope: dict[str, str], ctx: _Context
    ) -> _Outcome:
        """Wait until `mlops resume RUN` (or `suspend.duration`), as Argo's suspend template does."""
        duration = (template.get("suspend") or {}).get("duration")
        text = substitute(as_text(duration), scope, "suspend.duration") if duration not in (None, "") else ""
        seconds = _backoff_duration(text, "suspend.duration") if text else None
        until = time.monotonic() + seconds if seconds is not None else None
        since = self.control.suspend(node.path)
        by_itself = f"; resumes by itself after {text}" if text else ""
        self._phase(
            node,
            RUNNING,
            f"suspended: `mlops resume {self.name}` to go on, `mlops stop {self.name}` to stop{by_itself}",
        )
        try:
            while True:
                if self.control.resumed_since(since):
                    return _Outcome(SUCCEEDED, "resumed")
                if until is not None and time.monotonic() >= until:
                    return _Outcome(SUCCEEDED, f"suspend.duration {text} elapsed")
                passed = ctx.passed()
                if passed:
                    return _Outcome(FAILED, passed)
                if self.cancel.wait(0.2):
                    return _Outcome(FAILED, STOPPED if self.stopped else "cancelled")
        finally:
            self.control.unsuspend(node.path)

    def _watch_stop(self, done: threading.Event) -> None:
        """`mlops stop RUN` from another terminal: stop every node (exit handlers run afterwards)."""
        while not done.wait(0.2):
            if self.control.stop_requested():
                self.stopped = True
                self.cancel.set()
                return

    # --- containers ------------------------------------------------------------------------

    def _run_container(
        self, node: Node, template: dict[str, Any], scope: dict[str, str], ctx: _Context, attempt: int
    ) -> _Outcome:
        sandbox = self.run_dir / "nodes" / (_safe(node.path) + (f".{attempt}" if attempt else ""))
        # the template's own /tmp paths are the pod's: moved into the node's sandbox before
        # substitution (a parameter's value is passed as given)
        kind = _pod_body(template)
        container = substitute_all(
            _sandboxed(template[kind], sandbox), scope, f"template {node.template}.{kind}"
        )
        shutil.rmtree(sandbox, ignore_errors=True)
        outputs_dir(sandbox).mkdir(parents=True)
        command = [as_text(part) for part in container.get("command") or []]
        if kind == "script":
            # Argo writes `source` to a file in the pod and runs `command FILE args...`
            script = sandbox / "argo" / "staging" / "script"
            script.parent.mkdir(parents=True)
            script.write_text(as_text(container.get("source", "")))
            command.append(str(script))
        command += [as_text(part) for part in container.get("args") or []]
        image = container.get("image")
        argv = self.env.command_for(command, str(image) if image else None)
        # A variable from a Secret (`valueFrom.secretKeyRef`: the MLflow identity on a cluster) has no
        # local source: it is left unset, so the process sees what the allow-listed host environment has.
        template_env = {
            str(e["name"]): as_text(e.get("value", ""))
            for e in container.get("env") or []
            if "valueFrom" not in e
        }
        node.log_path = self.run_dir / f"{_safe(node.path)}.log"
        with self.pods or nullcontext():
            result = self._run_pod(node, argv, template_env, sandbox, ctx)
        if result.start_error:
            return _Outcome(ERROR, result.start_error)
        code = result.exit_code
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: report it the way a container runtime does
        if result.killed_reason:
            return _Outcome(FAILED, result.killed_reason, exit_code=code)
        if code != 0:
            tail = " | ".join(result.stderr_tail[-3:])
            return _Outcome(FAILED, f"exit code {code}" + (f": {tail}" if tail else ""), exit_code=code)
        return _Outcome(SUCCEEDED, exit_code=0, sandbox=sandbox, result=result.stdout.strip())

    def _run_pod(
        self, node: Node, argv: list[str], template_env: dict[str, str], sandbox: Path, ctx: _Context
    ) -> ProcessResult:
        return run_process(
            argv,
            env=self.env.process_env(template_env, sandbox),
            cwd=self.env.repo_root,
            log_path=node.log_path or self.run_dir / f"{_safe(node.path)}.log",
            sink=lambda line: self.view.log_line(node, line),
            deadline=ctx.deadline,
            cancel=self.cancel,
            kill_grace_seconds=self.env.kill_grace_seconds,
        )

    def _collect_outputs(
        self, node: Node, template: dict[str, Any], outcome: _Outcome, scope: dict[str, str]
    ) -> None:
        node.result = outcome.result
        values_scope = {**scope, **outcome.scope}
        for param in (template.get("outputs") or {}).get("parameters") or []:
            name = str(param["name"])
            source = param.get("valueFrom") or {}
            value: str | None = None
            if source.get("path") is not None and outcome.sandbox is not None:
                file = self.env.output_path(substitute(as_text(source["path"]), scope, name), outcome.sandbox)
                if file.is_file():
                    value = file.read_text(errors="replace")
                    value = value[:-1] if value.endswith("\n") else value  # Argo trims one newline
                missing = f"output parameter {name!r}: {source['path']} was not written ({file})"
            elif source.get("parameter") is not None:
                try:
                    value = substitute(as_text(source["parameter"]), values_scope, f"outputs.{name}")
                except ValueError as exc:
                    missing = f"output parameter {name!r}: {exc}"
                else:
                    missing = ""
            else:
                missing = f"output parameter {name!r}: no valueFrom.path or valueFrom.parameter"
            if value is None and source.get("default") is not None:
                value = substitute(as_text(source["default"]), scope, f"outputs.{name}.default")
            if value is None:
                raise _NodeError(missing + " and it has no valueFrom.default")
            node.outputs[name] = value

    # --- steps and dag ---------------------------------------------------------------------

    def _run_child(
        self,
        child: Node,
        step: dict[str, Any],
        source: WorkflowDoc,
        scope: dict[str, str],
        ctx: _Context,
        limiter: threading.Semaphore | None = None,
        group: str = "StepGroup",
    ) -> None:
        """One step or task: a single node, or a group (StepGroup/TaskGroup) of one node per loop item."""
        try:
            items = loop_items(step, scope, child.path)
        except (ValueError, ExpressionError) as exc:
            self._phase(child, ERROR, str(exc))
            return
        if items is None:
            with limiter or nullcontext():
                self._run_one(child, step, source, scope, ctx)
            return
        child.kind = group
        if not items:
            self._phase(child, SKIPPED, "Skipped, empty params")  # Argo's words for an empty loop
            return
        self._phase(child, RUNNING)
        members = [
            Node(name=f"{child.name}({i}:{item_label(item)})", path=f"{child.path}({i})", template="")
            for i, item in enumerate(items)
        ]
        child.children.extend(members)

        def one(member: Node, item: Any) -> None:
            with limiter or nullcontext():
                self._run_one(member, step, source, {**scope, **item_scope(item)}, ctx)

        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            self._wait([pool.submit(one, m, item) for m, item in zip(members, items, strict=True)])
        child.template = members[0].template
        child.outputs, child.result = _aggregate(members)
        child.parameter_list = parameter_list([m.outputs for m in members])
        failed = [m for m in members if m.phase in UNSUCCESSFUL]
        if failed:
            self._phase(child, FAILED, f"{failed[0].name} {failed[0].phase.lower()}")
        else:
            self._phase(child, SUCCEEDED)

    def _run_one(
        self, child: Node, step: dict[str, Any], source: WorkflowDoc, scope: dict[str, str], ctx: _Context
    ) -> None:
        try:
            target, target_source = resolve_target(step, source, self.library)
            target = self._run_defaults(target_source).get(str(target.get("name")), target)
            child.template = str(target.get("name"))
            if step.get("when") is not None:
                condition = substitute(as_text(step["when"]), scope, f"{child.path}.when")
                if not evaluate_when(condition):
                    child.outputs = _skipped_outputs(target, scope)
                    self._phase(child, SKIPPED, f"when ({condition}) evaluated false")
                    return
            arguments = {
                str(p["name"]): substitute(
                    as_text(p.get("value", "")), scope, f"{child.path}.arguments.{p['name']}"
                )
                for p in (step.get("arguments") or {}).get("parameters") or []
            }
        except (ValueError, ExpressionError) as exc:
            self._phase(child, ERROR, str(exc))
            return
        self.execute(child, target, target_source, arguments, ctx)
        on_exit = step.get("onExit")
        if on_exit:
            handler = Node(name="onExit", path=_child_path(child, "onExit"), template=str(on_exit))
            child.children.append(handler)
            self.execute(handler, self._run_defaults(source)[on_exit], source, {}, _Context(None, ctx.held))
            if handler.phase in UNSUCCESSFUL and child.phase == SUCCEEDED:
                child.phase = FAILED
                child.message = f"onExit handler {on_exit} {handler.phase.lower()}: {handler.message}"

    def _wait(
        self, futures: list[Future[None]] | set[Future[None]], first: bool = False
    ) -> set[Future[None]]:
        try:
            done, _ = wait(futures, return_when=FIRST_COMPLETED if first else ALL_COMPLETED)
        except BaseException:
            self.cancel.set()  # Ctrl-C: let every running node kill its process, then unwind
            raise
        for future in done:
            future.result()
        return done

    def _run_steps(
        self, node: Node, template: dict[str, Any], source: WorkflowDoc, scope: dict[str, str], ctx: _Context
    ) -> _Outcome:
        scope = dict(scope)
        variables: dict[str, str] = {}
        limiter = _limiter(template, scope)
        for group in template.get("steps") or []:
            children = [
                (step, Node(name=str(step["name"]), path=_child_path(node, str(step["name"])), template=""))
                for step in group or []
            ]
            node.children.extend(child for _, child in children)
            snapshot = {**scope, **variables}
            with ThreadPoolExecutor(max_workers=max(1, len(children))) as pool:
                futures = [
                    pool.submit(self._run_child, c, s, source, snapshot, ctx, limiter) for s, c in children
                ]
                self._wait(futures)
            for _, child in children:
                variables.update(_node_variables("steps", child.name, child))
            failed = [
                child
                for step, child in children
                if child.phase in UNSUCCESSFUL and not _continues(step, child)
            ]
            if failed:
                return _Outcome(FAILED, f"step {failed[0].name} {failed[0].phase.lower()}", scope=variables)
        return _Outcome(SUCCEEDED, scope=variables)

    def _run_dag(
        self, node: Node, template: dict[str, Any], source: WorkflowDoc, scope: dict[str, str], ctx: _Context
    ) -> _Outcome:
        tasks = {str(t["name"]): t for t in dag_tasks(template)}
        try:
            deps = {name: task_dependencies(task) for name, task in tasks.items()}
        except ExpressionError as exc:
            return _Outcome(ERROR, str(exc))
        for name, task in tasks.items():
            if not task.get("depends") and task.get("dependencies"):
                deps[name] = (deps[name][0], _dependencies_logic(deps[name][0], tasks))
        continued: set[str] = set()
        phases: dict[str, str] = {}
        variables: dict[str, str] = {}
        pending = list(tasks)
        running: dict[Future[None], tuple[str, Node]] = {}
        fail_fast = (template.get("dag") or {}).get("failFast") is not False  # Argo's default: true
        limiter = _limiter(template, scope)
        stopped: str | None = None  # the failed task that stopped scheduling
        with ThreadPoolExecutor(max_workers=max(1, len(tasks))) as pool:
            while pending or running:
                for name in [n for n in pending if all(d in phases for d in deps[n][0])]:
                    names, expression = deps[name]
                    omitted = bool(names) and not evaluate_depends(expression, {d: phases[d] for d in names})
                    if stopped is not None and not omitted:
                        continue  # failFast: Argo schedules no new task (and creates no node for it)
                    pending.remove(name)
                    child = Node(
                        name=name, path=_child_path(node, name), template=str(tasks[name].get("template", ""))
                    )
                    node.children.append(child)
                    if omitted:
                        states = ", ".join(f"{d}={phases[d]}" for d in names)
                        self._phase(child, OMITTED, f"depends ({expression}) is false: {states}")
                        phases[name] = OMITTED
                        continue
                    snapshot = {**scope, **variables}
                    future = pool.submit(
                        self._run_child, child, tasks[name], source, snapshot, ctx, limiter, "TaskGroup"
                    )
                    running[future] = (
                        name,
                        child,
                    )
                if not running:
                    if (
                        pending and stopped is None
                    ):  # only a cycle gets here; check_references reports it first
                        return _Outcome(ERROR, f"tasks {', '.join(pending)} wait on each other")
                    break
                for future in self._wait(set(running), first=True):
                    name, child = running.pop(future)
                    phases[name] = child.phase
                    variables.update(_node_variables("tasks", name, child))
                    if child.phase in UNSUCCESSFUL and _continues(tasks[name], child):
                        continued.add(name)
                    unhandled = (
                        child.phase in UNSUCCESSFUL
                        and name not in continued
                        and not _failure_handled(name, deps)
                    )
                    if fail_fast and stopped is None and unhandled:
                        stopped = name
        if stopped is not None:
            return _Outcome(FAILED, f"task {stopped} {phases[stopped].lower()}", scope=variables)
        failed = _failed_branches(deps, {n: SUCCEEDED if n in continued else ph for n, ph in phases.items()})
        if failed:
            return _Outcome(FAILED, f"task {failed[0]} {phases[failed[0]].lower()}", scope=variables)
        return _Outcome(SUCCEEDED, scope=variables)

    # --- the whole workflow -----------------------------------------------------------------

    def _entry_arguments(self, entry: str) -> dict[str, str]:
        """The entrypoint's arguments: an input nobody supplied keeps its own `value`, substituted when bound.

        Argo evaluates `{{...}}` in an entrypoint input's `value` (`{{=jsonpath(workflow.parameters.x, '$.a')}}`,
        its `expression-destructure-json` example); passed on as a submitted value it would stay literal.
        """
        arguments = dict(self.parameters)
        declared = {str(p.get("name")) for p in self.wf.parameters}
        for param in (self.wf.templates[entry].get("inputs") or {}).get("parameters") or []:
            name = str(param.get("name"))
            own = param.get("value", param.get("default"))
            if name in declared or own is None or name not in arguments:
                continue
            if "{{" in arguments[name] and arguments[name] == as_text(own):
                del arguments[name]
        return arguments

    def run(self) -> WorkflowResult:
        spec = self.wf.spec
        entry = str(spec["entrypoint"])
        root = Node(name=self.name, path="", template=entry, kind="Workflow")
        exit_node: Node | None = None
        ctx = _Context().tighten(
            spec.get("activeDeadlineSeconds"),
            f"workflow activeDeadlineSeconds={spec.get('activeDeadlineSeconds')} exceeded",
        )
        self.view.workflow_started(self.name, str(self.wf.path), self.parameters, str(self.run_dir))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.control.start()
        done = threading.Event()
        threading.Thread(target=self._watch_stop, args=(done,), daemon=True).start()
        try:
            mutexes = self._mutex_names(spec.get("synchronization"), self.scope, ctx)
            with self._holding(mutexes, root, ctx):
                held = _Context(ctx.deadline, frozenset(mutexes))
                self.execute(root, self.wf.templates[entry], self.wf, self._entry_arguments(entry), held)
                if self.stopped:
                    # `argo stop` still runs the exit handlers: a fresh cancel event for them
                    self.cancel = threading.Event()
                if spec.get("onExit"):
                    exit_node = Node(name=f"{self.name}.onExit", path="onExit", template=str(spec["onExit"]))
                    self.scope.update(self._exit_variables(root))
                    handler = self.wf.templates[str(spec["onExit"])]
                    self.execute(
                        exit_node, handler, self.wf, self.parameters, _Context(None, frozenset(mutexes))
                    )
        except (MutexWaitAborted, _NodeError) as exc:
            self._phase(root, FAILED, str(exc))
        except BaseException:
            self.cancel.set()
            for node in root.walk() + (exit_node.walk() if exit_node else []):
                if not node.done:
                    node.phase, node.message, node.finished_at = FAILED, "interrupted", time.time()
            raise
        finally:
            done.set()
            self.control.finish()
        phase = SUCCEEDED
        message = ""
        if root.phase != SUCCEEDED:
            phase, message = FAILED, STOPPED if self.stopped else ctx.passed() or root.message
        if exit_node is not None and exit_node.phase != SUCCEEDED:
            phase = FAILED
            message = "; ".join(
                m for m in (message, f"onExit handler {exit_node.phase.lower()}: {exit_node.message}") if m
            )
        return WorkflowResult(
            name=self.name,
            uid=self.uid,
            phase=phase,
            message=message,
            root=root,
            exit_handler=exit_node,
            started_at=self.started,
            finished_at=time.time(),
            run_dir=self.run_dir,
            parameters=dict(self.parameters),
        )

    def _exit_variables(self, root: Node) -> dict[str, str]:
        failures = [
            {
                "displayName": node.name,
                "message": node.message,
                "templateName": node.template,
                "phase": node.phase,
                "podName": node.path or node.name,
                "finishedAt": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(node.finished_at or time.time())
                ),
            }
            for node in root.walk()
            if node.phase in UNSUCCESSFUL and node.kind == "Pod"
        ]
        status = root.phase if root.phase in (SUCCEEDED, ERROR) else FAILED
        return {
            "workflow.status": status,
            "workflow.failures": json.dumps(failures),
            "workflow.duration": f"{time.time() - self.started:.3f}",
        }


def _timeout(template: Mapping[str, Any], scope: Mapping[str, str]) -> tuple[float, str] | None:
    """A container/script template's `timeout` (a Go duration) in seconds, and what exceeding it means."""
    value = template.get("timeout")
    if value is None or value == "":
        return None
    text = substitute(as_text(value), scope, "timeout")
    return go_duration(text, "timeout"), f"timeout={text} exceeded"


def _limiter(template: Mapping[str, Any], scope: Mapping[str, str]) -> threading.Semaphore | None:
    """A steps/dag template's `parallelism`: at most that many of its children (loop items each count) at once."""
    value = _int_value(template.get("parallelism"), scope, "parallelism")
    return threading.BoundedSemaphore(value) if value else None


def _aggregate(members: list[Node]) -> tuple[dict[str, str], str | None]:
    return aggregate_outputs([(m.outputs, m.result, m.phase) for m in members])


def _pod_body(template: Mapping[str, Any]) -> str:
    """`container` or `script` for a template that runs a pod, else ``."""
    return "container" if "container" in template else "script" if "script" in template else ""


def _sandboxed(container: Mapping[str, Any], sandbox: Path) -> dict[str, Any]:
    """The container's command, args, env values and workingDir with `/tmp` paths inside `sandbox`."""
    moved = dict(container)
    for key in ("command", "args"):
        if isinstance(moved.get(key), list):
            moved[key] = [sandbox_text(as_text(part), sandbox) for part in moved[key]]
    if isinstance(moved.get("env"), list):
        moved["env"] = [
            {**e, "value": sandbox_text(as_text(e["value"]), sandbox)}
            if isinstance(e, dict) and "value" in e
            else e
            for e in moved["env"]
        ]
    if isinstance(moved.get("workingDir"), str):
        moved["workingDir"] = sandbox_text(moved["workingDir"], sandbox)
    return moved


def _skipped_outputs(template: Mapping[str, Any], scope: Mapping[str, str]) -> dict[str, str]:
    """A skipped node's outputs: each declared parameter's valueFrom.default, else "" (Argo >= 4.1)."""
    outputs: dict[str, str] = {}
    for param in (template.get("outputs") or {}).get("parameters") or []:
        default = (param.get("valueFrom") or {}).get("default")
        try:
            outputs[str(param["name"])] = (
                "" if default is None else substitute(as_text(default), scope, "default")
            )
        except ValueError:
            outputs[str(param["name"])] = as_text(default)
    return outputs


def _node_variables(prefix: str, name: str, node: Node) -> dict[str, str]:
    """What `{{steps.NAME...}}` / `{{tasks.NAME...}}` resolve to once the node is done."""
    variables = {f"{prefix}.{name}.status": node.phase}
    if node.exit_code is not None:
        variables[f"{prefix}.{name}.exitCode"] = str(node.exit_code)
        variables[f"{prefix}.{name}.outputs.exitCode"] = str(node.exit_code)
    if node.parameter_list is not None:
        variables[f"{prefix}.{name}.outputs.parameters"] = node.parameter_list
    if node.result is not None:
        variables[f"{prefix}.{name}.outputs.result"] = node.result
    for key, value in node.outputs.items():
        variables[f"{prefix}.{name}.outputs.parameters.{key}"] = value
    return variables


def _continues(step: Mapping[str, Any], node: Node) -> bool:
    """Whether a step's/task's `continueOn` lets the workflow go on past this node's failure or error."""
    continue_on = step.get("continueOn") or {}
    return bool(
        (node.phase == FAILED and continue_on.get("failed"))
        or (node.phase == ERROR and continue_on.get("error"))
    )


def _dependencies_logic(names: list[str], tasks: Mapping[str, Mapping[str, Any]]) -> str:
    """`dependencies: [...]` as Argo evaluates it: a dependency with continueOn may also have failed/errored."""
    parts = []
    for name in names:
        continue_on = (tasks.get(name) or {}).get("continueOn") or {}
        extra = [
            f"{name}.{phase}"
            for key, phase in (("failed", "Failed"), ("error", "Errored"))
            if continue_on.get(key)
        ]
        parts.append(f"({' || '.join([name, *extra])})" if extra else name)
    return " && ".join(parts)


_HANDLED = ("Failed", "Errored", "Completed", "AnySucceeded", "AllFailed")


def _failure_handled(name: str, deps: Mapping[str, tuple[list[str], str]]) -> bool:
    """Whether a task's `depends` expects `name` to fail (`name.Failed`, `.Errored`, `.Completed`...).

    Such a failure is part of the DAG's plan (Argo's dag-continue-on-fail example), so it does
    not stop scheduling; any other failure does, under failFast.
    """
    pattern = re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(name)}\.({'|'.join(_HANDLED)})\b")
    return any(pattern.search(expression) for names, expression in deps.values() if name in names)


def _failed_branches(deps: Mapping[str, tuple[list[str], str]], phases: Mapping[str, str]) -> list[str]:
    """The failed tasks behind every leaf whose branch ended in failure (failed, or omitted below one).

    A failure followed by a task that ran because of it (`depends: A.Failed`) is handled.
    """
    memo: dict[str, list[str]] = {}

    def origins(name: str) -> list[str]:
        if name not in memo:
            phase = phases.get(name, OMITTED)
            if phase in UNSUCCESSFUL:
                memo[name] = [name]
            elif phase == OMITTED:
                memo[name] = [o for dep in deps[name][0] for o in origins(dep)]
            else:
                memo[name] = []
        return memo[name]

    has_dependents = {d for names, _ in deps.values() for d in names}
    found: list[str] = []
    for name in deps:
        if name not in has_dependents:
            found.extend(o for o in origins(name) if o not in found)
    return found


def _submittable_parameters(wf: WorkflowDoc) -> list[dict[str, Any]]:
    """The workflow's parameters, then the entrypoint's inputs it does not declare.

    Argo binds the entrypoint's inputs from the workflow's arguments by name, so a
    WorkflowTemplate whose entrypoint declares `inputs.parameters` takes them from the submitter
    (`argo submit --from workflowtemplate/x -p name=value`); an input's `value`/`default` is the
    default.
    """
    declared = list(wf.parameters)
    names = {str(p.get("name")) for p in declared}
    entry = wf.templates.get(str(wf.spec.get("entrypoint")), {})
    for param in (entry.get("inputs") or {}).get("parameters") or []:
        if isinstance(param, dict) and str(param.get("name")) not in names:
            value = param.get("value", param.get("default"))
            declared.append({"name": param.get("name"), "value": value, "enum": param.get("enum")})
    return declared


def run_workflow(
    path: str | Path,
    params: Mapping[str, str],
    *,
    workflows_dir: str | Path | None = None,
    environment: LocalEnvironment | None = None,
    console: Console | None = None,
    file_params: Mapping[str, str] | None = None,
    params_source: str = "--params",
    quiet: bool = False,
    cancel: threading.Event | None = None,
) -> WorkflowResult:
    """Check, then run a workflow file locally. `params` are the `-p` values, `file_params` a `--params` file's.

    Raises WorkflowInvalid (nothing was run) for schema, reference or parameter errors, a
    `--params` key that no workflow beside this one declares included (`params_source` names
    the file in that message).
    """
    wf, library = preflight(path, workflows_dir)
    parameters = resolve_parameters(
        _submittable_parameters(wf),
        file_params or {},
        params,
        workflow=wf.name,
        file_known=library.declared_parameters(),
        file_source=params_source,
        file_where=str(library.directory),
    )
    env = environment or LocalEnvironment()
    view = ProgressView(console or Console(), quiet=quiet)
    run = _Run(wf, library, env, view, parameters, cancel or threading.Event())
    result = run.run()
    view.summary(result)
    return result
