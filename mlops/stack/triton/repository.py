"""The Triton model repository layout on S3, as the stand-in reads it.

    <root>/<model>/config.pbtxt
    <root>/<model>/<version>/model.onnx        (any other files of the version come along)
    <root>/<model>/<version>/_COMMITTED         written last by the publisher

A version directory without `_COMMITTED` is still being written (or was abandoned) and is
invisible: it is neither listed nor loaded. Every top-level directory is a model, as Triton
sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import BadInput, Transient
from mlops.stack.triton.errors import Code, ServingError
from mlops.storage import COMMIT_MARKER, S3Store, S3Url

CONFIG_FILE = "config.pbtxt"


@dataclass
class ModelListing:
    """What the repository holds for one model at one moment."""

    name: str
    config_text: str | None = None
    # committed version -> keys of its files (marker excluded)
    versions: dict[int, list[str]] = field(default_factory=dict)
    exists: bool = False


class S3ModelRepository:
    """Reads models out of `s3://bucket/prefix` (listing + get; never writes)."""

    def __init__(self, root: S3Url, store: S3Store) -> None:
        self.root = root
        self.store = store

    def __str__(self) -> str:
        return str(self.root)

    def _prefix(self, *parts: str) -> str:
        key = self.root.join(*parts).key if parts else self.root.key
        return key.rstrip("/") + "/" if key else ""

    def _keys(self, prefix: str) -> list[str]:
        try:
            return self.store.list(S3Url(self.root.bucket, prefix))
        except BadInput:  # no bucket yet: an empty repository
            return []
        except Transient as exc:
            raise ServingError(Code.INTERNAL, f"model repository {self.root} unreachable: {exc}") from exc

    def model_names(self) -> list[str]:
        """Every model directory in the repository, sorted."""
        prefix = self._prefix()
        names = {
            key[len(prefix) :].split("/", 1)[0] for key in self._keys(prefix) if "/" in key[len(prefix) :]
        }
        return sorted(n for n in names if n)

    def listing(self, model: str) -> ModelListing:
        """The model's config text and its committed versions with their files."""
        prefix = self._prefix(model)
        found = ModelListing(model)
        files: dict[int, list[str]] = {}
        committed: set[int] = set()
        for key in self._keys(prefix):
            found.exists = True
            relative = key[len(prefix) :]
            head, _, rest = relative.partition("/")
            if relative == CONFIG_FILE:
                found.config_text = self._read_text(key)
            elif head.isdigit() and rest and int(head) > 0:
                if rest == COMMIT_MARKER:
                    committed.add(int(head))
                else:
                    files.setdefault(int(head), []).append(key)
        found.versions = {v: sorted(files.get(v, [])) for v in sorted(committed)}
        return found

    def _read_text(self, key: str) -> str:
        try:
            return self.store.get_bytes(S3Url(self.root.bucket, key)).decode()
        except (BadInput, Transient) as exc:
            raise ServingError(Code.INTERNAL, f"cannot read {key} from {self.root}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ServingError(Code.INVALID_ARG, f"{key} is not UTF-8 text") from exc

    def download_version(self, listing: ModelListing, version: int, target: Path) -> Path:
        """Copy a committed version's files into `target` (checksums verified); returns `target`."""
        prefix = self._prefix(listing.name, str(version))
        for key in listing.versions[version]:
            relative = key[len(prefix) :]
            try:
                self.store.download_file(S3Url(self.root.bucket, key), target / relative)
            except (BadInput, Transient) as exc:
                raise ServingError(
                    Code.INTERNAL, f"failed to fetch '{listing.name}' version {version}: {exc}"
                ) from exc
        return target
