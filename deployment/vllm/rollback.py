"""Step: serve `previous` again in the live slot and make it `live`.

Swaps the adapter of `previous` into `<served-name>-live` in place on every replica (the name
stays served; a replica that refuses restores the others), checks every replica answers through
it, then moves `live` to it and clears `previous` (guarded moves) and tags the restored version.
Idempotent: when `previous` is unset because a rollback already restored `live`, it does nothing
and says so; `previous` unset otherwise is bad input (exit 2).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from deployment.vllm.adapters import servable_adapter
from deployment.vllm.promote import Config as PromoteConfig
from deployment.vllm.promote import swap_live
from deployment.vllm.settings import connect_all, workflow_name
from deployment.vllm.slots import LIVE, agreed_root, slot_name
from mlops import step
from mlops.audit import utc_now
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult

RESTORED_FROM = "rollback.restored_from"


class Config(PromoteConfig):
    """Same settings as promote (`--version` is ignored: the target is `previous`)."""


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    live = registry.alias(cfg.model_name, "live")
    previous = registry.alias(cfg.model_name, "previous")
    if previous is None:
        restored_from = registry.tags(cfg.model_name, live).get(RESTORED_FROM) if live else None
        if restored_from:
            return StepResult(
                outputs={"live": live or "", "rolled-back": "false"},
                summary=f"nothing to do: live v{live} was already restored by a rollback from v{restored_from}",
            )
        raise BadInput(f"{cfg.model_name} has no `previous` alias: there is nothing to roll back to")
    servers = connect_all(cfg)
    live_name = slot_name(cfg.served_name, LIVE)
    agreed_root(servers, live_name)
    path = servable_adapter(registry, cfg.model_name, previous, Path(cfg.adapter_dir), servers)
    started = time.perf_counter()
    swap_live(servers, live_name, path, cfg.verify_prompt)
    swap_s = time.perf_counter() - started
    reason = f"rollback by {workflow_name()}: v{live or 'unset'} -> v{previous}"
    registry.tag_version(cfg.model_name, previous, {RESTORED_FROM: live or "", "rollback.at": utc_now()})
    registry.move_alias(cfg.model_name, "live", previous, expect_version=live, reason=reason)
    registry.move_alias(cfg.model_name, "previous", None, expect_version=previous, reason=reason)
    return StepResult(
        outputs={"live": previous, "rolled-back": "true"},
        summary=(
            f"{live_name} swapped back to v{previous} on {len(servers)} replica(s) in {swap_s:.2f}s; "
            f"live: v{live or 'unset'} -> v{previous}, previous cleared"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
