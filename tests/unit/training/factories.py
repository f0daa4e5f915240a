"""Small builders shared by the ResNet step tests: image trees, hand-made ONNX graphs, in-memory stores."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.storage import S3Url

IMAGE_SIDE = 8
DIGITS_SIDE = 12  # above 8 so the resize path runs; small so writing 1797 PNGs stays fast
RESNET_SIDE = 16


@dataclass(frozen=True)
class ExportedResnet:
    """The session's exported ResNet-18: the PyTorch model and its ONNX file."""

    model: Any
    path: Path
    exporter: str
    opset: int
    side: int


def write_png(path: Path, seed: int = 0, side: int = IMAGE_SIDE, mode: str = "RGB") -> Path:
    """A small noisy PNG (noise keeps the compressed pixel data long enough to truncate meaningfully)."""
    from PIL import Image

    rng = random.Random(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = bytes(rng.randrange(256) for _ in range(side * side * channels))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes(mode, (side, side), pixels).save(path, format="PNG")
    return path


def write_tree(root: Path, layout: dict[str, int]) -> Path:
    """Write `{"train/cat": 3, "val/dog": 0, ...}`: that many PNGs per folder (0 makes an empty folder)."""
    for index, (folder, count) in enumerate(sorted(layout.items())):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_png(root / folder / f"img-{i:03d}.png", seed=index * 1000 + i)
    return root


def split_tree(root: Path, classes: tuple[str, ...] = ("a", "b"), train: int = 3, val: int = 2) -> Path:
    """A valid split ImageFolder with `train`/`val` images per class."""
    spec = {f"train/{c}": train for c in classes} | {f"val/{c}": val for c in classes}
    return write_tree(root, spec)


def tiny_onnx_graph(
    *,
    input_name: str = "input",
    output_name: str = "logits",
    opset: int = 17,
    batch: int | str = "batch",
    classes: int = 2,
    side: int = IMAGE_SIDE,
    weights: Any = None,
    bias: Any = None,
    elem_type: int | None = None,
) -> Any:
    """GlobalAveragePool -> Flatten -> Gemm: the ONNX twin of `TinyNet` (N, 3, side, side) -> (N, classes)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    elem = onnx.TensorProto.FLOAT if elem_type is None else elem_type
    rng = np.random.default_rng(0)
    w = rng.standard_normal((classes, 3)).astype(np.float32) if weights is None else weights
    b = np.zeros(classes, dtype=np.float32) if bias is None else bias
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "B"], [output_name], transB=1),
        ],
        "tiny",
        [helper.make_tensor_value_info(input_name, elem, [batch, 3, side, side])],
        [helper.make_tensor_value_info(output_name, elem, [batch, classes])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what this onnxruntime reads for opset 17
    return model


def save_onnx(model: Any, path: Path) -> Path:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_net(classes: int = 2, seed: int = 0) -> Any:
    """A few-parameter classifier over (N, 3, H, W): average pool then linear."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, classes)
    ).eval()


def onnx_twin(net: Any) -> Any:
    """`tiny_onnx_graph` carrying the weights of a `tiny_net`."""
    linear = net[2]
    return tiny_onnx_graph(
        classes=linear.out_features,
        weights=linear.weight.detach().numpy().copy(),
        bias=linear.bias.detach().numpy().copy(),
    )


class MemoryStore:
    """The slice of S3Store that prepare_data uses, held in a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.buckets: set[str] = set()
        self.uploads: list[str] = []

    def ensure_bucket(self, bucket: str) -> None:
        self.buckets.add(bucket)

    def exists(self, url: S3Url) -> bool:
        return str(url) in self.objects

    def upload_file(self, path: Path, url: S3Url) -> str:
        body = path.read_bytes()
        self.objects[str(url)] = body
        self.uploads.append(str(url))
        return hashlib.sha256(body).hexdigest()

    def put_bytes(self, url: S3Url, data: bytes) -> None:
        self.objects[str(url)] = data
