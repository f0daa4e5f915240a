"""training.resnet.model: checkpoint format, meta validation, preprocessing, divergence check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlops.errors import BadInput
from tests.unit.training.factories import write_png
from training.resnet import model as model_mod
from training.resnet.model import ModelMeta


def meta(classes: list[str] | None = None, image_size: int = 16) -> ModelMeta:
    return ModelMeta(classes=classes or ["cat", "dog"], image_size=image_size, extra={"best_epoch": 2})


def test_meta_round_trip() -> None:
    original = meta()
    data = original.to_dict()
    assert data["num_classes"] == 2
    assert ModelMeta.from_dict(json.loads(json.dumps(data))) == original


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"classes": None}, "missing or has a malformed field"),
        ({"image_size": "big"}, "missing or has a malformed field"),
        ({"arch": "resnet50"}, "describes arch 'resnet50'"),
        ({"classes": ["one"]}, "inconsistent: 1 classes"),
        ({"mean": [0.5, 0.5]}, "inconsistent"),
    ],
)
def test_meta_refusals(change: dict[str, object], message: str) -> None:
    data = {**meta().to_dict(), **change}
    if change.get("classes", 0) is None:
        del data["classes"]
    with pytest.raises(BadInput, match=message):
        ModelMeta.from_dict(data, where="x/meta.json")


def test_read_meta_names_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"meta\.json not found"):
        model_mod.read_meta(tmp_path / "meta.json")
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(BadInput, match="is not valid JSON"):
        model_mod.read_meta(tmp_path / "meta.json")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(1)
    net = model_mod.build_model(2)
    model_mod.save_checkpoint(tmp_path / "ckpt", net.state_dict(), meta())
    loaded, loaded_meta = model_mod.load_checkpoint(tmp_path / "ckpt")
    assert loaded_meta == meta()
    assert not loaded.training
    x = torch.randn(2, 3, 16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_checkpoint_that_does_not_fit_is_bad_input(tmp_path: Path) -> None:
    net = model_mod.build_model(2)
    model_mod.save_checkpoint(tmp_path / "ckpt", net.state_dict(), meta(["a", "b", "c"]))
    with pytest.raises(BadInput, match="does not load into resnet18/3 classes"):
        model_mod.load_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / model_mod.WEIGHTS_FILE).unlink()
    with pytest.raises(BadInput, match=r"has no model\.pt"):
        model_mod.load_checkpoint(tmp_path / "ckpt")


def test_pretrained_weights_replace_the_head(tmp_path: Path) -> None:
    import torch
    from torchvision.models import resnet18

    imagenet = resnet18(weights=None)
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pt")
    net = model_mod.build_model(3, str(tmp_path / "imagenet.pt"))
    assert net.fc.out_features == 3
    assert torch.equal(net.conv1.weight, imagenet.conv1.weight)


def test_pretrained_weights_refusals(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        model_mod.build_model(2, str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a state dict")
    with pytest.raises(BadInput, match="is not a resnet18 state_dict"):
        model_mod.build_model(2, str(tmp_path / "junk.pt"))


def test_preprocessing_makes_rgb_and_normalises(tmp_path: Path) -> None:
    import torch
    from PIL import Image

    gray = write_png(tmp_path / "gray.png", mode="L", side=10)
    white = tmp_path / "white.png"
    Image.new("RGB", (5, 7), (255, 255, 255)).save(white)
    batch = model_mod.load_images([gray, white], meta(image_size=8))
    assert batch.shape == (2, 3, 8, 8)
    assert batch.dtype == torch.float32
    expected = [(1.0 - m) / s for m, s in zip(model_mod.IMAGENET_MEAN, model_mod.IMAGENET_STD, strict=True)]
    assert torch.allclose(batch[1].mean(dim=(1, 2)), torch.tensor(expected), atol=1e-5)


def test_finite_loss_passes_through() -> None:
    assert model_mod.check_finite_loss(0.25, 1, 1) == 0.25


@pytest.mark.parametrize(("loss", "shown"), [(math.nan, "loss is nan"), (math.inf, "loss is inf")])
def test_diverged_loss_is_bad_input(loss: float, shown: str) -> None:
    with pytest.raises(
        BadInput, match=f"training diverged: {shown} at epoch 3 step 7; lower --learning-rate"
    ):
        model_mod.check_finite_loss(loss, 3, 7)
