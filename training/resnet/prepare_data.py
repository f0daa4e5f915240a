"""Step: make a validated, content-addressed image-folder dataset on S3.

`--source digits` writes scikit-learn's bundled digits (real 8x8 scans, 10 classes) as PNGs;
any other source (folder, s3:// or https:// archive) is read as an ImageFolder, split if flat.
The dataset is packed reproducibly and stored at `<prefix>/<sha256>/dataset.tar.gz` with a
`manifest.json`; the same data always lands at the same address, and is uploaded only once.
`--probe-fraction` of every class's validation images is held out beside it as `probe.tar.gz`
(`probe/<class>/<image>`): never trained, stopped early or gated on; the equivalence gate
preprocesses them into the ONNX package and the production probe (`deployment.triton.probe`)
watches the live model's predictions on them.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url
from training.resnet import data

ARCHIVE_NAME = "dataset.tar.gz"
MANIFEST_NAME = "manifest.json"


class Config(StepConfig):
    source: str = Field(
        "digits",
        description="'digits' (scikit-learn's bundled digits), a local ImageFolder, "
        "or an s3:// / https:// .tar.gz of one (split train/ val/, or flat <class>/ folders)",
    )
    dataset_prefix: str = Field(
        "s3://mlops-data/datasets/resnet", description="S3 prefix; the dataset goes to <prefix>/<sha256>/"
    )
    image_size: int = Field(32, ge=8, le=1024, description="side in pixels of the written digits PNGs")
    val_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="fraction of each class held out for validation (digits or a flat tree)",
    )
    seed: int = Field(42, description="seed of the stratified train/val split")
    probe_fraction: float = Field(
        0.25,
        ge=0.0,
        lt=1.0,
        description="fraction of each class's validation images held out for the production probe (0: none)",
    )


def build_dataset(cfg: Config, workdir: Path) -> data.DatasetLayout:
    """Turn the configured source into a validated, split layout on local disk."""
    if cfg.source == "digits":
        root = data.write_digits(workdir / "digits", cfg.image_size, cfg.val_fraction, cfg.seed)
    else:
        root = data.fetch_dataset(cfg.source, workdir).root
    return data.load_layout(root, cfg.val_fraction, cfg.seed)


def publish(
    store: S3Store,
    prefix: S3Url,
    archive: Path,
    sha256: str,
    manifest: dict[str, object],
    probe: Path | None = None,
) -> tuple[S3Url, bool]:
    """Upload archive (and the probe archive) then manifest under `<prefix>/<sha256>/`; skip what is
    already there."""
    target = prefix.join(sha256)
    archive_url, manifest_url = target.join(ARCHIVE_NAME), target.join(MANIFEST_NAME)
    store.ensure_bucket(prefix.bucket)
    uploaded = False
    if probe is not None and not store.exists(target.join(data.PROBE_ARCHIVE)):
        store.upload_file(probe, target.join(data.PROBE_ARCHIVE))
        uploaded = True
    if not store.exists(archive_url):
        store.upload_file(archive, archive_url)
        uploaded = True
    # The manifest goes last: its presence says the archive beside it is complete.
    if uploaded or not store.exists(manifest_url):
        store.put_bytes(manifest_url, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return archive_url, uploaded


def run(cfg: Config, store: S3Store | None = None) -> StepResult:
    prefix = S3Url.parse(cfg.dataset_prefix.rstrip("/"))
    with tempfile.TemporaryDirectory(prefix="prepare-data-") as tmp:
        workdir = Path(tmp)
        layout, probe = data.hold_out_probe(build_dataset(cfg, workdir), cfg.probe_fraction, cfg.seed)
        sha256 = data.pack_dataset(layout, workdir / ARCHIVE_NAME)
        manifest = layout.manifest(sha256, cfg.source)
        probe_archive = None
        if probe.samples:
            probe_archive = workdir / data.PROBE_ARCHIVE
            manifest["probe"] = {
                "archive": data.PROBE_ARCHIVE,
                "sha256": data.pack_dataset(probe, probe_archive),
                "counts": {c: len([s for s in probe.samples if s.label == c]) for c in probe.classes},
                "total": len(probe.samples),
            }
        print(json.dumps({"classes": layout.classes, "totals": manifest["totals"]}), flush=True)
        archive_url, uploaded = publish(
            store or S3Store(), prefix, workdir / ARCHIVE_NAME, sha256, manifest, probe_archive
        )
    return StepResult(
        outputs={
            "dataset-uri": str(archive_url),
            "num-classes": str(len(layout.classes)),
            "dataset-sha256": sha256,
        },
        summary=(
            f"{len(layout.classes)} classes, {manifest['totals']} images "
            f"(+{len(probe.samples)} held out for the probe) -> {archive_url} "
            f"({'uploaded' if uploaded else 'already there'})"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
