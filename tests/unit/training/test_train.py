"""training.resnet.train: fit/evaluate bookkeeping, divergence, seeding, loaders, pure helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.errors import EXIT_BAD_INPUT, BadInput
from tests.unit.training.factories import split_tree, tiny_net
from training.resnet import data, train
from training.resnet.model import seed_everything


def batches(seed: int = 0, count: int = 3, size: int = 4, classes: int = 2) -> list[tuple[Any, Any]]:
    """In-memory (images, labels) batches whose class shows in the mean of channel 0: learnable."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        labels = torch.randint(0, classes, (size,), generator=generator)
        images = torch.randn(size, 3, 4, 4, generator=generator) * 0.1
        images[:, 0] += labels.float()[:, None, None] * 2 - 1
        out.append((images, labels))
    return out


class ConstantLogits:
    """A 'model' that always gives the same logits, whatever the batch."""

    def __init__(self, logits: list[float]) -> None:
        self.logits = logits

    def eval(self) -> None:
        pass

    def __call__(self, images: Any) -> Any:
        import torch

        return torch.tensor([self.logits] * len(images))


def test_evaluate_counts_accuracy_loss_and_predictions() -> None:
    import torch

    loader = [
        (torch.zeros(2, 3, 4, 4), torch.tensor([0, 1])),
        (torch.zeros(2, 3, 4, 4), torch.tensor([0, 0])),
    ]
    loss, accuracy, predictions, targets = train.evaluate(ConstantLogits([2.0, 0.0]), loader)
    assert accuracy == 0.75
    assert predictions == [0, 0, 0, 0]
    assert targets == [0, 1, 0, 0]
    expected = float(
        torch.nn.functional.cross_entropy(torch.tensor([[2.0, 0.0]] * 4), torch.tensor([0, 1, 0, 0]))
    )
    assert loss == pytest.approx(expected)


def test_evaluate_on_an_empty_split_is_bad_input() -> None:
    with pytest.raises(BadInput, match="validation split is empty"):
        train.evaluate(ConstantLogits([0.0, 1.0]), [])


def test_fit_keeps_history_and_a_snapshot_of_the_best_epoch() -> None:
    net = tiny_net(seed=3)
    seen: list[dict[str, float]] = []
    result = train.fit(
        net,
        batches(1),
        batches(2, count=2),
        epochs=3,
        learning_rate=0.5,
        on_epoch=seen.append,
        progress=False,
    )
    assert seen == result.history
    assert [h["epoch"] for h in result.history] == [1.0, 2.0, 3.0]
    assert set(result.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "epoch_seconds"}
    accuracies = [h["val_accuracy"] for h in result.history]
    assert result.best_val_accuracy == max(accuracies)
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    assert len(result.best_predictions) == len(result.targets) == 8
    current = net.state_dict()
    assert all(result.best_state[k].data_ptr() != current[k].data_ptr() for k in current)


def test_fit_learns_the_separable_toy_task() -> None:
    result = train.fit(
        tiny_net(seed=0),
        batches(1, count=6),
        batches(2, count=2),
        epochs=4,
        learning_rate=0.5,
        progress=False,
    )
    assert result.best_val_accuracy >= 0.75
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_stops_on_a_nan_loss() -> None:
    import torch

    net = tiny_net()
    with torch.no_grad():
        net[2].weight.fill_(float("nan"))
    with pytest.raises(BadInput, match="training diverged: loss is nan at epoch 1 step 1") as caught:
        train.fit(net, batches(), batches(), epochs=2, learning_rate=0.1, progress=False)
    assert caught.value.exit_code == EXIT_BAD_INPUT


def _seeded_fit(seed: int) -> train.FitResult:
    seed_everything(seed, threads=1)
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    )
    return train.fit(net, batches(5), batches(6), epochs=2, learning_rate=0.1, progress=False)


def test_seeding_makes_training_repeatable(torch_global_state: None) -> None:
    import torch

    first, second, other = _seeded_fit(11), _seeded_fit(11), _seeded_fit(12)
    strip = lambda r: [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in r.history]  # noqa: E731
    assert strip(first) == strip(second)
    assert all(torch.equal(first.best_state[k], second.best_state[k]) for k in first.best_state)
    assert not all(torch.equal(first.best_state[k], other.best_state[k]) for k in first.best_state)
    assert torch.are_deterministic_algorithms_enabled()


def test_loaders_follow_sorted_classes_and_seeded_shuffle(tmp_path: Path) -> None:
    layout = data.load_layout(split_tree(tmp_path, classes=("b", "a"), train=4, val=2))
    train_loader, val_loader = train.make_loaders(layout, image_size=8, batch_size=3, seed=1)
    images, labels = next(iter(val_loader))
    assert images.shape == (4, 3, 8, 8)
    assert labels.tolist() == [0, 0, 1, 1]  # val in order: a (index 0), then b
    order = lambda seed: [int(x) for _, y in train.make_loaders(layout, 8, 3, seed)[0] for x in y]  # noqa: E731
    assert order(1) == order(1)
    assert sorted(order(1)) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert len(train_loader) == 3


def test_confusion_matrix_counts_true_by_predicted() -> None:
    assert train.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3) == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    with pytest.raises(ValueError):
        train.confusion_matrix([0, 1], [0], 2)


SHA_A, SHA_B = "a" * 64, "b" * 64


def test_dataset_sha256_checks_the_address() -> None:
    uri = f"s3://data/datasets/resnet/{SHA_A}/dataset.tar.gz"
    assert train.dataset_sha256(uri, data.FetchedDataset(Path("x"), SHA_A)) == SHA_A
    assert train.dataset_sha256(uri, data.FetchedDataset(Path("x"), "")) == SHA_A
    assert train.dataset_sha256("/local/folder", data.FetchedDataset(Path("x"), "")) == ""
    with pytest.raises(BadInput, match=f"holds an archive with sha256 {SHA_B}, not the {SHA_A}"):
        train.dataset_sha256(uri, data.FetchedDataset(Path("x"), SHA_B))


def test_the_step_without_a_dataset_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main([]) == 2
    assert "--dataset-uri is required: dataset archive" in capsys.readouterr().err
