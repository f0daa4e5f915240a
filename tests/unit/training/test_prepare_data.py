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
    kept, probe = data.hold_out_probe(data.load_layout(digits_dirs["seed42"]), 0.25, 42)
    assert sha == data.pack_dataset(kept, tmp_path / "d.tar.gz")
    assert result.outputs["dataset-uri"] == f"{PREFIX}/{sha}/dataset.tar.gz"
    assert result.outputs["num-classes"] == "10"
    assert store.buckets == {"bucket"}
    manifest = json.loads(store.objects[f"{PREFIX}/{sha}/manifest.json"])
    assert manifest["sha256"] == sha
    # a quarter of each class's validation images held out for the production probe
    assert manifest["totals"] == {"train": 1437, "val": 360 - len(probe.samples)}
    assert manifest["probe"]["total"] == len(probe.samples) == 90
    assert store.uploads == [f"{PREFIX}/{sha}/probe.tar.gz", f"{PREFIX}/{sha}/dataset.tar.gz"]


def test_the_probe_images_are_held_out_of_training_and_validation(digits_dirs: dict[str, Path]) -> None:
    layout = data.load_layout(digits_dirs["seed42"])
    kept, probe = data.hold_out_probe(layout, 0.25, 42)
    probe_paths = {s.path for s in probe.samples}
    assert probe_paths and not probe_paths & {s.path for s in kept.samples}
    assert probe_paths <= {s.path for s in layout.split("val")}  # never a training image
    assert len(kept.samples) + len(probe.samples) == len(layout.samples)
    assert {s.label for s in probe.samples} == set(layout.classes)  # every class, stratified
    assert all(any(s.label == c for s in kept.split("val")) for c in layout.classes)  # val keeps every class
    assert data.hold_out_probe(layout, 0.25, 42)[1] == probe  # seeded
    assert data.hold_out_probe(layout, 0.0, 42)[1].samples == []
    with pytest.raises(BadInput, match="--probe-fraction"):
        data.hold_out_probe(layout, 1.0, 42)


def test_the_probe_archive_is_fetched_beside_the_dataset(s3: object, tmp_path: Path) -> None:
    layout = data.load_layout(split_tree(tmp_path / "src", train=3, val=8))
    _, probe = data.hold_out_probe(layout, 0.25, 1)
    store = s3  # the real S3Store on moto
    store.ensure_bucket("bucket")  # type: ignore[attr-defined]
    data.pack_dataset(probe, tmp_path / "probe.tar.gz")
    store.upload_file(tmp_path / "probe.tar.gz", S3Url.parse("s3://bucket/ds/abc/probe.tar.gz"))  # type: ignore[attr-defined]
    fetched = data.fetch_probe("s3://bucket/ds/abc/dataset.tar.gz", tmp_path / "f", store)  # type: ignore[arg-type]
    assert [(s.label, s.path.name) for s in fetched] == [(s.label, s.path.name) for s in probe.samples]
    assert data.fetch_probe("s3://bucket/ds/other/dataset.tar.gz", tmp_path / "g", store) == []  # type: ignore[arg-type]
    assert data.fetch_probe(str(tmp_path / "src"), tmp_path / "h") == []


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
