"""The base model a vLLM server serves locally: the one the registered adapters were trained on.

On a cluster the vLLM Deployment names its base (Mistral-7B on a volume). Locally the base is
built by the training workflow, so `mlops up` asks the registry: the `base_uri` tag of the
version behind `live`, else `staged`, else `candidate`, and downloads that base once into the
stack's folder. Before any training there is no base and vLLM is not started (`mlops up` says so;
run vllm-training, then `mlops up` again).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from mlops.errors import BadInput
from mlops.registry import Registry
from training.llm.base_model import fetch_base

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


def local_base(uri: str, cache_dir: Path) -> Path:
    """A folder with the base at `uri` (folder or s3:// prefix), downloaded once under `cache_dir`."""
    if not uri.startswith("s3://"):
        return fetch_base(uri, cache_dir)
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (target / "config.json").is_file():
        return target
    work = cache_dir / f".{target.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    folder = fetch_base(uri, work)
    if not (folder / "config.json").is_file():
        raise BadInput(f"base {uri} has no config.json")
    folder.rename(target)
    shutil.rmtree(work, ignore_errors=True)
    return target
