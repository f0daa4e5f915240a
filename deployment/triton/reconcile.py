"""Step (onExit handler of deployment and rollback): make every replica serve exactly `live`.

After a successful deployment this unloads the version that was replaced (the new one is
`live` now); after any failure it unloads the new version and leaves the old one serving, with
no alias moved. With nothing `live` (a first deployment that failed) the model is unloaded.
Safe to run any number of times.
"""

from __future__ import annotations

import sys

from pydantic import Field

from deployment.triton.serve import live_triton_version
from deployment.triton.serving import currently_served, serve_versions, unserve
from deployment.triton.set_aliases import TRITON_MODEL_TAG
from deployment.triton.settings import ServerSettings, repository
from mlops import step
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.step import StepResult


class Config(ServerSettings):
    workflow_status: str = Field(
        "", description="the workflow's status, for the summary ({{workflow.status}})"
    )


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    live = registry.alias(cfg.model_name, "live")
    # the Triton name: given, else recorded on `live`, else the default (export names it after the model)
    name = (
        cfg.triton_model_name
        or (registry.tags(cfg.model_name, live).get(TRITON_MODEL_TAG, "") if live else "")
        or cfg.model_name
    )
    endpoints = resolve(cfg.endpoints)
    repo = repository(cfg, name)
    before = currently_served(repo)
    target = live_triton_version(registry, cfg.model_name)
    status = f"workflow {cfg.workflow_status.lower() or 'finished'}"
    if target is None:
        unserve(repo, endpoints)
        return StepResult(
            outputs={"served-versions": ""},
            summary=f"{status}: nothing is live, {name} unloaded on {len(endpoints)} replica(s) (was {before})",
        )
    serve_versions(repo, endpoints, [target], cfg.ready_timeout_s)
    return StepResult(
        outputs={"served-versions": str(target)},
        summary=(
            f"{status}: {name} serves v{target} (live = {cfg.model_name} v{live}) on "
            f"{len(endpoints)} replica(s); was {before}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv, prog="deployment.triton.reconcile", description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
