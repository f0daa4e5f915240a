"""The model and everything that must match between training, export and validation.

One place defines the architecture, the preprocessing (resize + ImageNet normalisation) and
the checkpoint format (`model.pt` state_dict + `meta.json`), so PyTorch and ONNX are fed
exactly the same tensors.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import BadInput

if TYPE_CHECKING:
    import torch
    from torch import nn

ARCH = "resnet18"
# torchvision's ImageNet statistics: what resnet18 weights (pretrained or not) expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_FILE = "model.pt"
META_FILE = "meta.json"


@dataclass
class ModelMeta:
    """What a consumer of the checkpoint needs besides the weights."""

    classes: list[str]
    image_size: int
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    arch: str = ARCH
    input_layout: str = "NCHW, RGB, float32"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["num_classes"] = self.num_classes
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "meta.json") -> ModelMeta:
        try:
            meta = cls(
                classes=[str(c) for c in data["classes"]],
                image_size=int(data["image_size"]),
                mean=[float(v) for v in data["mean"]],
                std=[float(v) for v in data["std"]],
                arch=str(data.get("arch", ARCH)),
                input_layout=str(data.get("input_layout", "NCHW, RGB, float32")),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"{where} is missing or has a malformed field: {exc}") from exc
        if meta.arch != ARCH:
            raise BadInput(f"{where} describes arch {meta.arch!r}; this pipeline handles {ARCH!r}")
        if len(meta.classes) < 2 or len(meta.mean) != 3 or len(meta.std) != 3 or meta.image_size < 1:
            raise BadInput(
                f"{where} is inconsistent: {len(meta.classes)} classes, image_size {meta.image_size}"
            )
        return meta


def seed_everything(seed: int, threads: int) -> bool:
    """Seed every generator and ask for deterministic kernels; returns whether they are enforced."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        torch.use_deterministic_algorithms(True)
    except Exception:
        return False
    return True


def build_model(num_classes: int, pretrained_weights: str = "") -> nn.Module:
    """torchvision resnet18; with `pretrained_weights` (an ImageNet state_dict file) the fc layer is replaced."""
    import torch
    from torchvision.models import resnet18

    if not pretrained_weights:
        return resnet18(weights=None, num_classes=num_classes)
    path = Path(pretrained_weights)
    if not path.is_file():
        raise BadInput(f"--pretrained-weights {path} does not exist")
    model = resnet18(weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        raise BadInput(f"--pretrained-weights {path} is not a resnet18 state_dict: {exc}") from exc
    model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
    return model


def image_transform(
    image_size: int, mean: list[float] | tuple[float, ...], std: list[float] | tuple[float, ...]
) -> Any:
    """PIL image -> normalised float tensor (3, size, size): the one preprocessing for train, eval and ONNX."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Lambda(lambda image: image.convert("RGB")),
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(list(mean), list(std)),
        ]
    )


class LabelledImages:
    """Map-style dataset over image files: item i is (preprocessed tensor, class index)."""

    def __init__(self, items: list[tuple[Path, int]], transform: Any) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.items[index]
        with Image.open(path) as image:
            return self.transform(image), label


def load_images(paths: list[Path], meta: ModelMeta) -> torch.Tensor:
    """Preprocess image files into one batch tensor (N, 3, size, size)."""
    import torch
    from PIL import Image

    transform = image_transform(meta.image_size, meta.mean, meta.std)
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            tensors.append(transform(image))
    return torch.stack(tensors)


def check_finite_loss(loss: float, epoch: int, step: int) -> float:
    """A NaN/inf loss means training diverged: stop with advice instead of saving garbage."""
    if not math.isfinite(loss):
        raise BadInput(
            f"training diverged: loss is {'nan' if math.isnan(loss) else loss} at epoch {epoch} step {step}; "
            "lower --learning-rate"
        )
    return loss


def save_checkpoint(directory: Path, state_dict: dict[str, Any], meta: ModelMeta) -> Path:
    """Write `model.pt` (state_dict) and `meta.json` into `directory`."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, directory / WEIGHTS_FILE)
    (directory / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")
    return directory


def read_meta(path: Path) -> ModelMeta:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BadInput(f"{path.name} not found next to the model ({path})") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} is not valid JSON: {exc}") from exc
    return ModelMeta.from_dict(data, where=str(path))


def load_checkpoint(directory: Path) -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model in eval mode from a checkpoint folder; BadInput if it does not fit."""
    import torch

    meta = read_meta(directory / META_FILE)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise BadInput(f"checkpoint {directory} has no {WEIGHTS_FILE}")
    model = build_model(meta.num_classes)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise BadInput(
            f"checkpoint {weights} does not load into {ARCH}/{meta.num_classes} classes: {exc}"
        ) from exc
    model.eval()
    return model, meta
