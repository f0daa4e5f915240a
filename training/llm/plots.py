"""PNG figures logged with the LLM runs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def length_histogram_png(series: dict[str, list[int]], path: Path, title: str, unit: str) -> Path:
    """One histogram panel per named series of lengths."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.6), squeeze=False)
    for ax, (name, values) in zip(axes[0], series.items(), strict=True):
        ax.hist(values, bins=min(40, max(5, len(set(values)))), color="tab:blue", alpha=0.8)
        ax.set_title(name)
        ax.set_xlabel(unit)
        ax.set_ylabel("rows")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves_png(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Answer-token loss per epoch (train and val) and validation perplexity."""
    plt = _pyplot()
    epochs = [int(h["epoch"]) for h in history]
    fig, (loss_ax, ppl_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train_loss")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val_loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss (answer tokens)")
    loss_ax.legend()
    ppl_ax.plot(epochs, [h["val_perplexity"] for h in history], marker="o", color="tab:green")
    ppl_ax.set_xlabel("epoch")
    ppl_ax.set_ylabel("val perplexity")
    for ax in (loss_ax, ppl_ax):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
