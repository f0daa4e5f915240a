"""The Triton model repository on the real local S3 API: version numbers, staged atomic publish."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from deployment.triton.repository import MODEL_FILE, STAGING, Repository, served_versions, with_versions
from mlops.errors import BadInput
from mlops.storage import COMMIT_MARKER, S3Store, S3Url, sha256_file
from tests.conftest import LocalStack

pytestmark = pytest.mark.integration

CONFIG = 'name: "x"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'


@pytest.fixture
def repo(local_stack: LocalStack) -> Repository:
    store = S3Store(local_stack.s3_endpoint)
    store.ensure_bucket("it-models")
    return Repository(store, S3Url("it-models", f"triton-{uuid.uuid4().hex[:6]}"), "resnet")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"onnx-bytes" * 1000)
    return path


def _keys(repo: Repository, *parts: str) -> list[str]:
    url = repo.root.join(*parts)
    return repo.store.list(S3Url(url.bucket, url.key.rstrip("/") + "/"))


def test_publish_lays_out_a_committed_version_and_cleans_staging(repo: Repository, model_file: Path) -> None:
    assert repo.next_version() == 1
    manifest = repo.publish(1, {MODEL_FILE: model_file}, {"mlflow_version": "3", "config_pbtxt": CONFIG})
    assert manifest[MODEL_FILE] == sha256_file(model_file)
    keys = sorted(k.rsplit("/", 2)[-2] + "/" + k.rsplit("/", 1)[-1] for k in _keys(repo, "resnet"))
    assert keys == ["1/_COMMITTED", "1/metadata.json", "1/model.onnx"]
    assert repo.store.head_sha256(repo.version_url(1).join(MODEL_FILE)) == manifest[MODEL_FILE]
    assert repo.read_metadata(1)["mlflow_version"] == "3"
    assert _keys(repo, STAGING) == []
    assert repo.committed_versions() == [1]
    assert repo.next_version() == 2


def test_an_existing_version_directory_is_never_overwritten(repo: Repository, model_file: Path) -> None:
    repo.publish(1, {MODEL_FILE: model_file}, {})
    with pytest.raises(BadInput, match="already exists"):
        repo.publish(1, {MODEL_FILE: model_file}, {})


class FailingCopies:
    """The real store, but copying `model.onnx` fails like a connection dropped mid-publish."""

    def __init__(self, store: S3Store) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def copy(self, source: S3Url, target: S3Url) -> None:
        if target.key.endswith(MODEL_FILE):
            raise ConnectionError("connection reset while copying")
        self.store.copy(source, target)


def test_failure_mid_publish_leaves_no_committed_version_and_the_number_is_not_reused(
    repo: Repository, model_file: Path
) -> None:
    broken = Repository(FailingCopies(repo.store), repo.root, repo.model)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        broken.publish(1, {MODEL_FILE: model_file}, {})
    assert repo.committed_versions() == []
    assert not repo.store.exists(repo.version_url(1).join(MODEL_FILE))
    assert not repo.store.exists(repo.version_url(1).join(COMMIT_MARKER))
    assert _keys(repo, STAGING) == []  # staging cleaned even on failure
    assert repo.next_version() == 2  # the half-written number 1 is skipped, never reused


def test_concurrent_publishers_under_the_mutex_get_distinct_numbers(
    repo: Repository, model_file: Path
) -> None:
    lock = threading.Lock()  # stands in for the workflow's Argo mutex around next_version + publish
    chosen: list[int] = []

    def publish() -> None:
        with lock:
            number = repo.next_version()
            repo.publish(number, {MODEL_FILE: model_file}, {})
            chosen.append(number)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(chosen) == [1, 2, 3, 4]
    assert repo.committed_versions() == [1, 2, 3, 4]


def test_served_versions_live_in_one_atomic_config_object(repo: Repository) -> None:
    assert repo.read_config() is None
    repo.write_config(with_versions(CONFIG, [3, 1], "resnet"))
    text = repo.read_config()
    assert text is not None
    assert served_versions(text) == [1, 3]
    assert 'name: "resnet"' in text
