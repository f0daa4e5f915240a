"""Step: serve the release that was served before the current one (or `--to-version`) again.

Reads the repository's release log: the current entry names the release it replaced. With
`--if-deployed-by=<workflow>` (the workflow's exit handler) it acts only when that run did not
succeed and the current release was deployed by it, so a successful run keeps its release and a
run that failed before deploying changes nothing and needs no server. Otherwise it refuses without a TensorRT-LLM Triton (exit 2, nothing changed),
then writes each model's config.pbtxt serving exactly the target release and reloads the four
models through Triton's repository API, the ensemble last, and logs the rollback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pydantic import Field

from deployment.trtllm import release
from deployment.trtllm.settings import ServerSettings, workflow_name
from mlops import step
from mlops.errors import BadInput
from mlops.serving.discovery import resolve
from mlops.serving.triton import TritonServer, connect
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url

STEP = "deployment.trtllm.rollback"


class Config(ServerSettings):
    to_version: int = Field(
        0, ge=0, description="release to serve (0 = the one the current release replaced)"
    )
    if_deployed_by: str = Field(
        "", description="act only when the current release was deployed by this workflow run ('' = always)"
    )
    workflow_status: str = Field(
        "", description="the workflow's status, for the summary ({{workflow.status}})"
    )


def rollback_target(entry: dict[str, object] | None, to_version: int) -> int:
    """The release to restore: the explicit one, else the one the current release replaced."""
    if to_version:
        return to_version
    if entry is None:
        raise BadInput(
            "the release log is empty: nothing was ever deployed, there is nothing to roll back to"
        )
    previous = entry.get("previous")
    if not isinstance(previous, int) or previous < 1:
        raise BadInput(
            f"release {entry.get('version')} replaced nothing (first deployment): there is no earlier release; "
            "pass --to-version to pick one"
        )
    return previous


def run(
    cfg: Config, store: S3Store | None = None, connector: Callable[[str], TritonServer] = connect
) -> StepResult:
    store = store or S3Store()
    root = S3Url.parse(cfg.model_repository)
    status = f"workflow {cfg.workflow_status.lower() or 'finished'}"
    entry = release.current(store, root)
    if cfg.if_deployed_by and cfg.workflow_status == "Succeeded":
        return StepResult(
            outputs={"rolled-back": "false", "served-version": str(entry["version"]) if entry else "none"},
            summary=f"{status}: {cfg.if_deployed_by} succeeded; its release stays served",
        )
    if cfg.if_deployed_by and (entry is None or entry.get("workflow") != cfg.if_deployed_by):
        return StepResult(
            outputs={"rolled-back": "false", "served-version": str(entry["version"]) if entry else "none"},
            summary=f"{status}: the served release was not deployed by {cfg.if_deployed_by}; nothing to roll back",
        )
    if cfg.if_deployed_by and entry is not None and entry.get("previous") is None and not cfg.to_version:
        # This run's release was the first: unload rather than leave an unverified one serving.
        release.require_endpoints(cfg.endpoints, STEP)
        servers = release.connect_checked(resolve(cfg.endpoints), root, connector)
        for server in servers:
            for name in reversed(release.MODELS):
                server.unload(name)
        release.append_log(
            store,
            root,
            {"version": None, "previous": entry["version"], "workflow": workflow_name(), "action": "unload"},
        )
        return StepResult(
            outputs={"rolled-back": "true", "served-version": "none"},
            summary=f"{status}: release {entry['version']} was the first; unloaded on {len(servers)} replica(s)",
        )
    target = rollback_target(entry, cfg.to_version)
    release.require_endpoints(cfg.endpoints, STEP)
    servers = release.connect_checked(resolve(cfg.endpoints), root, connector)
    repos = release.repositories(store, root)
    release.serve_release(repos, servers, target, cfg.ready_timeout_s)
    current = entry.get("version") if entry else None
    release.append_log(
        store,
        root,
        {"version": target, "previous": current, "workflow": workflow_name(), "action": "rollback"},
    )
    return StepResult(
        outputs={"rolled-back": "true", "served-version": str(target)},
        summary=f"{status}: release {current or 'none'} -> {target} on {len(servers)} replica(s)",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
