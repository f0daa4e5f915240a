"""S3Store.download_committed: the one reader of folders `publish_directory` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops.errors import BadInput
from mlops.storage import COMMIT_MARKER, S3Url

FOLDER = S3Url("bucket", "runs/r1/folder")


@pytest.fixture
def published(s3: Any, tmp_path: Path) -> dict[str, str]:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.bin").write_bytes(b"\x00beta")
    s3.ensure_bucket("bucket")
    manifest: dict[str, str] = s3.publish_directory(source, FOLDER)
    return manifest


def test_reads_every_file_back_and_returns_the_manifest(
    s3: Any, published: dict[str, str], tmp_path: Path
) -> None:
    manifest = s3.download_committed(FOLDER, tmp_path / "out")
    assert manifest == published == json.loads(s3.get_bytes(FOLDER.join(COMMIT_MARKER)))
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha"
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == b"\x00beta"


def test_reads_only_the_names_asked_for(s3: Any, published: dict[str, str], tmp_path: Path) -> None:
    s3.download_committed(FOLDER, tmp_path / "out", ["a.txt"])
    assert [p.name for p in (tmp_path / "out").rglob("*")] == ["a.txt"]


def test_a_file_changed_after_publishing_is_refused_and_not_left_behind(
    s3: Any, published: dict[str, str], tmp_path: Path
) -> None:
    s3.put_bytes(FOLDER.join("a.txt"), b"tampered")  # a consistent object, just not the published one
    with pytest.raises(BadInput, match=r"a\.txt: sha256 .* differs from the commit manifest's"):
        s3.download_committed(FOLDER, tmp_path / "out")
    assert not (tmp_path / "out" / "a.txt").exists()


def test_a_folder_without_its_marker_is_not_there(s3: Any, published: dict[str, str], tmp_path: Path) -> None:
    s3.delete(FOLDER.join(COMMIT_MARKER))
    with pytest.raises(BadInput, match="is not a committed prepared dataset: it has no _COMMITTED"):
        s3.download_committed(FOLDER, tmp_path / "out", what="prepared dataset")
    assert not (tmp_path / "out").exists()


def test_a_name_outside_the_manifest_is_refused(s3: Any, published: dict[str, str], tmp_path: Path) -> None:
    s3.put_bytes(FOLDER.join("extra.txt"), b"not published")
    with pytest.raises(BadInput, match=r"has no extra\.txt"):
        s3.download_committed(FOLDER, tmp_path / "out", ["extra.txt"])


def test_a_marker_that_is_not_a_manifest_is_refused(
    s3: Any, published: dict[str, str], tmp_path: Path
) -> None:
    s3.put_bytes(FOLDER.join(COMMIT_MARKER), b"[1, 2]")
    with pytest.raises(BadInput, match="is not a manifest"):
        s3.download_committed(FOLDER, tmp_path / "out")
