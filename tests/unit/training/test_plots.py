"""training.resnet.plots: each figure is a real PNG of the expected size."""

from __future__ import annotations

from pathlib import Path

from training.resnet import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    assert path.is_file()
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_confusion_matrix_png(tmp_path: Path) -> None:
    out = plots.confusion_matrix_png([[5, 1], [0, 4]], ["cat", "dog"], tmp_path / "cm.png", title="t")
    assert out == tmp_path / "cm.png"
    assert png_size(out) == (400, 400)


def test_confusion_matrix_png_grows_with_classes(tmp_path: Path) -> None:
    classes = [str(i) for i in range(12)]
    matrix = [[int(i == j) * 3 for j in range(12)] for i in range(12)]
    assert png_size(plots.confusion_matrix_png(matrix, classes, tmp_path / "cm.png")) == (800, 800)


def test_learning_curves_png(tmp_path: Path) -> None:
    history = [
        {"epoch": 1.0, "train_loss": 2.0, "val_loss": 1.8, "val_accuracy": 0.4},
        {"epoch": 2.0, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.7},
    ]
    assert png_size(plots.learning_curves_png(history, tmp_path / "curves.png")) == (1000, 400)


def test_latency_png(tmp_path: Path) -> None:
    latencies = {"onnx b1 p50": 1.2, "onnx b1 p95": 1.5, "torch b1 p50": 2.0, "torch b1 p95": 2.6}
    assert png_size(plots.latency_png(latencies, tmp_path / "latency.png", title="latency")) == (600, 400)
