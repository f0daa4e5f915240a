"""Fixtures of the ResNet step tests: digits folders and one exported ResNet-18, made once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.training.factories import DIGITS_SIDE, RESNET_SIDE, ExportedResnet


@pytest.fixture(scope="session")
def digits_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits written three times: seed 42 twice (in different folders) and seed 7 once."""
    from training.resnet.data import write_digits

    base = tmp_path_factory.mktemp("digits")
    return {
        name: write_digits(base / name, image_size=DIGITS_SIDE, seed=seed)
        for name, seed in (("seed42", 42), ("seed42-again", 42), ("seed7", 7))
    }


@pytest.fixture(scope="session")
def exported_resnet(tmp_path_factory: pytest.TempPathFactory) -> ExportedResnet:
    """torchvision resnet18 (2 classes, random init) exported at the pipeline's default opset 17."""
    import torch

    from training.resnet.model import build_model
    from training.resnet.onnx_export import export_onnx

    torch.manual_seed(0)
    model = build_model(2)
    path = tmp_path_factory.mktemp("resnet") / "model.onnx"
    exporter = export_onnx(model, RESNET_SIDE, path, 17)
    return ExportedResnet(model.eval(), path, exporter, 17, RESNET_SIDE)


@pytest.fixture
def torch_global_state() -> Iterator[None]:
    """Restore what `seed_everything` changes process-wide (deterministic kernels, thread count)."""
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
