"""Step: hot-load the `candidate` adapter into the candidate slot of every vLLM replica.

Fetches `--version`, or the version behind `--alias` (default `candidate`), from MLflow into
`<adapter-dir>/<model>/<version>/` (checksum verified against the registry, written atomically),
refuses a rank above the servers' `--max-lora-rank` before touching a server, then serves it as
`<served-name>-candidate` on every replica, in place when the slot is already filled. If any
replica refuses, the replicas already changed are restored. Moves no alias: the smoke test does.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field

from deployment.vllm.adapters import check_rank, fetch_adapter
from deployment.vllm.settings import VllmSettings, connect_all
from deployment.vllm.slots import CANDIDATE, check_base, fill, slot_name
from mlops import step
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult


class Config(VllmSettings):
    alias: str = Field("candidate", description="alias of the version to load (when --version is empty)")
    version: str = Field("", description="version to load ('' = the one behind --alias)")
    max_lora_rank: int = Field(16, ge=1, description="the servers' --max-lora-rank")


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    version = cfg.version or registry.require_alias(cfg.model_name, cfg.alias)
    folder = fetch_adapter(registry, cfg.model_name, version, Path(cfg.adapter_dir))
    rank = check_rank(folder, cfg.max_lora_rank)
    servers = connect_all(cfg)
    check_base(
        servers, registry.tags(cfg.model_name, version).get("base_uri", ""), f"{cfg.model_name} v{version}"
    )
    name = slot_name(cfg.served_name, CANDIDATE)
    fill(servers, name, str(folder.resolve()))
    return StepResult(
        outputs={"version": version, "adapter-path": str(folder.resolve()), "slot": name},
        summary=(f"{cfg.model_name} v{version} (rank {rank}) serves as {name} on {len(servers)} replica(s)"),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
