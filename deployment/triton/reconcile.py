"""Step (onExit handler of deployment and rollback): make every replica serve exactly `live`.

After a successful deployment this unloads the version that was replaced (the new one is
`live` now); after any failure it unloads the new version and leaves the old one serving, with
no alias moved. With nothing `live` (a first deployment that failed) the model is unloaded.
Safe to run any number of times.

With `--all-models` (what `mlops up` runs once the Triton stand-in is healthy, and what a
restarted Triton needs: with explicit model control it starts serving nothing) it does the same
for every model of the repository that a deployment published: each version's `metadata.json`
names its registered model, whose `live` alias decides what is served.
"""

from __future__ import annotations

import sys

from pydantic import Field

from deployment.triton.repository import METADATA_FILE, Repository
from deployment.triton.serve import live_triton_version
from deployment.triton.serving import currently_served, serve_versions, unserve
from deployment.triton.set_aliases import TRITON_MODEL_TAG
from deployment.triton.settings import ServerSettings, repository
from mlops import step
from mlops.errors import BadInput, MlopsError, Transient
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.step import StepResult
from mlops.storage import ObjectStore, S3Store, S3Url


class Config(ServerSettings):
    workflow_status: str = Field(
        "", description="the workflow's status, for the summary ({{workflow.status}})"
    )
    all_models: bool = Field(
        False, description="every model of the repository a deployment published (--model-name is ignored)"
    )


def published_models(store: ObjectStore, root: S3Url) -> dict[str, str]:
    """Triton model name -> registered model, for each repository model a deployment published
    (read from its newest committed version's metadata.json; models without one are not ours)."""
    prefix = root.key.rstrip("/") + "/" if root.key else ""
    names = {key[len(prefix) :].split("/", 1)[0] for key in store.list(S3Url(root.bucket, prefix))}
    found: dict[str, str] = {}
    for name in sorted(n for n in names if n and not n.startswith("_")):
        repo = Repository(store, root, name)
        for version in reversed(repo.committed_versions()):
            if store.exists(repo.version_url(version).join(METADATA_FILE)):
                registered = str(repo.read_metadata(version).get("mlflow_model", ""))
                if registered:
                    found[name] = registered
                break
    return found


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    if cfg.all_models:
        return run_all(cfg, registry)
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


def run_all(cfg: Config, registry: Registry) -> StepResult:
    """Reconcile every published model; a model that fails is reported after the others were tried."""
    root = S3Url.parse(cfg.model_repository)
    store = S3Store()
    try:
        models = published_models(store, root)
    except BadInput:  # no bucket yet: nothing was ever published
        models = {}
    lines: list[str] = []
    failures: list[str] = []
    for triton_name, registered in models.items():
        one = cfg.model_copy(
            update={"all_models": False, "model_name": registered, "triton_model_name": triton_name}
        )
        try:
            lines.append(run(one, registry).summary)
        except MlopsError as exc:
            failures.append(f"{triton_name} ({registered}): {exc}")
    for line in lines:
        print(f"[reconcile] {line}")
    if failures:
        raise Transient("models not reconciled: " + " | ".join(failures))
    return StepResult(
        outputs={"models": str(len(models))},
        summary=f"{len(models)} model(s) of {root} serve what their `live` alias says",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
