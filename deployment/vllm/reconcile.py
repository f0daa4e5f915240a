"""Step: make every replica's slots match the registry: `live` in the live slot, `staged` in the candidate slot.

Startup reconciliation and exit handler in one: a replica that restarted (empty slots) gets its
adapters back, fetched if the adapter folder lost them; after a failed deployment the candidate
slot goes back to the `staged` version (or is emptied when nothing is staged); a slot whose
alias is unset is emptied. The registry aliases are the truth, the servers follow. Safe to run
any number of times. A version behind an alias that cannot be served (no checksum tag, another
base) is bad input (exit 2) before any replica is touched; a replica that fails to converge
(unreachable, or refusing an adapter) is reported after the others were tried, and the step
exits 3 (retried). Run by `mlops up` once vLLM is healthy, as the onExit handler of the vLLM
workflows, and on a cluster by the vLLM pod's `slots` sidecar (infra/vllm): fully when the pod
starts, then every minute with `--empty-slots-only`, which refills a slot a restarted vLLM lost
and never changes a served one (a workflow loads the candidate slot before its smoke test moves
`staged`, and a canary keeps serving the candidate slot after `staged` is cleared: a full pass in
between would undo either).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from deployment.vllm.adapters import servable_adapter
from deployment.vllm.settings import VllmSettings, connect_all
from deployment.vllm.slots import CANDIDATE, LIVE, slot_name
from mlops import step
from mlops.errors import MlopsError, Transient
from mlops.registry import Registry, mlflow_registry
from mlops.serving.vllm import VllmServer, adapters
from mlops.step import StepResult

SLOT_ALIASES = {LIVE: "live", CANDIDATE: "staged"}


class Config(VllmSettings):
    workflow_status: str = Field(
        "", description="the workflow's status, for the summary ({{workflow.status}})"
    )
    empty_slots_only: bool = Field(
        False,
        description="only load the alias's version into a slot that serves nothing; leave every "
        "served slot alone (the vLLM pod's periodic pass: a workflow may be between loading a slot "
        "and moving its alias)",
    )


def desired_paths(
    registry: Registry, cfg: VllmSettings, servers: Sequence[VllmServer]
) -> dict[str, str | None]:
    """slot name -> the adapter folder it should serve (None: empty), fetching what is missing."""
    wanted: dict[str, str | None] = {}
    for slot, alias in SLOT_ALIASES.items():
        version = registry.alias(cfg.model_name, alias)
        wanted[slot_name(cfg.served_name, slot)] = (
            servable_adapter(registry, cfg.model_name, version, Path(cfg.adapter_dir), servers)
            if version
            else None
        )
    return wanted


def converge(server: VllmServer, wanted: dict[str, str | None], empty_slots_only: bool = False) -> list[str]:
    """Bring one replica to `wanted` (with `empty_slots_only`, only its empty slots); the changes
    made, as words."""
    served = adapters(server)
    changes = []
    for name, path in wanted.items():
        current = served.get(name)
        if current == path or (empty_slots_only and current is not None):
            continue
        if path is None:
            server.unload_adapter(name)
            changes.append(f"{name} emptied (was {current})")
        else:
            server.load_adapter(name, path, inplace=current is not None)
            changes.append(f"{name} <- {path}" + (f" (was {current})" if current else ""))
    return changes


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    servers = connect_all(cfg)
    wanted = desired_paths(registry, cfg, servers)
    changes: list[str] = []
    failures: list[str] = []
    for server in servers:
        try:
            changes += [
                f"{server.endpoint}: {change}" for change in converge(server, wanted, cfg.empty_slots_only)
            ]
        except MlopsError as exc:
            failures.append(f"{server.endpoint}: {exc}")
    for line in changes:
        print(f"[reconcile] {line}")
    if failures:
        raise Transient("replicas not reconciled: " + " | ".join(failures))
    state = ", ".join(f"{name}={path or 'empty'}" for name, path in wanted.items())
    status = f" after workflow {cfg.workflow_status}" if cfg.workflow_status else ""
    return StepResult(
        outputs={"changes": str(len(changes))},
        summary=f"{len(changes)} change(s){status}; slots: {state}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
