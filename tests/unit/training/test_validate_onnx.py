"""training.resnet.validate_onnx: the equivalence comparison, golden samples, sampling, registration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops import gates
from mlops.errors import BadInput
from tests.unit.training.factories import ExportedResnet, onnx_twin, save_onnx, tiny_net
from training.resnet import validate_onnx
from training.resnet.onnx_export import ort_session


def inputs(count: int, side: int, seed: int = 0) -> Any:
    import numpy as np

    return np.random.default_rng(seed).standard_normal((count, 3, side, side)).astype(np.float32)


def test_resnet_and_its_own_onnx_agree(exported_resnet: ExportedResnet) -> None:
    session = ort_session(exported_resnet.path, threads=2)
    result = validate_onnx.compare(
        exported_resnet.model, session, inputs(5, exported_resnet.side), batch_size=2
    )
    assert result.onnx_logits.shape == result.torch_logits.shape == (5, 2)
    assert result.max_abs_diff <= 1e-5
    assert result.argmax_mismatches == 0
    assert 0.0 <= result.torch_fp32_max_abs_diff <= 1e-4
    assert gates.equivalence_gate(result.max_abs_diff, 1e-5, result.argmax_mismatches).passed


def test_tiny_net_and_its_handmade_onnx_twin_agree(tmp_path: Path) -> None:
    net = tiny_net(classes=3)
    session = ort_session(save_onnx(onnx_twin(net), tmp_path / "m.onnx"))
    result = validate_onnx.compare(net, session, inputs(7, 8))
    assert result.max_abs_diff <= 1e-6
    assert result.argmax_mismatches == 0


class EditedSession:
    """An ONNX Runtime stand-in answering with the real session's logits, edited."""

    def __init__(self, session: Any, edit: Any) -> None:
        self.session, self.edit = session, edit

    def run(self, names: list[str], feeds: dict[str, Any]) -> list[Any]:
        return [self.edit(self.session.run(names, feeds)[0])]


@pytest.fixture
def net_and_session(tmp_path: Path) -> tuple[Any, Any]:
    net = tiny_net(classes=2, seed=4)
    return net, ort_session(save_onnx(onnx_twin(net), tmp_path / "m.onnx"))


def test_compare_measures_a_shift(net_and_session: tuple[Any, Any]) -> None:
    net, session = net_and_session
    result = validate_onnx.compare(net, EditedSession(session, lambda x: x + 1e-3), inputs(6, 8))
    assert result.max_abs_diff == pytest.approx(1e-3, rel=1e-3)
    assert result.argmax_mismatches == 0
    verdict = gates.equivalence_gate(result.max_abs_diff, 1e-5, result.argmax_mismatches)
    assert not verdict.passed
    assert "max_abs_diff" in verdict.reason


def test_compare_counts_argmax_mismatches(net_and_session: tuple[Any, Any]) -> None:
    net, session = net_and_session
    result = validate_onnx.compare(net, EditedSession(session, lambda x: x[:, ::-1]), inputs(6, 8))
    assert result.argmax_mismatches == 6


def test_compare_refuses_a_shape_mismatch(net_and_session: tuple[Any, Any]) -> None:
    import numpy as np

    net, session = net_and_session
    widen = lambda x: np.concatenate([x, x[:, :1]], axis=1)  # noqa: E731
    with pytest.raises(BadInput, match=r"ONNX logits have shape \(4, 3\), PyTorch \(4, 2\)"):
        validate_onnx.compare(net, EditedSession(session, widen), inputs(4, 8))


@pytest.mark.parametrize(
    ("count", "expected"),
    [(3, [0, 3, 6]), (4, [0, 2, 5, 7]), (10, list(range(10))), (25, list(range(10))), (1, [0]), (0, [])],
)
def test_pick_evenly(count: int, expected: list[int]) -> None:
    assert validate_onnx.pick_evenly(list(range(10)), count) == expected


def test_softmax_rows_are_probabilities_even_for_large_logits() -> None:
    import numpy as np

    probabilities = validate_onnx.softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    assert probabilities.dtype == np.float32
    assert np.allclose(probabilities, [[1.0, 0.0], [0.5, 0.5]])


def test_write_golden_format(tmp_path: Path) -> None:
    import numpy as np

    x = np.asfortranarray(inputs(3, 8))
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    folder = validate_onnx.write_golden(
        tmp_path / "golden",
        x,
        logits,
        [0, 1, 1],
        ["val/a/1.png", "val/b/2.png", "val/b/3.png"],
        ["a", "b", "c"],
    )
    assert sorted(p.name for p in folder.iterdir()) == ["inputs.npy", "labels.json", "probabilities.npy"]
    saved = np.load(folder / "inputs.npy")
    assert saved.dtype == np.float32
    assert saved.flags["C_CONTIGUOUS"]
    assert np.array_equal(saved, x)
    probabilities = np.load(folder / "probabilities.npy")
    assert probabilities.shape == (3, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    labels = json.loads((folder / "labels.json").read_text())
    assert labels["input_name"] == "input"
    assert labels["output_name"] == "logits"
    assert labels["classes"] == ["a", "b", "c"]
    assert labels["expected_index"] == [0, 2, 1]
    assert labels["expected_label"] == ["a", "c", "b"]
    assert labels["true_index"] == [0, 1, 1]
    assert labels["true_label"] == ["a", "b", "b"]
    assert labels["files"] == ["val/a/1.png", "val/b/2.png", "val/b/3.png"]


def test_percentile_ms() -> None:
    assert validate_onnx.percentile_ms([0.001] * 19 + [0.1]) == pytest.approx((1.0, 5.95))


def test_measure_latency_reports_both_runtimes_at_both_batch_sizes(net_and_session: tuple[Any, Any]) -> None:
    net, session = net_and_session
    metrics = validate_onnx.measure_latency(net, session, inputs(5, 8), iterations=2)
    expected = {
        f"latency_ms_{runtime}_b{batch}_{p}"
        for runtime in ("onnx", "torch")
        for batch in validate_onnx.LATENCY_BATCHES
        for p in ("p50", "p95")
    }
    assert set(metrics) == expected
    for runtime in ("onnx", "torch"):
        for batch in validate_onnx.LATENCY_BATCHES:
            p50, p95 = (
                metrics[f"latency_ms_{runtime}_b{batch}_p50"],
                metrics[f"latency_ms_{runtime}_b{batch}_p95"],
            )
            assert 0.0 < p50 <= p95
