"""Step: make the staged adapter the one users get, with zero downtime.

Only a version that carries both verdicts may be promoted: `eval-passed` and `perf-passed` must
point at it (the evaluation and load-test gates moved them), else exit 2 and nothing changes.
Every replica must agree on what its live and candidate slots serve (replicas that disagree
block the promotion: reconcile first). The adapter is then swapped into `<served-name>-live` in
place on every replica (the name is served throughout; a replica that refuses restores the
others), each replica answers through the live slot, and only then `live` moves to the version
and `previous` to the version it replaced (guarded moves). The candidate slot is emptied (left
loaded with `--keep-candidate-slot`, while a canary still routes to it) and `staged` cleared: the
staged version is now live.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from deployment.vllm.adapters import servable_adapter
from deployment.vllm.settings import VllmSettings, connect_all, workflow_name
from deployment.vllm.slots import CANDIDATE, LIVE, Fill, agreed_root, empty, fill, restore, roots, slot_name
from mlops import step
from mlops.audit import utc_now
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.serving.vllm import VllmServer
from mlops.step import StepResult

REQUIRED_VERDICTS = ("eval-passed", "perf-passed")
PROMOTED_FROM = "promote.replaced"


class Config(VllmSettings):
    version: str = Field("", description="version to promote ('' = the one behind `staged`)")
    verify_prompt: str = Field(
        "[INST] Skyloom services are documented here.\n\nQuestion: What is documented here? [/INST]",
        description="prompt each replica must answer through the live slot after the swap",
    )
    keep_candidate_slot: bool = Field(
        False,
        description="leave the candidate slot loaded (a canary still routes to it; vllm-canary moves the "
        "weight back to live, then the slots are reconciled)",
    )


def check_verdicts(registry: Registry, model: str, version: str) -> None:
    """BadInput unless every required verdict alias points at `version`."""
    missing = []
    for alias in REQUIRED_VERDICTS:
        at = registry.alias(model, alias)
        if at != version:
            missing.append(f"{alias} is at {'v' + at if at else 'no version'}")
    if missing:
        raise BadInput(
            f"{model} v{version} cannot be promoted without passing evaluation and performance verdicts: "
            + "; ".join(missing)
        )


def verify_live(servers: Sequence[VllmServer], name: str, path: str, prompt: str) -> list[str]:
    """Problems found: a replica not serving `path` as `name`, or not answering through it."""
    problems = [
        f"{endpoint} serves {root or 'nothing'}"
        for endpoint, root in roots(servers, name).items()
        if root != path
    ]
    for server in servers:
        if not server.complete(name, prompt, max_tokens=8).text.strip():
            problems.append(f"{server.endpoint} answered an empty completion through {name}")
    return problems


def swap_live(servers: Sequence[VllmServer], name: str, path: str, prompt: str) -> list[Fill]:
    """Serve `path` as the live slot everywhere and check it answers; undone on any problem."""
    fills = fill(servers, name, path)
    problems = verify_live(servers, name, path, prompt)
    if problems:
        for item in reversed(fills):
            restore(item)
        raise BadInput(
            f"{name} did not verify after the swap ({'; '.join(problems)}); previous adapter restored"
        )
    return fills


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    version = cfg.version or registry.require_alias(cfg.model_name, "staged")
    check_verdicts(registry, cfg.model_name, version)
    live_before = registry.alias(cfg.model_name, "live")
    previous_before = registry.alias(cfg.model_name, "previous")
    staged = registry.alias(cfg.model_name, "staged")
    servers = connect_all(cfg)
    live_name, candidate_name = slot_name(cfg.served_name, LIVE), slot_name(cfg.served_name, CANDIDATE)
    agreed_root(servers, live_name)
    agreed_root(servers, candidate_name)
    path = servable_adapter(registry, cfg.model_name, version, Path(cfg.adapter_dir), servers)
    started = time.perf_counter()
    swap_live(servers, live_name, path, cfg.verify_prompt)
    swap_s = time.perf_counter() - started
    reason = f"promoted by {workflow_name()} (eval-passed, perf-passed)"
    registry.tag_version(cfg.model_name, version, {PROMOTED_FROM: live_before or "", "promote.at": utc_now()})
    registry.move_alias(cfg.model_name, "live", version, expect_version=live_before, reason=reason)
    if live_before and live_before != version:
        registry.move_alias(
            cfg.model_name, "previous", live_before, expect_version=previous_before, reason=reason
        )
    if staged == version:
        registry.move_alias(
            cfg.model_name, "staged", None, expect_version=version, reason=f"{reason}: now live"
        )
        if not cfg.keep_candidate_slot:
            empty(servers, candidate_name)
    return StepResult(
        outputs={"live": version, "previous": live_before or ""},
        summary=(
            f"{live_name} swapped to v{version} on {len(servers)} replica(s) in {swap_s:.2f}s; "
            f"live: v{live_before or 'unset'} -> v{version}, previous: v{live_before or 'unset'}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
