"""The Triton model repository on S3: layout, version numbers, atomic publish, served versions.

Layout (what NVIDIA Triton reads with `--model-repository=s3://...`):

    <root>/<model>/config.pbtxt               version_policy { specific { versions: [...] } }
    <root>/<model>/<N>/model.onnx
    <root>/<model>/<N>/metadata.json          MLflow version, run, sha256, created
    <root>/<model>/<N>/_COMMITTED             written last: the version is complete
    <root>/<model>/_withdrawn/<N>             a version that failed to serve, removed (number kept)
    <root>/_staging/<model>/<N>-<id>/...      uploads land here first

What a server loads is decided by `config.pbtxt`'s `specific` version list, a single object
replaced atomically: a version directory that is still being copied is never listed there, so
neither Triton nor the stand-in can load half a version. `_COMMITTED` is checked before a
version is ever listed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import BadInput, MlopsError
from mlops.storage import COMMIT_MARKER, ObjectStore, S3Url

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.pbtxt"
STAGING = "_staging"
WITHDRAWN = "_withdrawn"
_VERSION_DIR = re.compile(r"^(\d+)/")


@dataclass(frozen=True)
class Repository:
    """One model's place in a Triton repository on S3."""

    store: ObjectStore
    root: S3Url
    model: str

    @property
    def model_url(self) -> S3Url:
        return self.root.join(self.model)

    def version_url(self, version: int) -> S3Url:
        return self.model_url.join(str(version))

    def config_url(self) -> S3Url:
        return self.model_url.join(CONFIG_FILE)

    def version_dirs(self) -> set[int]:
        """Every numbered directory, complete or not (so a number is never reused)."""
        prefix = self.model_url.key.rstrip("/") + "/"
        found = set()
        for key in self.store.list(S3Url(self.root.bucket, prefix)):
            match = _VERSION_DIR.match(key[len(prefix) :])
            if match:
                found.add(int(match.group(1)))
        return found

    def committed_versions(self) -> list[int]:
        return sorted(
            v for v in self.version_dirs() if self.store.exists(self.version_url(v).join(COMMIT_MARKER))
        )

    def withdrawn_versions(self) -> set[int]:
        prefix = self.model_url.join(WITHDRAWN).key.rstrip("/") + "/"
        names = (key[len(prefix) :] for key in self.store.list(S3Url(self.root.bucket, prefix)))
        return {int(name) for name in names if name.isdigit()}

    def next_version(self) -> int:
        """One above every number ever used (withdrawn ones too); the caller holds the model's mutex."""
        return max(self.version_dirs() | self.withdrawn_versions(), default=0) + 1

    def withdraw(self, version: int, reason: str) -> None:
        """Remove a version that failed to serve: `_COMMITTED` first (from then on no reader lists
        it), then its files; a `_withdrawn/<N>` record keeps the number from being reused."""
        target = self.version_url(version)
        self.store.put_bytes(
            self.model_url.join(WITHDRAWN, str(version)),
            json.dumps({"version": version, "reason": reason}, sort_keys=True).encode(),
        )
        self.store.delete(target.join(COMMIT_MARKER))
        for key in self.store.list(S3Url(target.bucket, target.key.rstrip("/") + "/")):
            self.store.delete(S3Url(target.bucket, key))

    def publish(self, version: int, files: dict[str, Path], metadata: dict[str, Any]) -> dict[str, str]:
        """Upload to a staging prefix, copy into `<model>/<version>/`, verify every checksum, commit.

        Returns the manifest (relative name -> sha256). Refuses a version directory that exists.
        """
        target = self.version_url(version)
        if self.store.list(S3Url(target.bucket, target.key.rstrip("/") + "/")):
            raise BadInput(f"{target} already exists; version numbers are never reused")
        staging = self.root.join(STAGING, self.model, f"{version}-{uuid.uuid4().hex[:8]}")
        payload = dict(files)
        meta_bytes = json.dumps(metadata, indent=2, sort_keys=True).encode()
        manifest: dict[str, str] = {}
        try:
            for name, path in sorted(payload.items()):
                manifest[name] = self.store.upload_file(path, staging.join(name))
            self.store.put_bytes(staging.join(METADATA_FILE), meta_bytes)
            manifest[METADATA_FILE] = self.store.head_sha256(staging.join(METADATA_FILE)) or ""
            # model.onnx last, so a reader without the marker check still cannot see a model early
            for name in sorted(manifest, key=lambda n: n == MODEL_FILE):
                self.store.copy(staging.join(name), target.join(name))
                copied = self.store.head_sha256(target.join(name))
                if copied != manifest[name]:
                    raise BadInput(
                        f"checksum mismatch after copying {name} to {target}: {copied} != {manifest[name]}"
                    )
            self.store.put_bytes(
                target.join(COMMIT_MARKER), json.dumps(manifest, indent=2, sort_keys=True).encode()
            )
        finally:
            self.remove_staging(staging)
        return manifest

    def remove_staging(self, staging: S3Url) -> None:
        """Best effort: a staging prefix is never read, so failing to delete it must not replace
        the publish's own outcome (the error of a failed upload, or a committed version)."""
        try:
            for key in self.store.list(S3Url(staging.bucket, staging.key.rstrip("/") + "/")):
                self.store.delete(S3Url(staging.bucket, key))
        except MlopsError as exc:
            print(f"warning: staging prefix {staging} not removed ({exc}); nothing reads it", file=sys.stderr)

    def read_metadata(self, version: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.store.get_bytes(self.version_url(version).join(METADATA_FILE)))
        return data

    def read_config(self) -> str | None:
        return (
            self.store.get_bytes(self.config_url()).decode() if self.store.exists(self.config_url()) else None
        )

    def write_config(self, text: str) -> None:
        self.store.put_bytes(self.config_url(), text.encode())


def with_versions(config_text: str, versions: list[int], model_name: str) -> str:
    """`config_text` with `name` set and `version_policy` = exactly `versions` (Triton's ModelConfig)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(config_text, config)
    except text_format.ParseError as exc:
        raise BadInput(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from exc
    if not versions:
        raise BadInput("a served version list cannot be empty; unload the model instead")
    config.name = model_name
    config.version_policy.Clear()
    config.version_policy.specific.versions.extend(sorted(set(versions)))
    return str(text_format.MessageToString(config))


def served_versions(config_text: str) -> list[int]:
    """The `specific` versions a config serves ([] for latest/all policies, which we never write)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    text_format.Parse(config_text, config)
    return sorted(int(v) for v in config.version_policy.specific.versions)


def version_metadata(
    *, mlflow_model: str, mlflow_version: str, run_id: str | None, sha256: str, workflow: str
) -> dict[str, Any]:
    return {
        "mlflow_model": mlflow_model,
        "mlflow_version": mlflow_version,
        "run_id": run_id or "",
        "sha256": sha256,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workflow": workflow,
    }
