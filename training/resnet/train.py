"""Step: train ResNet-18 on an image-folder dataset and log everything to one MLflow run.

Deterministic on CPU (seeded generators, deterministic kernels, fixed thread count): the same
dataset and flags give the same metrics. The best epoch by validation accuracy is kept and
logged as `checkpoint/` (model.pt + meta.json). A NaN/inf loss stops the run as FAILED.

Recipe: SGD (Nesterov momentum 0.9, weight decay) with a one-cycle learning-rate schedule and
label smoothing 0.1 (torchvision's classification recipe uses the same smoothing). Smoothing
also keeps logits small, which keeps float32 rounding between PyTorch and ONNX Runtime well
inside the equivalence gate's absolute tolerance.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.step import StepResult
from mlops.tracking import TAG_VALUE_LIMIT, mlflow_errors
from training.resnet import data, plots
from training.resnet.model import (
    LabelledImages,
    ModelMeta,
    build_model,
    check_finite_loss,
    image_transform,
    save_checkpoint,
    seed_everything,
)

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

MOMENTUM = 0.9
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class Config(StepConfig):
    dataset_uri: str = Field(
        description="dataset archive (s3://.../dataset.tar.gz from prepare_data) or a local folder"
    )
    epochs: int = Field(3, ge=1, le=1000, description="training epochs")
    batch_size: int = Field(64, ge=1, le=4096, description="mini-batch size")
    learning_rate: float = Field(0.05, gt=0.0, description="peak learning rate of the one-cycle SGD schedule")
    weight_decay: float = Field(5e-4, ge=0.0, description="SGD weight decay")
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0, description="label smoothing of the training loss")
    image_size: int = Field(32, ge=8, le=1024, description="images are resized to SIZE x SIZE")
    pretrained_weights: str = Field(
        "",
        description="path to a torchvision resnet18 state_dict to start from ('' = random init); fc is replaced",
    )
    seed: int = Field(42, description="seed of weights init, shuffling and everything else random")
    experiment: str = Field("resnet18-imagenette", description="MLflow experiment of the training run")
    threads: int = Field(2, ge=1, le=256, description="torch CPU threads")


@dataclass
class FitResult:
    """What training produced: per-epoch history and the best epoch's weights and predictions."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = -1.0
    best_state: dict[str, Any] = field(default_factory=dict)
    best_predictions: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)


def make_loaders(
    layout: data.DatasetLayout, image_size: int, batch_size: int, seed: int
) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """Loaders over the validated layout: train shuffled by a seeded generator, val in order."""
    import torch
    from torch.utils.data import DataLoader

    from training.resnet.model import IMAGENET_MEAN, IMAGENET_STD

    transform = image_transform(image_size, IMAGENET_MEAN, IMAGENET_STD)
    index = {label: i for i, label in enumerate(layout.classes)}

    def images(split: str) -> LabelledImages:
        return LabelledImages([(s.path, index[s.label]) for s in layout.split(split)], transform)

    generator = torch.Generator().manual_seed(seed)
    train_set = cast("Dataset[Any]", images("train"))
    val_set = cast("Dataset[Any]", images("val"))
    train_loader: DataLoader[Any] = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=generator, num_workers=0
    )
    val_loader: DataLoader[Any] = DataLoader(
        val_set, batch_size=max(batch_size, 128), shuffle=False, num_workers=0
    )
    return train_loader, val_loader


def evaluate(model: nn.Module, loader: DataLoader[Any]) -> tuple[float, float, list[int], list[int]]:
    """Mean cross-entropy, accuracy (fraction), predictions and targets over a loader."""
    import torch

    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    predictions: list[int] = []
    targets: list[int] = []
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images)
            total_loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            predicted = logits.argmax(dim=1)
            correct += int((predicted == labels).sum())
            count += len(labels)
            predictions += predicted.tolist()
            targets += labels.tolist()
    if count == 0:
        raise BadInput("validation split is empty")
    return total_loss / count, correct / count, predictions, targets


def fit(
    model: nn.Module,
    train_loader: DataLoader[Any],
    val_loader: DataLoader[Any],
    *,
    epochs: int,
    learning_rate: float,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train; after each epoch evaluate on val, report through `on_epoch`, keep the best weights."""
    import torch
    from tqdm import tqdm

    optimizer = torch.optim.SGD(
        model.parameters(), lr=learning_rate, momentum=MOMENTUM, nesterov=True, weight_decay=weight_decay
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=epochs * len(train_loader)
    )
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    result = FitResult()
    for epoch in range(1, epochs + 1):
        started = time.monotonic()
        model.train()
        loss_sum, seen = 0.0, 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            file=sys.stderr,
            mininterval=1.0,
            disable=not progress,
        )
        for step_index, (images, labels) in enumerate(bar, start=1):
            loss = criterion(model(images), labels)
            value = check_finite_loss(float(loss.item()), epoch, step_index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += value * len(labels)
            seen += len(labels)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.close()
        val_loss, val_accuracy, predictions, targets = evaluate(model, val_loader)
        check_finite_loss(val_loss, epoch, len(train_loader))
        record = {
            "epoch": float(epoch),
            "train_loss": loss_sum / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "epoch_seconds": time.monotonic() - started,
        }
        result.history.append(record)
        if val_accuracy > result.best_val_accuracy:
            result.best_epoch, result.best_val_accuracy = epoch, val_accuracy
            result.best_state = copy.deepcopy(model.state_dict())
            result.best_predictions, result.targets = predictions, targets
        print(
            f"epoch {epoch}/{epochs}: train_loss={record['train_loss']:.4f} val_loss={val_loss:.4f} "
            f"val_accuracy={val_accuracy:.4f} ({record['epoch_seconds']:.1f}s)",
            flush=True,
        )
        if on_epoch is not None:
            on_epoch(record)
    return result


def confusion_matrix(targets: list[int], predictions: list[int], num_classes: int) -> list[list[int]]:
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for true, predicted in zip(targets, predictions, strict=True):
        matrix[true][predicted] += 1
    return matrix


def dataset_sha256(uri: str, fetched: data.FetchedDataset) -> str:
    """The archive's sha256 (content address); checked against the `<sha256>/` in the URI if there is one."""
    parts = uri.rstrip("/").split("/")
    named = parts[-2] if len(parts) >= 2 and SHA256_RE.match(parts[-2]) else ""
    if named and fetched.sha256 and named != fetched.sha256:
        raise BadInput(
            f"{uri} holds an archive with sha256 {fetched.sha256}, not the {named} its address names"
        )
    return fetched.sha256 or named


def _log_artifacts(result: FitResult, meta: ModelMeta, workdir: Path) -> None:
    import mlflow

    checkpoint = save_checkpoint(workdir / "checkpoint", result.best_state, meta)
    figures = workdir / "plots"
    figures.mkdir()
    plots.confusion_matrix_png(
        confusion_matrix(result.targets, result.best_predictions, meta.num_classes),
        meta.classes,
        figures / "confusion_matrix.png",
        title=f"validation, epoch {result.best_epoch} (accuracy {result.best_val_accuracy:.4f})",
    )
    plots.learning_curves_png(result.history, figures / "learning_curves.png")
    (workdir / "history.json").write_text(json.dumps(result.history, indent=2) + "\n")
    mlflow.log_artifacts(str(checkpoint), "checkpoint")
    mlflow.log_artifacts(str(figures), "plots")
    mlflow.log_artifact(str(workdir / "history.json"), "metrics")


def run(cfg: Config) -> StepResult:
    import mlflow
    import torch
    import torchvision

    from mlops.tracking import configure_mlflow_client

    deterministic = seed_everything(cfg.seed, cfg.threads)
    configure_mlflow_client()
    with tempfile.TemporaryDirectory(prefix="train-") as tmp:
        workdir = Path(tmp)
        fetched = data.fetch_dataset(cfg.dataset_uri, workdir)
        sha256 = dataset_sha256(cfg.dataset_uri, fetched)
        layout = data.load_layout(fetched.root, require_split=True)
        classes = layout.classes
        train_loader, val_loader = make_loaders(layout, cfg.image_size, cfg.batch_size, cfg.seed)
        model = build_model(len(classes), cfg.pretrained_weights)
        with mlflow_errors(f"starting a run in experiment {cfg.experiment}"):
            mlflow.set_experiment(cfg.experiment)
            active = mlflow.start_run(
                tags={"mlops.step": "train", "dataset_uri": cfg.dataset_uri, "dataset_sha256": sha256}
            )
        # Outer mapping also covers ending the run; leaving `active` with an error marks the run FAILED.
        with mlflow_errors("logging the training run"), active as mlflow_run:
            run_id = mlflow_run.info.run_id
            print(f"MLflow run {run_id} in experiment {cfg.experiment}", flush=True)
            mlflow.log_params(
                {
                    **cfg.model_dump(),
                    "arch": "resnet18",
                    "num_classes": len(classes),
                    "train_size": len(cast("Any", train_loader.dataset)),
                    "val_size": len(cast("Any", val_loader.dataset)),
                    "optimizer": f"SGD(nesterov, momentum={MOMENTUM})",
                    "lr_schedule": "OneCycleLR",
                    "deterministic_algorithms": deterministic,
                    "torch_version": torch.__version__,
                    "torchvision_version": torchvision.__version__,
                }
            )

            def log_epoch(record: dict[str, float]) -> None:
                epoch = int(record["epoch"])
                mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)

            try:
                result = fit(
                    model,
                    train_loader,
                    val_loader,
                    epochs=cfg.epochs,
                    learning_rate=cfg.learning_rate,
                    weight_decay=cfg.weight_decay,
                    label_smoothing=cfg.label_smoothing,
                    on_epoch=log_epoch,
                )
            except BadInput as exc:
                mlflow.set_tag("failure_reason", str(exc)[:TAG_VALUE_LIMIT])
                raise
            mlflow.log_metrics(
                {"best_val_accuracy": result.best_val_accuracy, "best_epoch": result.best_epoch}
            )
            meta = ModelMeta(
                classes=classes,
                image_size=cfg.image_size,
                extra={
                    "dataset_uri": cfg.dataset_uri,
                    "dataset_sha256": sha256,
                    "best_epoch": result.best_epoch,
                    "best_val_accuracy": result.best_val_accuracy,
                    "training_run_id": run_id,
                    "torch_version": torch.__version__,
                },
            )
            _log_artifacts(result, meta, workdir)
    return StepResult(
        outputs={"run-id": run_id, "best-val-accuracy": repr(result.best_val_accuracy)},
        summary=f"best val_accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}/{cfg.epochs}, run {run_id}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
