"""S3 storage against the real local S3 API (moto server): streaming, checksums, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.errors import BadInput, Transient
from mlops.storage import CHUNK, COMMIT_MARKER, S3Store, S3Url, sha256_file
from tests.conftest import LocalStack
from tests.integration.faults import dropping_proxy

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


def test_connection_dropped_mid_upload_aborts_the_upload(store: S3Store, tmp_path: Path) -> None:
    """A link that dies inside a part's body: exit-3 error naming the upload, no upload left open."""
    big = tmp_path / "model.onnx"
    big.write_bytes(b"m" * (CHUNK + 10))
    with dropping_proxy(store.client.meta.endpoint_url) as proxy:
        flaky = S3Store(proxy.url)
        with pytest.raises(Transient, match=r"^uploading s3://it-bucket/dropped/model.onnx") as failure:
            flaky.upload_file(big, S3Url("it-bucket", "dropped/model.onnx"))
        assert proxy.dropped >= 1
    assert not getattr(failure.value, "__notes__", [])  # the abort went through: nothing to note
    assert store.incomplete_uploads(S3Url("it-bucket", "dropped/")) == []
    assert store.list(S3Url("it-bucket", "dropped/")) == []


def test_publish_names_the_upload_when_the_network_stays_down(store: S3Store, tmp_path: Path) -> None:
    """Upload, abort and staging clean-up all fail: the error is still the upload's, nothing is committed."""
    from deployment.triton.repository import Repository

    model = tmp_path / "model.onnx"
    model.write_bytes(b"m" * (CHUNK + 10))
    with dropping_proxy(store.client.meta.endpoint_url) as proxy:
        flaky = S3Store(proxy.url)
        repo = Repository(flaky, S3Url("it-bucket", "netdown"), "m")

        def network_dies(**_: object) -> None:
            proxy.network_down = True

        flaky.client.meta.events.register("before-send.s3.UploadPart", network_dies)
        with pytest.raises(Transient) as failure:
            repo.publish(1, {"model.onnx": model}, {"mlflow_version": "1"})
    message = str(failure.value)
    assert message.startswith("uploading s3://it-bucket/netdown/_staging/m/1-"), message
    assert "listing" not in message
    assert any("AbortIncompleteMultipartUpload" in note for note in failure.value.__notes__)
    assert store.list(S3Url("it-bucket", "netdown/m/")) == []  # nothing committed, nothing copied
    # the one upload left open is what the lifecycle rule is for
    left = store.incomplete_uploads(S3Url("it-bucket", "netdown/_staging/"))
    assert len(left) == 1
    for upload in store.client.list_multipart_uploads(Bucket="it-bucket", Prefix="netdown/")["Uploads"]:
        store.client.abort_multipart_upload(
            Bucket="it-bucket", Key=upload["Key"], UploadId=upload["UploadId"]
        )


def test_lifecycle_rule_of_infra_is_accepted_by_s3(store: S3Store) -> None:
    """infra/s3/lifecycle.json as docs/infra.md applies it; a copy without its days is refused."""
    from botocore.exceptions import ParamValidationError

    rule = json.loads((Path(__file__).resolve().parents[2] / "infra" / "s3" / "lifecycle.json").read_text())
    store.client.put_bucket_lifecycle_configuration(Bucket="it-bucket", LifecycleConfiguration=rule)
    kept = store.client.get_bucket_lifecycle_configuration(Bucket="it-bucket")["Rules"]
    assert kept[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    broken = json.loads(json.dumps(rule))
    del broken["Rules"][0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    broken["Rules"][0]["AbortIncompleteMultipartUpload"]["Days"] = 1
    with pytest.raises(ParamValidationError, match="Days"):
        store.client.put_bucket_lifecycle_configuration(Bucket="it-bucket", LifecycleConfiguration=broken)
    store.client.delete_bucket_lifecycle(Bucket="it-bucket")
