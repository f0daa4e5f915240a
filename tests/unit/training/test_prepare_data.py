"""training.resnet.prepare_data: the dataset lands content-addressed, once, manifest last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.errors import BadInput
from mlops.storage import S3Url
from tests.unit.training.factories import DIGITS_SIDE, MemoryStore, split_tree
from training.resnet import data, prepare_data

PREFIX = "s3://bucket/datasets/resnet"


def config(source: str, **values: object) -> prepare_data.Config:
    return prepare_data.Config(source=source, dataset_prefix=PREFIX, **values)


def test_digits_run_is_content_addressed(digits_dirs: dict[str, Path], tmp_path: Path) -> None:
    store = MemoryStore()
    result = prepare_data.run(config("digits", image_size=DIGITS_SIDE, seed=42), store=store)
    sha = result.outputs["dataset-sha256"]
    # Same seed and size as the fixture's folder: the step's archive has the same content address.
    assert sha == data.pack_dataset(data.load_layout(digits_dirs["seed42"]), tmp_path / "d.tar.gz")
    assert result.outputs["dataset-uri"] == f"{PREFIX}/{sha}/dataset.tar.gz"
    assert result.outputs["num-classes"] == "10"
    assert store.buckets == {"bucket"}
    manifest = json.loads(store.objects[f"{PREFIX}/{sha}/manifest.json"])
    assert manifest["sha256"] == sha
    assert manifest["totals"] == {"train": 1437, "val": 360}
    assert store.uploads == [f"{PREFIX}/{sha}/dataset.tar.gz"]


def test_same_folder_twice_uploads_once(tmp_path: Path) -> None:
    source = split_tree(tmp_path / "src")
    store = MemoryStore()
    first = prepare_data.run(config(str(source)), store=store)
    second = prepare_data.run(config(str(source)), store=store)
    assert first.outputs == second.outputs
    assert len(store.uploads) == 1
    assert "already there" in second.summary
    assert "uploaded" in first.summary


def test_publish_restores_a_missing_manifest_without_reuploading(tmp_path: Path) -> None:
    archive = tmp_path / "dataset.tar.gz"
    archive.write_bytes(b"archive")
    store = MemoryStore()
    prefix = S3Url.parse(PREFIX)
    url, uploaded = prepare_data.publish(store, prefix, archive, "abc", {"sha256": "abc"})
    assert (str(url), uploaded) == (f"{PREFIX}/abc/dataset.tar.gz", True)
    del store.objects[f"{PREFIX}/abc/manifest.json"]
    _, uploaded = prepare_data.publish(store, prefix, archive, "abc", {"sha256": "abc"})
    assert uploaded is False
    assert len(store.uploads) == 1
    assert json.loads(store.objects[f"{PREFIX}/abc/manifest.json"]) == {"sha256": "abc"}


def test_bad_dataset_uploads_nothing(tmp_path: Path) -> None:
    source = split_tree(tmp_path / "src", classes=("only",))
    store = MemoryStore()
    with pytest.raises(BadInput, match="only one class"):
        prepare_data.run(config(str(source)), store=store)
    assert store.objects == {}


def test_flat_source_is_split_with_the_configured_fraction(tmp_path: Path) -> None:
    from tests.unit.training.factories import write_tree

    source = write_tree(tmp_path / "flat", {"a": 10, "b": 10})
    layout = prepare_data.build_dataset(config(str(source), val_fraction=0.3, seed=5), tmp_path / "work")
    assert layout.counts() == {"train": {"a": 7, "b": 7}, "val": {"a": 3, "b": 3}}
