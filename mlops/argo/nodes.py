"""The state of a local run: nodes (Argo's word for a step/task instance) and the workflow result."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
ERROR = "Error"
SKIPPED = "Skipped"
OMITTED = "Omitted"  # a DAG task whose depends/dependencies ruled it out

DONE = (SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED)
UNSUCCESSFUL = (FAILED, ERROR)


@dataclass
class Attempt:
    """One try of a node with a retryStrategy."""

    number: int
    phase: str
    duration: float
    exit_code: int | None = None
    message: str = ""


@dataclass
class Node:
    """One step, task, exit handler or the workflow root, as `argo get` shows it."""

    name: str  # display name: step/task name, or the workflow name for the root
    path: str  # unique within the run: dotted names from the root, used for log files
    template: str
    kind: str = "Pod"  # Pod, Steps, DAG, Workflow
    phase: str = PENDING
    message: str = ""
    started_at: float | None = None  # wall clock (time.time())
    finished_at: float | None = None
    exit_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    result: str | None = None  # stdout, Argo's outputs.result
    parameter_list: str | None = None  # a loop group's `outputs.parameters`: JSON list of each item's outputs
    attempts: list[Attempt] = field(default_factory=list)
    retry_limit: int | None = None
    children: list[Node] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def done(self) -> bool:
        return self.phase in DONE

    def walk(self) -> list[Node]:
        """This node and all below it, depth first."""
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found


@dataclass
class WorkflowResult:
    """The outcome of `run_workflow`: phase Succeeded or Failed, the node tree, where logs are."""

    name: str
    uid: str
    phase: str
    message: str
    root: Node
    exit_handler: Node | None
    started_at: float
    finished_at: float
    run_dir: Path
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    @property
    def succeeded(self) -> bool:
        return self.phase == SUCCEEDED

    @property
    def nodes(self) -> list[Node]:
        """Every node, the exit handler's included, depth first."""
        found = self.root.walk()
        if self.exit_handler is not None:
            found.extend(self.exit_handler.walk())
        return found

    def node(self, path: str) -> Node:
        """The node at a dotted path below the root, e.g. `train` or `deploy.load` (`onExit` for the handler)."""
        for node in self.nodes:
            if node.path == path:
                return node
        known = ", ".join(n.path for n in self.nodes)
        raise KeyError(f"no node {path!r} (nodes: {known})")
