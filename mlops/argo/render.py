"""Argo-like progress lines while a workflow runs, and an `argo get`-like step tree at the end.

Everything is printed as whole lines through rich: colour on a terminal, plain text (no ANSI,
no cursor movement, no wrapping) when stdout is a file or a CI log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from rich.console import Console
from rich.text import Text

from mlops.argo.nodes import (
    ERROR,
    FAILED,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Node,
    WorkflowResult,
)

SYMBOLS = {PENDING: "◷", RUNNING: "●", SUCCEEDED: "✔", FAILED: "✖", ERROR: "⚠", SKIPPED: "○", OMITTED: "○"}
STYLES = {
    PENDING: "dim",
    RUNNING: "cyan",
    SUCCEEDED: "green",
    FAILED: "red",
    ERROR: "red",
    SKIPPED: "dim",
    OMITTED: "dim",
}
_LOG_STYLES = ("blue", "magenta", "cyan", "yellow", "green", "bright_blue", "bright_magenta")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def _outputs_text(node: Node) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in node.outputs.items())


def _short(value: str, limit: int = 60) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


class ProgressView:
    """Prints node phase changes and (unless quiet) each node's output lines, prefixed with its path."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._lock = threading.Lock()
        self._log_styles: dict[str, str] = {}

    def _print(self, text: Text) -> None:
        with self._lock:
            self.console.print(text, soft_wrap=True, highlight=False)

    def workflow_started(self, name: str, source: str, parameters: Mapping[str, str], run_dir: str) -> None:
        self._print(Text.assemble(("Workflow ", "bold"), (name, "bold cyan"), f" from {source}"))
        for key, value in parameters.items():
            self._print(Text(f"  {key}={_short(value, 120)}", style="dim"))
        self._print(Text(f"  logs: {run_dir}", style="dim"))

    def node_phase(self, node: Node) -> None:
        """One line per phase change: time, symbol, node path, phase, attempt, duration, message."""
        stamp = time.strftime("%H:%M:%S")
        line = Text(f"{stamp} ")
        line.append(f"{SYMBOLS.get(node.phase, '?')} ", style=STYLES.get(node.phase, ""))
        line.append(f"{node.path or node.name:<28} ", style="bold")
        line.append(f"{node.phase:<9}", style=STYLES.get(node.phase, ""))
        details: list[str] = []
        if node.retry_limit is not None and node.phase == RUNNING:
            details.append(f"attempt {len(node.attempts) + 1}/{node.retry_limit + 1}")
        if node.done and node.phase not in (SKIPPED, OMITTED):
            details.append(format_duration(node.duration))
        if node.phase in (FAILED, ERROR) and node.exit_code is not None and "exit code" not in node.message:
            details.append(f"exit code {node.exit_code}")
        if node.phase == SUCCEEDED and node.message.startswith("memoized"):
            details.append(node.message)
        if node.phase == SUCCEEDED and node.outputs:
            details.append(_outputs_text(node))
        if node.message and node.phase != SUCCEEDED:
            details.append(node.message)
        if details:
            line.append("  " + "  ".join(details))
        self._print(line)

    def retrying(self, node: Node, attempt: int, phase: str, exit_code: int | None, delay: float) -> None:
        """The line between two attempts of a node with a retryStrategy."""
        line = Text(f"{time.strftime('%H:%M:%S')} ")
        line.append("↻ ", style="yellow")
        line.append(f"{node.path or node.name:<28} ", style="bold")
        line.append(f"{'Retrying':<9}", style="yellow")
        code = f" (exit code {exit_code})" if exit_code is not None else ""
        line.append(f"  attempt {attempt + 1} {phase.lower()}{code}, next attempt in {delay:.1f}s")
        self._print(line)

    def log_line(self, node: Node, line: str) -> None:
        if self.quiet:
            return
        style = self._log_styles.setdefault(node.path, _LOG_STYLES[len(self._log_styles) % len(_LOG_STYLES)])
        self._print(Text.assemble((f"  {node.path} | ", style), line))

    def message(self, text: str, style: str = "") -> None:
        self._print(Text(text, style=style))

    def summary(self, result: WorkflowResult) -> None:
        """The `argo get`-like tree, then `Workflow <name> <phase> in <duration>`."""
        self._print(Text(""))
        rows: list[tuple[str, str, Node]] = []
        _tree_rows(result.root, "", "", rows)
        if result.exit_handler is not None:
            _tree_rows(result.exit_handler, "", "", rows)
        step_width = max(len("STEP"), *(len(prefix) + 2 + len(node.name) for prefix, _, node in rows))
        template_width = max(len("TEMPLATE"), *(len(node.template) for _, _, node in rows))
        header = f"{'STEP':<{step_width}}  {'TEMPLATE':<{template_width}}  {'DURATION':>8}  MESSAGE"
        self._print(Text(header, style="bold"))
        for prefix, child_prefix, node in rows:
            line = Text(prefix)
            line.append(f"{SYMBOLS.get(node.phase, '?')} ", style=STYLES.get(node.phase, ""))
            line.append(node.name)
            line.pad_right(step_width - len(prefix) - 2 - len(node.name))
            duration = "" if node.phase in (SKIPPED, OMITTED) else format_duration(node.duration)
            line.append(f"  {node.template:<{template_width}}  {duration:>8}  ")
            line.append(
                _node_message(node), style=STYLES.get(node.phase, "") if node.phase != SUCCEEDED else ""
            )
            self._print(line)
            for attempt in node.attempts if len(node.attempts) > 1 else []:
                detail = f"attempt {attempt.number + 1}: {attempt.phase}"
                if attempt.exit_code is not None:
                    detail += f" (exit code {attempt.exit_code})"
                self._print(
                    Text(f"{child_prefix}  ↳ {detail} {format_duration(attempt.duration)}", style="dim")
                )
        self._print(Text(""))
        if result.message and not result.succeeded:
            self._print(Text(f"Message: {result.message}", style="red"))
        style = "bold green" if result.succeeded else "bold red"
        self._print(
            Text(f"Workflow {result.name} {result.phase} in {format_duration(result.duration)}", style=style)
        )


def _node_message(node: Node) -> str:
    if node.phase == SUCCEEDED:
        # a succeeded node's message is only ever the memoize note: shown before its outputs
        memo = f"{_short(node.message, 60)}: " if node.message.startswith("memoized") else ""
        return memo + _outputs_text(node)
    message = node.message.splitlines()[0] if node.message else ""
    return _short(message, 160)


def _tree_rows(node: Node, prefix: str, child_prefix: str, rows: list[tuple[str, str, Node]]) -> None:
    rows.append((prefix, child_prefix, node))
    for i, child in enumerate(node.children):
        last = i == len(node.children) - 1
        _tree_rows(
            child, child_prefix + ("└─" if last else "├─"), child_prefix + ("  " if last else "│ "), rows
        )
