"""The local S3 service keeps its objects on disk: across `mlops down`/`up`, a `kill -9`, and until `--purge`."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from mlops.errors import BadInput
from mlops.stack.manager import StackManager, free_port
from mlops.stack.services import LOCAL_CREDENTIALS, Ports, default_services
from mlops.storage import CHUNK, S3Store, S3Url

pytestmark = pytest.mark.integration

BUCKET = "durable-bucket"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)


def s3_manager(state_dir: Path, port: int) -> StackManager:
    ports = Ports(s3=port)
    services = [s for s in default_services(state_dir, ports, sys.executable) if s.name == "s3"]
    return StackManager(state_dir, services, ports)


def write_objects(store: S3Store, tmp_path: Path) -> dict[str, str]:
    """A multipart object (two parts), a small one, and one deleted again; key -> sha256."""
    store.ensure_bucket(BUCKET)
    big = tmp_path / "model.onnx"
    big.write_bytes(os.urandom(CHUNK + 1234))
    written = {"triton/m/1/model.onnx": store.upload_file(big, S3Url(BUCKET, "triton/m/1/model.onnx"))}
    store.put_bytes(S3Url(BUCKET, "triton/m/1/_COMMITTED"), b"{}")
    written["triton/m/1/_COMMITTED"] = store.head_sha256(S3Url(BUCKET, "triton/m/1/_COMMITTED")) or ""
    store.put_bytes(S3Url(BUCKET, "gone.txt"), b"deleted before the restart")
    store.delete(S3Url(BUCKET, "gone.txt"))
    return written


def assert_kept(store: S3Store, written: dict[str, str], tmp_path: Path) -> None:
    assert sorted(store.list(S3Url(BUCKET, ""))) == sorted(written)
    for key, digest in written.items():
        # the download verifies the sha256 kept in the object's metadata
        assert store.download_file(S3Url(BUCKET, key), tmp_path / "check" / key) == digest
        assert store.head_sha256(S3Url(BUCKET, key)) == digest


def test_objects_survive_down_and_up(tmp_path: Path) -> None:
    port = free_port()
    manager = s3_manager(tmp_path / "stack", port)
    manager.up(progress=print)
    try:
        store = S3Store(f"http://127.0.0.1:{port}")
        written = write_objects(store, tmp_path)
        manager.down(progress=print)
        manager.up(progress=print)
        assert_kept(store, written, tmp_path)
        assert "restored 1 bucket(s), 2 object(s)" in manager.tail("s3")
    finally:
        manager.down(progress=print)


def test_objects_survive_kill_9(tmp_path: Path) -> None:
    port = free_port()
    manager = s3_manager(tmp_path / "stack", port)
    manager.up(progress=print)
    try:
        store = S3Store(f"http://127.0.0.1:{port}")
        written = write_objects(store, tmp_path)
        pid = manager.pid(manager.services[0])
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # no shutdown hook runs: only what was written through survives
        deadline = time.monotonic() + 10
        while manager.pid(manager.services[0]) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        manager.up(progress=print)
        assert_kept(store, written, tmp_path)
    finally:
        manager.down(progress=print)


def test_down_purge_is_what_empties_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops.cli import main

    port = free_port()
    state = tmp_path / "stack"
    monkeypatch.setenv("MLOPS_S3_PORT", str(port))
    manager = s3_manager(state, port)
    manager.up(progress=print)
    store = S3Store(f"http://127.0.0.1:{port}")
    try:
        write_objects(store, tmp_path)
    finally:
        assert main(["down", "--purge", "--state-dir", str(state)]) == 0
    assert manager.pid(manager.services[0]) is None
    assert not state.exists()
    manager.up(progress=print)
    try:
        with pytest.raises(BadInput, match="NoSuchBucket"):
            store.list(S3Url(BUCKET, ""))
    finally:
        manager.down(progress=print)


def process_tree_rss(pid: int) -> int:
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def test_memory_of_a_moved_model_package_is_returned(tmp_path: Path) -> None:
    """A 45 MB package (the ResNet ONNX's size) uploaded in parts and read back four times leaves
    the service's RSS where it was: the buffers are given back when freed (`RETURN_FREED_MEMORY`)
    and a replaced object's cycles are collected at once. Measured without both: 30-85 MiB more
    resident after such a run; with both: the same RSS to the MiB."""
    port = free_port()
    manager = s3_manager(tmp_path / "stack", port)
    assert manager.services[0].env.get("MALLOC_MMAP_THRESHOLD_")
    manager.up(progress=print)
    try:
        store = S3Store(f"http://127.0.0.1:{port}")
        store.ensure_bucket(BUCKET)
        package = tmp_path / "model.onnx"
        package.write_bytes(os.urandom(45 * 2**20))
        pid = manager.pid(manager.services[0])
        assert pid is not None
        before = process_tree_rss(pid)
        for attempt in range(4):
            url = S3Url(BUCKET, f"triton/m/{attempt % 2}/model.onnx")
            store.upload_file(package, url)
            store.download_file(url, tmp_path / "back" / str(attempt))
        grown_mib = (process_tree_rss(pid) - before) / 2**20
        assert grown_mib < 15, f"S3 kept {grown_mib:.0f} MiB after moving a 45 MB package 4 times"
    finally:
        manager.down(progress=print)
