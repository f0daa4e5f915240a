"""What one end-to-end run changed: aliases at its start, at its end, the moves between, the verdicts.

`record_start` keeps the aliases of each model as a model tag named after the workflow run, so an
exit handler (which has no access to the steps' outputs) can tell what the run changed and put
back what a failed run left behind. `summarise` turns it into a record people read (Markdown) and
tools read (JSON).
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlops.registry import Registry

TRACKED_ALIASES = (
    "champion",
    "deploy",
    "candidate",
    "staged",
    "eval-passed",
    "eval-failed",
    "perf-passed",
    "perf-failed",
    "live",
    "previous",
)
START_TAG = "release.{workflow}.start"


def aliases(registry: Registry, model: str) -> dict[str, str | None]:
    return {alias: registry.alias(model, alias) for alias in TRACKED_ALIASES}


def record_start(registry: Registry, model: str, workflow: str) -> dict[str, Any]:
    start = {"at": time.time(), "aliases": aliases(registry, model)}
    registry.backend.set_model_tag(model, START_TAG.format(workflow=workflow), json.dumps(start))
    return start


def read_start(registry: Registry, model: str, workflow: str) -> dict[str, Any] | None:
    text = registry.backend.get_model_tags(model).get(START_TAG.format(workflow=workflow))
    return json.loads(text) if text else None


def verdicts(registry: Registry, model: str, version: str) -> dict[str, str]:
    """The version's verdict tags (`smoke.verdict`, `eval.verdict`, `perf.verdict`, ...)."""
    return {k: v for k, v in sorted(registry.tags(model, version).items()) if k.endswith("verdict")}


def summarise(registry: Registry, model: str, workflow: str, status: str) -> dict[str, Any]:
    start = read_start(registry, model, workflow) or {"at": 0.0, "aliases": {}}
    after = aliases(registry, model)
    moves = [entry for entry in registry.history(model) if entry.at >= float(start["at"])]
    versions = sorted(
        {v for v in after.values() if v} | {m.to_version for m in moves if m.to_version},
        key=lambda v: int(v) if v.isdigit() else 0,
    )
    return {
        "workflow": workflow,
        "status": status,
        "model": model,
        "started_at": start["at"],
        "aliases_before": start["aliases"],
        "aliases_after": after,
        "moves": [
            {"alias": m.alias, "from": m.from_version, "to": m.to_version, "by": m.actor, "reason": m.reason}
            for m in moves
        ],
        "verdicts": {v: verdicts(registry, model, v) for v in versions},
    }


def to_markdown(summary: dict[str, Any]) -> str:
    def show(version: str | None) -> str:
        return f"v{version}" if version else "-"

    lines = [
        f"# {summary['workflow']}: {summary['status']}",
        "",
        f"Model `{summary['model']}`.",
        "",
        "| alias | before | after |",
        "|---|---|---|",
    ]
    before, after = summary["aliases_before"], summary["aliases_after"]
    for alias in TRACKED_ALIASES:
        if before.get(alias) or after.get(alias):
            mark = "" if before.get(alias) == after.get(alias) else " (moved)"
            lines.append(f"| {alias} | {show(before.get(alias))} | {show(after.get(alias))}{mark} |")
    lines += ["", "## Alias moves", ""]
    lines += [
        f"- `{m['alias']}`: {show(m['from'])} -> {show(m['to'])} by {m['by']}: {m['reason']}"
        for m in summary["moves"]
    ] or ["- none"]
    lines += ["", "## Verdicts", ""]
    for version, found in summary["verdicts"].items():
        text = ", ".join(f"{k}={v}" for k, v in found.items()) or "none recorded"
        lines.append(f"- v{version}: {text}")
    return "\n".join(lines) + "\n"
