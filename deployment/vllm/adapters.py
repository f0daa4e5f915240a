"""Adapter folders the servers read: `<adapter-dir>/<model>/<version>/`, written once, never changed.

A version's folder is immutable: it is written under a temporary name and renamed into place
only after its checksum matched the registry's `adapter_sha256` tag, so a server never sees a
half-written adapter. Immutability is also what keeps vLLM's prefix cache honest: vLLM keys cached
KV blocks by (adapter name, adapter path), so after an in-place swap of a slot to another version
(another path) no block computed with the old weights is reused. Rewriting a folder in place would
break that, which is why an existing folder whose checksum differs is an error, not overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from deployment.vllm.slots import check_base
from mlops.errors import BadInput
from mlops.registry import Registry
from mlops.serving.vllm import VllmServer
from mlops.storage import sha256_file
from mlops.tracking import download_artifacts

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
SHA_TAG = "adapter_sha256"


def adapter_path(adapter_dir: Path, model: str, version: str) -> Path:
    return adapter_dir / model / str(version)


def adapter_rank(folder: Path) -> int:
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{folder / CONFIG} is unreadable: {exc}") from exc
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise BadInput(f"{folder / CONFIG} has no valid LoRA rank `r`: {rank!r}")
    return rank


def check_rank(folder: Path, max_rank: int) -> int:
    rank = adapter_rank(folder)
    if rank > max_rank:
        raise BadInput(
            f"adapter {folder} has LoRA rank {rank}, above the servers' --max-lora-rank {max_rank}: "
            "vLLM cannot load it"
        )
    return rank


def fetch_adapter(registry: Registry, model: str, version: str, adapter_dir: Path) -> Path:
    """The folder of `model` v`version` under `adapter_dir`, downloaded and verified if absent."""
    expected = registry.tags(model, version).get(SHA_TAG, "")
    if not expected:
        raise BadInput(f"{model} v{version} has no {SHA_TAG} tag: its adapter cannot be verified")
    target = adapter_path(adapter_dir, model, version)
    if target.is_dir():
        actual = sha256_file(target / WEIGHTS) if (target / WEIGHTS).is_file() else "missing"
        if actual != expected:
            raise BadInput(
                f"{target} exists but its weights do not match {model} v{version} "
                f"(sha256 {actual[:12]} != {expected[:12]}); folders are immutable: remove it by hand"
            )
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{version}-", dir=target.parent) as tmp:
        downloaded = download_artifacts(registry.source(model, version), Path(tmp) / "download")
        for name in (CONFIG, WEIGHTS):
            if not (downloaded / name).is_file():
                raise BadInput(f"{model} v{version}: the registered adapter has no {name}")
        actual = sha256_file(downloaded / WEIGHTS)
        if actual != expected:
            raise BadInput(
                f"{model} v{version}: downloaded weights have sha256 {actual[:12]}, the registry says "
                f"{expected[:12]}: corrupt adapter, not loaded"
            )
        staged = Path(tmp) / "ready"
        staged.mkdir()
        for item in downloaded.iterdir():
            if item.is_file():
                shutil.copy2(item, staged / item.name)
        try:
            staged.rename(target)  # atomic on one filesystem: the folder appears complete or not at all
        except OSError:
            if not target.is_dir():
                raise
            # a concurrent fetch of the same version won the rename; check what it wrote
            return fetch_adapter(registry, model, version, adapter_dir)
    return target


def servable_adapter(
    registry: Registry, model: str, version: str, adapter_dir: Path, servers: Sequence[VllmServer]
) -> str:
    """The absolute folder of `model` v`version`, fetched and checked against the replicas' base."""
    check_base(servers, registry.tags(model, version).get("base_uri", ""), f"{model} v{version}")
    return str(fetch_adapter(registry, model, version, adapter_dir).resolve())
