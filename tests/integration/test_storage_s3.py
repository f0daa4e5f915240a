"""S3 storage against the real local S3 API (moto server): streaming, checksums, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.errors import BadInput, Transient
from mlops.storage import CHUNK, COMMIT_MARKER, S3Store, S3Url, sha256_file
from tests.conftest import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture
def store(local_stack: LocalStack) -> S3Store:
    store = S3Store(local_stack.s3_endpoint)
    store.ensure_bucket("it-bucket")
    return store


def test_multipart_round_trip_with_checksum(store: S3Store, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * (CHUNK // 256 * 2 + 17))  # more than two parts
    digest = store.upload_file(source, S3Url("it-bucket", "big/big.bin"))
    assert digest == sha256_file(source)
    parts = store.client.head_object(Bucket="it-bucket", Key="big/big.bin", PartNumber=1)
    assert parts["PartsCount"] >= 3  # really multipart
    target = tmp_path / "copy.bin"
    assert store.download_file(S3Url("it-bucket", "big/big.bin"), target) == digest
    assert target.read_bytes() == source.read_bytes()


def test_checksum_mismatch_is_bad_input_and_leaves_no_file(store: S3Store, tmp_path: Path) -> None:
    store.client.put_object(Bucket="it-bucket", Key="bad.bin", Body=b"actual", Metadata={"sha256": "0" * 64})
    target = tmp_path / "bad.bin"
    with pytest.raises(BadInput, match="checksum mismatch"):
        store.download_file(S3Url("it-bucket", "bad.bin"), target)
    assert not target.exists() and not (tmp_path / "bad.bin.part").exists()


def test_publish_directory_writes_commit_marker_last(store: S3Store, tmp_path: Path) -> None:
    (tmp_path / "model" / "1").mkdir(parents=True)
    (tmp_path / "model" / "config.pbtxt").write_text("name: 'm'")
    (tmp_path / "model" / "1" / "model.onnx").write_bytes(b"onnx")
    url = S3Url("it-bucket", "repo/m")
    manifest = store.publish_directory(tmp_path / "model", url)
    assert store.is_committed(url)
    assert json.loads(store.get_bytes(url.join(COMMIT_MARKER))) == manifest
    assert sorted(store.list(url)) == [
        "repo/m/1/model.onnx",
        f"repo/m/{COMMIT_MARKER}",
        "repo/m/config.pbtxt",
    ]


def test_failure_mid_upload_leaves_nothing_visible(store: S3Store) -> None:
    class Broken:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, size: int) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError("network dropped mid-upload")
            return b"x" * size

    with pytest.raises(ConnectionResetError):
        store.upload_stream(Broken(), S3Url("it-bucket", "half/file.bin"))  # type: ignore[arg-type]
    assert store.list(S3Url("it-bucket", "half/")) == []
    assert store.client.list_multipart_uploads(Bucket="it-bucket").get("Uploads", []) == []


def test_missing_object_is_bad_input(store: S3Store, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        store.download_file(S3Url("it-bucket", "nope"), tmp_path / "x")


def test_unreachable_s3_is_transient(tmp_path: Path) -> None:
    with pytest.raises(Transient):
        S3Store("http://127.0.0.1:9").list(S3Url("it-bucket", ""))
