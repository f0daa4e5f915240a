"""Image-folder datasets: make one from scikit-learn's digits, fetch one, validate it, pack it reproducibly.

The on-disk contract is torchvision's ImageFolder split in two: `train/<class>/<image>` and
`val/<class>/<image>`; class names are the sorted folder names. A source that is a flat
`<class>/<image>` tree is split here (stratified, seeded). Every image is decoded once before
packing, so a corrupt file fails data preparation, not an epoch of training.
"""

from __future__ import annotations

import gzip
import random
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import BadInput, Transient
from mlops.storage import S3Store, S3Url, sha256_file

SPLITS = ("train", "val")
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# A fixed timestamp for every archive member (2000-01-01): the same files give the same bytes.
FIXED_MTIME = 946_684_800
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class Sample:
    """One image of a split dataset: where it is now and where it goes in the archive."""

    split: str
    label: str
    path: Path

    @property
    def arcname(self) -> str:
        return f"{self.split}/{self.label}/{self.path.name}"


@dataclass
class DatasetLayout:
    """A validated, split image-folder dataset."""

    root: Path
    classes: list[str]
    samples: list[Sample] = field(default_factory=list)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {split: dict.fromkeys(self.classes, 0) for split in SPLITS}
        for sample in self.samples:
            counts[sample.split][sample.label] += 1
        return counts

    def manifest(self, sha256: str, source: str) -> dict[str, object]:
        counts = self.counts()
        return {
            "format": "imagefolder",
            "layout": "train/<class>/<image>, val/<class>/<image>",
            "classes": self.classes,
            "num_classes": len(self.classes),
            "counts": counts,
            "totals": {split: sum(per_class.values()) for split, per_class in counts.items()},
            "sha256": sha256,
            "source": source,
        }


# --- digits -------------------------------------------------------------------------------------


def write_digits(root: Path, image_size: int = 32, val_fraction: float = 0.2, seed: int = 42) -> Path:
    """Write scikit-learn's bundled digits (1797 8x8 images, 10 classes) as an RGB PNG ImageFolder."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if image_size < 8:
        raise BadInput(f"--image-size {image_size} is smaller than the 8x8 digits")
    digits = load_digits()
    indices = np.arange(len(digits.target))
    train_idx, val_idx = train_test_split(
        indices, test_size=val_fraction, stratify=digits.target, random_state=seed, shuffle=True
    )
    pixels = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    for split, chosen in (("train", train_idx), ("val", val_idx)):
        for index in sorted(int(i) for i in chosen):
            folder = root / split / str(int(digits.target[index]))
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pixels[index], mode="L").resize(
                (image_size, image_size), Image.Resampling.BILINEAR
            )
            image.convert("RGB").save(folder / f"digit-{index:04d}.png", format="PNG")
    return root


# --- layout and validation ----------------------------------------------------------------------


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def find_dataset_root(path: Path) -> Path:
    """Descend through single wrapping folders (`imagenette2-160/train/...`) to the dataset root."""
    current = path
    while True:
        # Stop at val/ too: a dataset that lost its train/ must fail as such, not be re-split from val/.
        if (current / "train").is_dir() or (current / "val").is_dir():
            return current
        children = _subdirs(current)
        if len(children) == 1 and _subdirs(children[0]) and not _images(current):
            current = children[0]
            continue
        return current


def _class_folders(split_dir: Path) -> dict[str, list[Path]]:
    return {folder.name: _images(folder) for folder in _subdirs(split_dir)}


def _require_classes(where: str, folders: dict[str, list[Path]], relative: str) -> None:
    if not folders:
        raise BadInput(f"empty dataset: no class folders in {where}")
    empty = [name for name, files in folders.items() if not files]
    if empty:
        paths = ", ".join(f"{relative}{name}/" for name in empty)
        raise BadInput(f"empty class folder(s) in {where}: {paths} hold no images")
    if len(folders) == 1:
        raise BadInput(
            f"only one class ({next(iter(folders))!r}) in {where}: a classifier needs at least two class folders"
        )


def scan_image_folder(
    path: Path, val_fraction: float = 0.2, seed: int = 42, require_split: bool = False
) -> DatasetLayout:
    """Read the layout of a dataset (split, or flat and split here); BadInput for any structural fault."""
    if not path.is_dir():
        raise BadInput(f"dataset folder not found: {path}")
    root = find_dataset_root(path)
    if (root / "train").is_dir() or (root / "val").is_dir():
        return _scan_split(root)
    if require_split:
        raise BadInput(f"{root} has no train/ and val/ folders")
    return _split_flat(root, val_fraction, seed)


def _scan_split(root: Path) -> DatasetLayout:
    present = [split for split in SPLITS if (root / split).is_dir()]
    missing = [split for split in SPLITS if split not in present]
    if missing:
        raise BadInput(f"{root} has {present[0]}/ but no {missing[0]}/ folder")
    folders = {split: _class_folders(root / split) for split in SPLITS}
    for split in SPLITS:
        _require_classes(f"{root / split}", folders[split], f"{split}/")
    train_classes, val_classes = set(folders["train"]), set(folders["val"])
    if train_classes != val_classes:
        raise BadInput(
            "class folders differ between train/ and val/: "
            f"missing in val/: {sorted(train_classes - val_classes)}; "
            f"missing in train/: {sorted(val_classes - train_classes)}"
        )
    classes = sorted(train_classes)
    samples = [
        Sample(split, label, path) for split in SPLITS for label in classes for path in folders[split][label]
    ]
    return DatasetLayout(root=root, classes=classes, samples=samples)


def _split_flat(root: Path, val_fraction: float, seed: int) -> DatasetLayout:
    if not 0.0 < val_fraction < 1.0:
        raise BadInput(f"--val-fraction {val_fraction} must lie strictly between 0 and 1")
    folders = _class_folders(root)
    _require_classes(str(root), folders, "")
    samples: list[Sample] = []
    for label in sorted(folders):
        files = list(folders[label])
        if len(files) < 2:
            raise BadInput(
                f"class folder {root / label} has {len(files)} image: need 2 or more to split train/val"
            )
        # A per-class generator: adding a class does not reshuffle the others.
        random.Random(f"{seed}:{label}").shuffle(files)
        n_val = min(len(files) - 1, max(1, round(len(files) * val_fraction)))
        samples += [Sample("val", label, p) for p in sorted(files[:n_val])]
        samples += [Sample("train", label, p) for p in sorted(files[n_val:])]
    samples.sort(key=lambda s: (SPLITS.index(s.split), s.label, s.path.name))
    return DatasetLayout(root=root, classes=sorted(folders), samples=samples)


def verify_images(samples: Iterable[Sample]) -> int:
    """Decode every image fully; BadInput naming the first file that does not decode."""
    from PIL import Image

    count = 0
    for sample in samples:
        try:
            with Image.open(sample.path) as image:
                image.load()
                if image.width < 1 or image.height < 1:
                    raise ValueError("zero-sized image")
        except Exception as exc:
            raise BadInput(f"corrupt image {sample.path}: {type(exc).__name__}: {exc}") from exc
        count += 1
    return count


def load_layout(
    path: Path, val_fraction: float = 0.2, seed: int = 42, require_split: bool = False
) -> DatasetLayout:
    """Scan and fully validate a dataset folder (structure and every image)."""
    layout = scan_image_folder(path, val_fraction, seed, require_split=require_split)
    if not layout.samples:
        raise BadInput(f"empty dataset: no images in {layout.root}")
    verify_images(layout.samples)
    return layout


PROBE_SPLIT = "probe"
PROBE_ARCHIVE = "probe.tar.gz"


def hold_out_probe(layout: DatasetLayout, fraction: float, seed: int) -> tuple[DatasetLayout, DatasetLayout]:
    """Take a seeded `fraction` of every class's validation images out as the probe set.

    The probe images are never trained on, stopped early on or gated on (they leave val/ too): the
    production probe (`deployment.triton.probe`) compares the live model's predictions on them
    with the release-time ones. Every class keeps at least one validation image.
    """
    if not 0.0 <= fraction < 1.0:
        raise BadInput(f"--probe-fraction {fraction} must be a fraction in [0, 1)")
    rng = random.Random(seed)
    probe: list[Sample] = []
    for label in layout.classes:
        val = sorted(
            (s for s in layout.samples if s.split == "val" and s.label == label), key=lambda s: s.path.name
        )
        rng.shuffle(val)
        take = min(len(val) - 1, round(len(val) * fraction)) if fraction > 0 else 0
        probe += [Sample(PROBE_SPLIT, s.label, s.path) for s in val[: max(take, 0)]]
    taken = {s.path for s in probe}
    kept = DatasetLayout(layout.root, layout.classes, [s for s in layout.samples if s.path not in taken])
    return kept, DatasetLayout(layout.root, layout.classes, sorted(probe, key=lambda s: s.arcname))


def fetch_probe(dataset_uri: str, workdir: Path, store: S3Store | None = None) -> list[Sample]:
    """The probe images held out beside an s3:// dataset archive (`probe.tar.gz`); [] when it has none
    (a local folder, or a dataset prepared before probes existed)."""
    if not dataset_uri.startswith("s3://"):
        return []
    url = S3Url.parse(f"{dataset_uri.rstrip('/').rsplit('/', 1)[0]}/{PROBE_ARCHIVE}")
    store = store or S3Store()
    if not store.exists(url):
        return []
    archive = workdir / PROBE_ARCHIVE
    store.download_file(url, archive)
    root = extract_archive(archive, workdir / "probe") / PROBE_SPLIT
    found = [
        Sample(PROBE_SPLIT, path.parent.name, path)
        for path in root.glob("*/*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(found, key=lambda s: s.arcname)


# --- archives -----------------------------------------------------------------------------------


def pack_dataset(layout: DatasetLayout, out: Path) -> str:
    """Write a reproducible tar.gz (sorted members, fixed owner/mode/mtime); returns its sha256."""
    entries = sorted((sample.arcname, sample.path) for sample in layout.samples)
    arcnames = [name for name, _ in entries]
    if len(set(arcnames)) != len(arcnames):
        raise BadInput("two images map to the same archive path")
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for arcname, path in entries:
            info = tarfile.TarInfo(arcname)
            info.size = path.stat().st_size
            info.mtime = FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return sha256_file(out)


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a tar(.gz) safely (no absolute paths, links out of `dest` or devices)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BadInput(f"{archive.name} is not a readable tar archive: {type(exc).__name__}: {exc}") from exc
    return dest


def download_url(url: str, path: Path) -> Path:
    """Stream an http(s) URL to `path`; 5xx and network faults are transient, 4xx is bad input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as answer, path.open("wb") as handle:
            shutil.copyfileobj(answer, handle, 1024 * 1024)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise Transient(f"downloading {url}: HTTP {exc.code}") from exc
        raise BadInput(f"downloading {url}: HTTP {exc.code} {exc.reason}") from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        raise Transient(f"downloading {url}: {exc}") from exc
    return path


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class FetchedDataset:
    """A dataset made local: its folder and the sha256 of the archive it came in ("" for a folder)."""

    root: Path
    sha256: str


def fetch_dataset(uri: str, workdir: Path, store: S3Store | None = None) -> FetchedDataset:
    """Make the dataset at `uri` (s3:// or http(s):// archive, local archive or folder) a local folder."""
    if not uri:
        raise BadInput("no dataset given")
    if uri.startswith(("s3://", "http://", "https://")):
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        if not is_archive(name):
            raise BadInput(f"{uri} is not a .tar.gz / .tgz / .tar archive")
        archive = workdir / "download" / name
        if uri.startswith("s3://"):
            (store or S3Store()).download_file(S3Url.parse(uri), archive)
        else:
            download_url(uri, archive)
        return FetchedDataset(extract_archive(archive, workdir / "extracted"), sha256_file(archive))
    local = Path(uri)
    if local.is_dir():
        return FetchedDataset(local, "")
    if local.is_file() and is_archive(local.name):
        return FetchedDataset(extract_archive(local, workdir / "extracted"), sha256_file(local))
    raise BadInput(
        f"dataset {uri!r} is neither a folder, a .tar.gz archive, nor an s3:// or https:// URL of one"
    )
