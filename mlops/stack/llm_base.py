"""The base model the local vLLM server serves: the one the registered adapters were trained on.

On a cluster the vLLM Deployment names its base (Mistral-7B on a volume). Locally the base is
built by the training workflow, so `mlops up` asks the registry: the `base_uri` tag of the
version behind `live`, else `staged`, else `candidate`, and downloads that base once into the
stack's folder (checked against the base's commit manifest). Before any training there is no
base and vLLM is not started (`mlops up` says so; run vllm-training, then `mlops up` again).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops.errors import BadInput
from mlops.registry import Registry
from mlops.storage import S3Store, S3Url

BASE_ALIASES = ("live", "staged", "candidate")


def base_uri_from_registry(registry: Registry, model: str) -> tuple[str, str]:
    """(base_uri, where it came from); ('', why not) when no version names a base."""
    for alias in BASE_ALIASES:
        version = registry.alias(model, alias)
        if version:
            uri = registry.tags(model, version).get("base_uri", "")
            if uri:
                return uri, f"{model}@{alias} (v{version})"
    return (
        "",
        f"no version of {model} is live, staged or candidate yet: run vllm-training, then `mlops up` again",
    )


def download_base(uri: str, target: Path, store: S3Store | None = None) -> None:
    """The files directly under the s3:// prefix `uri` into `target`, verified against `_COMMITTED`."""
    store = store or S3Store()
    prefix = S3Url.parse(uri.rstrip("/"))
    if "config.json" not in store.commit_manifest(prefix, what="base model"):
        raise BadInput(f"base {uri} has no config.json")
    store.download_committed(prefix, target, what="base model")


def local_base(uri: str, cache_dir: Path) -> Path:
    """A folder with the base at `uri` (a folder, or an s3:// prefix downloaded once under `cache_dir`).

    The download goes to `<cache_dir>/<bucket>/<key>`, so the path vLLM reports as the base's
    `root` ends with the S3 location the adapters name as their base (the deployment steps check
    that an adapter is loaded only onto the base it was trained on)."""
    if not uri.startswith("s3://"):
        folder = Path(uri)
        if not (folder / "config.json").is_file():
            raise BadInput(f"base model {uri} is not a model folder (no config.json)")
        return folder
    location = S3Url.parse(uri.rstrip("/"))
    target = cache_dir / location.bucket / location.key
    if (target / "config.json").is_file():
        return target
    partial = target.parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    download_base(uri, partial)
    partial.rename(target)  # the folder appears complete or not at all
    return target
