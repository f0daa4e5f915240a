"""training.resnet.data: the digits writer, layout validation, reproducible archives, fetching."""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from mlops.errors import EXIT_BAD_INPUT, BadInput
from tests.unit.training.factories import DIGITS_SIDE, split_tree, write_png, write_tree
from training.resnet import data

DIGITS_TOTAL = 1797
DIGITS_VAL = 360  # ceil(0.2 * 1797): sklearn rounds the test share up


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def split_of(root: Path) -> dict[str, set[str]]:
    return {split: {p.name for p in (root / split).rglob("*.png")} for split in data.SPLITS}


def bad_input(path: Path, **kwargs: object) -> BadInput:
    with pytest.raises(BadInput) as caught:
        data.load_layout(path, **kwargs)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    return caught.value


# --- digits -------------------------------------------------------------------------------------


def test_digits_same_seed_gives_identical_files(digits_dirs: dict[str, Path]) -> None:
    first, again = file_bytes(digits_dirs["seed42"]), file_bytes(digits_dirs["seed42-again"])
    assert len(first) == DIGITS_TOTAL
    assert first == again


def test_digits_other_seed_gives_other_split_of_the_same_images(digits_dirs: dict[str, Path]) -> None:
    a, b = split_of(digits_dirs["seed42"]), split_of(digits_dirs["seed7"])
    assert a["val"] != b["val"]
    assert a["train"] | a["val"] == b["train"] | b["val"]
    assert len(a["val"]) == len(b["val"]) == DIGITS_VAL


def test_digits_split_is_disjoint_stratified_rgb_imagefolder(digits_dirs: dict[str, Path]) -> None:
    from PIL import Image

    root = digits_dirs["seed42"]
    classes = [str(d) for d in range(10)]
    for split in data.SPLITS:
        assert sorted(p.name for p in (root / split).iterdir()) == classes
    names = split_of(root)
    assert not names["train"] & names["val"]
    assert len(names["train"]) + len(names["val"]) == DIGITS_TOTAL
    for label in classes:
        n_train = len(list((root / "train" / label).iterdir()))
        n_val = len(list((root / "val" / label).iterdir()))
        assert abs(n_val - 0.2 * (n_train + n_val)) <= 1, label
    with Image.open(next((root / "val" / "3").iterdir())) as image:
        assert (image.mode, image.size) == ("RGB", (DIGITS_SIDE, DIGITS_SIDE))


def test_digits_layout_validates_and_counts(digits_dirs: dict[str, Path]) -> None:
    layout = data.load_layout(digits_dirs["seed42"], require_split=True)
    assert layout.classes == [str(d) for d in range(10)]
    manifest = layout.manifest("f" * 64, "digits")
    assert manifest["totals"] == {"train": DIGITS_TOTAL - DIGITS_VAL, "val": DIGITS_VAL}
    assert manifest["num_classes"] == 10
    assert manifest["sha256"] == "f" * 64


def test_digits_refuse_images_smaller_than_the_scans(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="smaller than the 8x8"):
        data.write_digits(tmp_path, image_size=4)
    assert not any(tmp_path.iterdir())


# --- layout validation --------------------------------------------------------------------------


def test_valid_split_layout(tmp_path: Path) -> None:
    split_tree(tmp_path, classes=("cat", "dog"), train=3, val=2)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    write_png(tmp_path / "train" / "dog" / ".hidden.png")
    layout = data.load_layout(tmp_path)
    assert layout.classes == ["cat", "dog"]
    assert layout.counts() == {"train": {"cat": 3, "dog": 3}, "val": {"cat": 2, "dog": 2}}
    assert [s.arcname for s in layout.split("val")][:2] == ["val/cat/img-000.png", "val/cat/img-001.png"]


def test_class_folders_differ_between_train_and_val(tmp_path: Path) -> None:
    split_tree(tmp_path, classes=("a", "b", "c"))
    shutil.rmtree(tmp_path / "val" / "c")
    error = bad_input(tmp_path)
    assert "class folders differ between train/ and val/" in str(error)
    assert "missing in val/: ['c']" in str(error)
    assert "missing in train/: []" in str(error)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    write_tree(tmp_path, {"train/a": 2, "train/b": 0, "val/a": 1, "val/b": 1})
    error = bad_input(tmp_path)
    assert "empty class folder" in str(error)
    assert "train/b/" in str(error)


def test_a_folder_of_non_images_counts_as_empty(tmp_path: Path) -> None:
    split_tree(tmp_path)
    for image in (tmp_path / "val" / "b").iterdir():
        image.rename(image.with_suffix(".txt"))
    assert "val/b/" in str(bad_input(tmp_path))


def test_single_class_is_refused(tmp_path: Path) -> None:
    split_tree(tmp_path, classes=("only",))
    error = bad_input(tmp_path)
    assert "only one class ('only')" in str(error)
    assert "at least two" in str(error)


def test_random_bytes_named_png_is_named_as_corrupt(tmp_path: Path) -> None:
    split_tree(tmp_path)
    broken = tmp_path / "val" / "b" / "img-001.png"
    broken.write_bytes(os.urandom(64))
    error = bad_input(tmp_path)
    assert f"corrupt image {broken}" in str(error)


def test_truncated_png_is_named_as_corrupt(tmp_path: Path) -> None:
    split_tree(tmp_path)
    broken = write_png(tmp_path / "train" / "a" / "img-002.png", seed=99, side=16)
    body = broken.read_bytes()
    broken.write_bytes(body[: len(body) // 2])
    error = bad_input(tmp_path)
    assert f"corrupt image {broken}" in str(error)
    assert "truncated" in str(error)


def test_empty_folder_is_an_empty_dataset(tmp_path: Path) -> None:
    assert "empty dataset" in str(bad_input(tmp_path))


def test_split_folders_without_classes_are_an_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    error = bad_input(tmp_path)
    assert re.search(r"empty dataset: no class folders in .*train", str(error))


def test_missing_val_folder(tmp_path: Path) -> None:
    write_tree(tmp_path, {"train/a": 2, "train/b": 2})
    assert "has train/ but no val/ folder" in str(bad_input(tmp_path))


def test_missing_train_folder_is_not_resplit_from_val(tmp_path: Path) -> None:
    # Regression: a lone val/ used to be taken as a wrapper folder and split again as a flat tree.
    write_tree(tmp_path, {"val/a": 3, "val/b": 3})
    error = bad_input(tmp_path)
    assert "has val/ but no train/ folder" in str(error)


def test_missing_folder(tmp_path: Path) -> None:
    assert "dataset folder not found" in str(bad_input(tmp_path / "nope"))


def test_wrapping_folders_are_descended(tmp_path: Path) -> None:
    split_tree(tmp_path / "imagenette2-160")
    layout = data.load_layout(tmp_path)
    assert layout.root == tmp_path / "imagenette2-160"
    assert len(layout.samples) == 10


# --- flat trees ---------------------------------------------------------------------------------


def test_flat_tree_is_split_per_class_and_seeded(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 10, "b": 5})
    layout = data.load_layout(tmp_path, val_fraction=0.2, seed=1)
    assert layout.counts() == {"train": {"a": 8, "b": 4}, "val": {"a": 2, "b": 1}}
    again = data.load_layout(tmp_path, val_fraction=0.2, seed=1)
    assert again.samples == layout.samples
    others = [data.load_layout(tmp_path, val_fraction=0.2, seed=s).split("val") for s in range(2, 6)]
    assert any(o != layout.split("val") for o in others)


def test_adding_a_class_does_not_reshuffle_the_others(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 10, "b": 10})
    before = [s for s in data.load_layout(tmp_path, seed=3).samples if s.label == "a"]
    write_tree(tmp_path, {"c": 10})
    after = [s for s in data.load_layout(tmp_path, seed=3).samples if s.label == "a"]
    assert before == after


def test_flat_tree_refusals(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": 3, "b": 1})
    error = bad_input(tmp_path)
    assert f"class folder {tmp_path / 'b'} has 1 image" in str(error)
    assert "no train/ and val/ folders" in str(bad_input(tmp_path, require_split=True))
    assert "--val-fraction" in str(bad_input(tmp_path, val_fraction=1.0))


# --- archives -----------------------------------------------------------------------------------


def test_pack_is_reproducible_across_copies_and_mtimes(tmp_path: Path) -> None:
    first = split_tree(tmp_path / "one")
    second = tmp_path / "two"
    shutil.copytree(first, second)
    for path in second.rglob("*.png"):
        os.utime(path, (1_000_000, 1_000_000))
    sha_one = data.pack_dataset(data.load_layout(first), tmp_path / "one.tar.gz")
    sha_two = data.pack_dataset(data.load_layout(second), tmp_path / "two.tar.gz")
    assert sha_one == sha_two
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()
    write_png(second / "val" / "a" / "img-000.png", seed=12345)
    assert data.pack_dataset(data.load_layout(second), tmp_path / "three.tar.gz") != sha_one


def test_pack_of_digits_written_twice_has_one_sha(digits_dirs: dict[str, Path], tmp_path: Path) -> None:
    shas = {
        name: data.pack_dataset(data.load_layout(digits_dirs[name]), tmp_path / f"{name}.tar.gz")
        for name in ("seed42", "seed42-again", "seed7")
    }
    assert shas["seed42"] == shas["seed42-again"]
    assert shas["seed7"] != shas["seed42"]


def test_pack_members_are_sorted_with_fixed_metadata(tmp_path: Path) -> None:
    layout = data.load_layout(split_tree(tmp_path / "src"))
    archive = tmp_path / "d.tar.gz"
    data.pack_dataset(layout, archive)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) == sorted(s.arcname for s in layout.samples)
    assert {(m.mtime, m.mode, m.uid, m.gid, m.uname) for m in members} == {
        (data.FIXED_MTIME, 0o644, 0, 0, "")
    }


def test_archive_round_trip_through_fetch(tmp_path: Path) -> None:
    layout = data.load_layout(split_tree(tmp_path / "src", classes=("x", "y", "z")))
    archive = tmp_path / "dataset.tar.gz"
    sha = data.pack_dataset(layout, archive)
    fetched = data.fetch_dataset(str(archive), tmp_path / "work")
    assert fetched.sha256 == sha
    again = data.load_layout(fetched.root, require_split=True)
    assert again.classes == ["x", "y", "z"]
    assert again.counts() == layout.counts()


def test_archive_with_a_path_out_of_the_destination_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(BadInput, match=r"evil\.tar is not a readable tar archive"):
        data.extract_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def test_garbage_archive_is_bad_input(tmp_path: Path) -> None:
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(os.urandom(256))
    with pytest.raises(BadInput, match=r"data\.tar\.gz is not a readable tar archive"):
        data.fetch_dataset(str(archive), tmp_path / "work")


def test_fetch_local_folder_has_no_sha(tmp_path: Path) -> None:
    fetched = data.fetch_dataset(str(tmp_path), tmp_path / "work")
    assert fetched == data.FetchedDataset(tmp_path, "")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "no dataset given"),
        ("s3://bucket/datasets/data.zip", "is not a .tar.gz"),
        ("https://example.invalid/folder/", "is not a .tar.gz"),
        ("/definitely/not/here", "neither a folder"),
    ],
)
def test_fetch_refuses_what_it_cannot_read(uri: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        data.fetch_dataset(uri, tmp_path)
