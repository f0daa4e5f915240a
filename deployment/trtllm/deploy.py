"""Step: serve release N of the TensorRT-LLM ensemble on every Triton replica.

Checks first, changing nothing: endpoints are configured, every replica is a Triton whose
repository index lists the four ensemble models of `--model-repository` (a TensorRT-LLM Triton
on a GPU node), and release N is committed for all four. Then writes each model's config.pbtxt
serving exactly [N] and loads preprocessing, tensorrt_llm, postprocessing and the ensemble
through Triton's repository API, waiting until each is ready, and records the release (and the
one it replaced, which rollback restores) in the repository's release log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pydantic import Field

from deployment.trtllm import release
from deployment.trtllm.settings import ServerSettings, workflow_name
from mlops import step
from mlops.serving.discovery import resolve
from mlops.serving.triton import TritonServer, connect
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url

STEP = "deployment.trtllm.deploy"


class Config(ServerSettings):
    triton_version: int = Field(ge=1, description="the release to serve (repository's triton-version output)")


def run(
    cfg: Config, store: S3Store | None = None, connector: Callable[[str], TritonServer] = connect
) -> StepResult:
    release.require_endpoints(cfg.endpoints, STEP)
    root = S3Url.parse(cfg.model_repository)
    servers = release.connect_checked(resolve(cfg.endpoints), root, connector)
    store = store or S3Store()
    repos = release.repositories(store, root)
    before = release.current(store, root)
    timings = release.serve_release(repos, servers, cfg.triton_version, cfg.ready_timeout_s)
    previous = before["version"] if before else None
    release.append_log(
        store,
        root,
        {
            "version": cfg.triton_version,
            "previous": previous,
            "workflow": workflow_name(),
            "action": "deploy",
        },
    )
    slowest = max(timings.values())
    return StepResult(
        outputs={"previous-version": str(previous or "none"), "ready-seconds": f"{slowest:.1f}"},
        summary=(
            f"release {cfg.triton_version} ready on {len(servers)} replica(s) in {slowest:.1f}s "
            f"(replaced {previous or 'nothing'})"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
