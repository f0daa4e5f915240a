"""PNG figures logged with the runs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(matrix: list[list[int]], classes: list[str], path: Path, title: str = "") -> Path:
    """Counts of (true class, predicted class) on the validation split."""
    plt = _pyplot()
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(len(classes)), labels=classes, rotation=90 if len(classes) > 12 else 0)
    ax.set_yticks(range(len(classes)), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (validation)")
    if len(classes) <= 20:
        peak = max((max(row) for row in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                if count:
                    color = "white" if count > peak / 2 else "black"
                    ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves_png(history: list[dict[str, float]], path: Path) -> Path:
    """Loss (train and val) and val accuracy per epoch."""
    plt = _pyplot()
    epochs = [int(h["epoch"]) for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train_loss")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val_loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [h["val_accuracy"] for h in history], marker="o", color="tab:green")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("val_accuracy (fraction)")
    acc_ax.set_ylim(0.0, 1.0)
    for ax in (loss_ax, acc_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_png(latencies_ms: dict[str, float], path: Path, title: str) -> Path:
    """Bar chart of latency figures, e.g. {"onnx b1 p50": 1.2, ...}."""
    plt = _pyplot()
    names = list(latencies_ms)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names)), 4))
    colors = ["tab:blue" if name.startswith("onnx") else "tab:orange" for name in names]
    bars = ax.bar(names, [latencies_ms[n] for n in names], color=colors)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_ylabel("ms per batch")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
