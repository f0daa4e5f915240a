"""Step (canary): send `--weight` percent of the public name's requests to the candidate slot.

Before any weight above 0 it checks that the canary may start: `staged` carries both verdicts
(`eval-passed`, `perf-passed`, as promote requires), a `live` version exists to compare with (the
first release has none: it goes through vllm-promote), and every replica serves `staged` in the
candidate slot and `live` in the live slot (read from the replicas, deployment.vllm.slots). Any
check fails: exit 2 and the split is not touched. Weight 0 (back to live) is always allowed and
checks nothing: it is what a failed analysis and the exit handlers do.

The split is the local router's (`--canary-split http://...`) or the cluster's
InferenceModelRewrite (`k8s://<namespace>/<name>`), deployment.vllm.traffic.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pydantic import Field

from deployment.vllm.promote import check_verdicts
from deployment.vllm.settings import VllmSettings, connect_all
from deployment.vllm.slots import CANDIDATE, LIVE, agreed_root, slot_name
from deployment.vllm.traffic import TrafficSplit, connect_split
from mlops import step
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.serving.vllm import VllmServer, adapter_version
from mlops.step import StepResult


class CanarySettings(VllmSettings):
    canary_split: str = Field(
        "k8s://mlops/aws-rag-qa",
        description="where the split lives: http(s)://<router> (local) or k8s://<namespace>/<InferenceModelRewrite>",
    )


class Config(CanarySettings):
    weight: int = Field(
        0, ge=0, le=100, description="percent of the public name's requests sent to the candidate"
    )


def check_slots(servers: Sequence[VllmServer], model: str, served_name: str, staged: str, live: str) -> None:
    """BadInput unless every replica serves `staged` as candidate and `live` as live."""
    for slot, version in ((CANDIDATE, staged), (LIVE, live)):
        name = slot_name(served_name, slot)
        root = agreed_root(servers, name)
        serving = adapter_version(root or "", model)
        if serving != version:
            raise BadInput(
                f"{name} serves {('v' + serving) if serving else (root or 'nothing')}, not v{version}: "
                "deploy the candidate (vllm-deployment) or reconcile the replicas first"
            )


def ready_version(registry: Registry, cfg: CanarySettings, servers: Sequence[VllmServer]) -> tuple[str, str]:
    """(staged, live) when a canary of `staged` may start; BadInput naming what is missing."""
    staged = registry.require_alias(cfg.model_name, "staged")
    check_verdicts(registry, cfg.model_name, staged)
    live = registry.alias(cfg.model_name, "live")
    if live is None:
        raise BadInput(
            f"{cfg.model_name} has no live version to compare the candidate with: the first release "
            "goes through vllm-promote"
        )
    check_slots(servers, cfg.model_name, cfg.served_name, staged, live)
    return staged, live


def run(
    cfg: Config,
    registry: Registry | None = None,
    split: TrafficSplit | None = None,
    servers: Sequence[VllmServer] | None = None,
) -> StepResult:
    split = split or connect_split(cfg.canary_split, cfg.served_name)
    before = split.candidate_weight()
    if cfg.weight == 0:
        split.set_candidate_weight(0)
        return StepResult(
            outputs={"weight": "0", "version": ""},
            summary=f"{split.where}: candidate weight {before}% -> 0%, every request to live",
        )
    registry = registry or mlflow_registry()
    staged, live = ready_version(registry, cfg, servers if servers is not None else connect_all(cfg))
    split.set_candidate_weight(cfg.weight)
    return StepResult(
        outputs={"weight": str(cfg.weight), "version": staged},
        summary=(
            f"{split.where}: candidate weight {before}% -> {cfg.weight}% "
            f"({cfg.served_name}-candidate v{staged} beside live v{live})"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
