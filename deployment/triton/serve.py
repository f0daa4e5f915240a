"""Step: load the published version on every replica, next to the one `live` serves now.

Writes `config.pbtxt` to serve [new, live] and loads the model through the repository API on
each replica, waiting until both versions are ready: the old version keeps answering while
the new one loads. A version a replica refuses to load (bad input, exit 2) is withdrawn from
the repository, `_COMMITTED` first. From here the server routes unversioned requests to the new (highest)
version; verify checks it, and the onExit handler (reconcile) brings the servers back to
exactly what `live` says whatever happened.
"""

from __future__ import annotations

import sys

from pydantic import Field

from deployment.triton.repository import Repository
from deployment.triton.serving import config_for, serve_versions
from deployment.triton.set_aliases import TRITON_VERSION_TAG
from deployment.triton.settings import ServerSettings, repository
from mlops import step
from mlops.errors import BadInput, MlopsError, Transient
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.step import StepResult


class Config(ServerSettings):
    triton_version: int = Field(ge=1, description="the Triton version to load (publish's output)")
    triton_model_name: str = Field(description="the model's name in the Triton repository (publish's output)")


def live_triton_version(registry: Registry, model: str) -> int | None:
    """The Triton version serving `live` (None when nothing is live)."""
    live = registry.alias(model, "live")
    if live is None:
        return None
    tag = registry.tags(model, live).get(TRITON_VERSION_TAG, "")
    if not tag.isdigit():
        raise BadInput(f"{model}@live = v{live} has no {TRITON_VERSION_TAG} tag; cannot tell what serves it")
    return int(tag)


def withdraw_unservable(repo: Repository, version: int, live: int | None, failure: MlopsError) -> None:
    """After a failed serve: the config back to `live` alone, then the new version out of the repository,
    so no server lists it. An unreachable replica (exit 3) is not the version's fault: it stays."""
    if isinstance(failure, Transient):
        return
    if live:
        repo.write_config(config_for(repo, [live]))
    elif repo.read_config() is not None:
        repo.store.delete(repo.config_url())
    repo.withdraw(version, str(failure))
    failure.add_note(f"{repo.version_url(version)} withdrawn from the repository (it failed to serve)")


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    endpoints = resolve(cfg.endpoints)
    repo = repository(cfg, cfg.triton_model_name)
    live = live_triton_version(registry, cfg.model_name)
    versions = sorted({cfg.triton_version, *([live] if live else [])})
    try:
        timings = serve_versions(repo, endpoints, versions, cfg.ready_timeout_s)
    except MlopsError as exc:
        withdraw_unservable(repo, cfg.triton_version, live, exc)
        raise
    slowest = max(timings.values())
    return StepResult(
        outputs={"served-versions": ",".join(map(str, versions)), "ready-seconds": f"{slowest:.2f}"},
        summary=(
            f"{cfg.triton_model_name} versions {versions} ready on {len(endpoints)} replica(s) "
            f"(slowest {slowest:.2f}s)"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
