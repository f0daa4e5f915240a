"""The deployable package of a registered ONNX version, fetched from MLflow and verified.

A version's source is the export run's `onnx/` folder: `model.onnx`, `config.pbtxt`,
`meta.json` (with `onnx_sha256`) and `golden/` (inputs, expected labels and probabilities,
written by the equivalence gate). The sha256 of `model.onnx` must match both `meta.json` and
the version's `onnx_sha256` tag, and the file must load as its config.pbtxt describes it
(`deployment.triton.loadable`); anything missing, different or unloadable is bad input (exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployment.triton.loadable import check_loadable
from mlops.errors import BadInput
from mlops.registry import Registry
from mlops.storage import sha256_file
from mlops.tracking import download_artifacts

GOLDEN_FILES = ("inputs.npy", "probabilities.npy", "labels.json")


@dataclass(frozen=True)
class Package:
    """A verified ONNX version on local disk."""

    model: str
    version: str
    run_id: str | None
    root: Path
    sha256: str
    triton_model_name: str

    @property
    def onnx(self) -> Path:
        return self.root / "model.onnx"

    @property
    def config(self) -> Path:
        return self.root / "config.pbtxt"

    @property
    def golden(self) -> Path:
        return self.root / "golden"


def fetch_package(registry: Registry, model: str, version: str, destination: Path) -> Package:
    """Download `model` v`version` and check it is complete and what was registered."""
    tags = registry.tags(model, version)
    root = download_artifacts(registry.source(model, version), destination)
    onnx_path = root / "model.onnx"
    if not onnx_path.is_file():
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise BadInput(
            f"{model} v{version} has no model.onnx in its artifacts (found: {', '.join(found) or 'nothing'})"
        )
    if not (root / "config.pbtxt").is_file():
        raise BadInput(f"{model} v{version} has no config.pbtxt next to model.onnx")
    meta: dict[str, Any] = {}
    if (root / "meta.json").is_file():
        meta = json.loads((root / "meta.json").read_text())
    expected = {tags.get("onnx_sha256", ""), str(meta.get("onnx_sha256", ""))} - {""}
    if not expected:
        raise BadInput(
            f"{model} v{version} records no sha256 (tag onnx_sha256 / meta.json); refusing to deploy it"
        )
    actual = sha256_file(onnx_path)
    if expected != {actual}:
        raise BadInput(
            f"checksum mismatch for {model} v{version} model.onnx: registered {', '.join(sorted(expected))}, "
            f"downloaded {actual}"
        )
    # a matching checksum only proves it is the registered file, not that a server can load it
    check_loadable(onnx_path, (root / "config.pbtxt").read_text(), f"{model} v{version}")
    name = tags.get("triton_model_name") or str(meta.get("triton_model_name", "")) or model
    return Package(model, version, registry.run_id(model, version), root, actual, name)


def load_golden(package_golden: Path) -> tuple[Any, Any, dict[str, Any]]:
    """(inputs, expected probabilities, labels.json) of a package; BadInput when absent."""
    import numpy as np

    missing = [name for name in GOLDEN_FILES if not (package_golden / name).is_file()]
    if missing:
        raise BadInput(f"golden samples missing in {package_golden}: {', '.join(missing)}")
    labels: dict[str, Any] = json.loads((package_golden / "labels.json").read_text())
    return np.load(package_golden / "inputs.npy"), np.load(package_golden / "probabilities.npy"), labels
