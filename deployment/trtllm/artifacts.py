"""Folders handed between the TensorRT-LLM steps on S3: published with a commit marker, read back verified."""

from __future__ import annotations

import json
from pathlib import Path

from mlops.errors import BadInput
from mlops.storage import COMMIT_MARKER, S3Store, S3Url


def download_committed(store: S3Store, url: S3Url, destination: Path) -> Path:
    """Every file of a committed folder into `destination`, each checked against the commit manifest."""
    if not store.is_committed(url):
        raise BadInput(f"{url} has no {COMMIT_MARKER}: the step that writes it did not finish")
    manifest: dict[str, str] = json.loads(store.get_bytes(url.join(COMMIT_MARKER)))
    for name, expected in sorted(manifest.items()):
        digest = store.download_file(url.join(name), destination / name)
        if digest != expected:
            raise BadInput(f"{url}/{name}: sha256 {digest} differs from the commit manifest's {expected}")
    return destination
