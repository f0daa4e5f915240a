"""Step (exit handler of llm-e2e): undo what a run that released nothing left behind, then converge the slots.

A run releases when `live` moved during it. One that did not (a gate said no, a step failed, the
deadline passed) may have moved `staged` to its new version and loaded it into the candidate
slot: `staged` goes back to the version it had when the run started (recorded by
deployment.release.checkpoint; a guarded move expecting `staged` where it was just read), and every
replica's slots are then reconciled with the aliases. Verdict aliases and tags stay: they are
the record of why. A run that released changes nothing here.
"""

from __future__ import annotations

import sys

from pydantic import Field

from deployment.vllm import reconcile
from deployment.vllm.settings import VllmSettings, workflow_name
from mlops import step
from mlops.registry import Registry, mlflow_registry
from mlops.release import read_start
from mlops.step import StepResult


class Config(VllmSettings):
    workflow_status: str = Field("", description="the workflow's status ({{workflow.status}})")


def restore_staged(registry: Registry, model: str, workflow: str, status: str) -> str:
    """What was done about `staged`, in words."""
    start = read_start(registry, model, workflow)
    if start is None:
        return f"no start recorded for {workflow}: nothing to restore"
    before = start["aliases"]
    if registry.alias(model, "live") != before.get("live"):
        return f"released: live v{before.get('live') or 'unset'} -> v{registry.alias(model, 'live')}"
    staged_now, staged_before = registry.alias(model, "staged"), before.get("staged")
    if staged_now == staged_before:
        return f"no release, staged unchanged (v{staged_now or 'unset'})"
    registry.move_alias(
        model,
        "staged",
        staged_before,
        expect_version=staged_now,
        reason=f"exit handler of {workflow} ({status}): no release; staged back to its value at the start",
    )
    return f"no release: staged v{staged_now or 'unset'} -> v{staged_before or 'unset'}"


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    done = restore_staged(registry, cfg.model_name, workflow_name(), cfg.workflow_status or "unknown")
    settings = cfg.model_dump(exclude={"workflow_status"})
    converged = reconcile.run(reconcile.Config(**settings, workflow_status=cfg.workflow_status), registry)
    return StepResult(
        outputs={"changes": converged.outputs["changes"]}, summary=f"{done}; {converged.summary}"
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
