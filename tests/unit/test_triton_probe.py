"""The vision probe's pure parts: class shares, PSI, release values as tags, the drift verdict, gauges."""

from __future__ import annotations

import json
import math

import pytest

from deployment.triton import drift
from mlops.errors import BadInput


def test_figures_count_the_argmax_and_average_the_top_probability() -> None:
    found = drift.figures([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    assert found.images == 4
    assert found.class_shares == [0.5, 0.25, 0.25]
    assert math.isclose(found.mean_confidence, (0.9 + 0.7 + 0.6 + 0.8) / 4)
    with pytest.raises(BadInput, match="empty"):
        drift.figures([])


def test_psi_is_zero_for_the_same_mix_and_grows_with_the_shift() -> None:
    release = [0.1] * 10
    assert drift.psi(release, release) == 0.0
    mild = [0.12, 0.08] * 5
    assert 0 < drift.psi(mild, release) < 0.1
    # everything predicted as one class: far above the 0.2 "significant shift"
    collapsed = [1.0] + [0.0] * 9
    assert drift.psi(collapsed, release) > 2.0
    # the textbook value: (0.3-0.5) ln(0.3/0.5) + (0.7-0.5) ln(0.7/0.5)
    assert math.isclose(drift.psi([0.3, 0.7], [0.5, 0.5]), -0.2 * math.log(0.6) + 0.2 * math.log(1.4))
    with pytest.raises(BadInput, match="class lists differ"):
        drift.psi([0.5, 0.5], [1.0])


def test_release_values_round_trip_and_bad_tags_are_bad_input() -> None:
    figures = drift.figures([[0.9, 0.1], [0.3, 0.7], [0.8, 0.2]])
    tags = figures.as_tags()
    back = drift.from_tags(tags, "4")
    assert back is not None and back.version == "4" and back.images == 3
    assert [round(s, 6) for s in back.class_shares] == [round(s, 6) for s in figures.class_shares]
    assert drift.from_tags({}) is None
    model_tags = {**tags, "probe.release.version": "3"}
    assert drift.release_values({}, model_tags, "5").version == "3"  # type: ignore[union-attr]
    with pytest.raises(BadInput, match="summing to 1"):
        drift.from_tags({**tags, "probe.release.class_shares": json.dumps([0.5, 0.2])})
    with pytest.raises(BadInput, match="do not hold release values"):
        drift.from_tags({**tags, "probe.release.mean_confidence": "high"})


def test_drift_verdict_and_gauges() -> None:
    release = drift.VisionFigures(100, [0.5, 0.5], 0.9, "3")
    steady = drift.VisionFigures(100, [0.52, 0.48], 0.88)
    shifted = drift.VisionFigures(100, [0.9, 0.1], 0.6)
    assert drift.drift_verdict(steady, release, 0.2, 0.1).passed
    failed = drift.drift_verdict(shifted, release, 0.2, 0.1)
    assert not failed.passed and "class-mix PSI" in failed.reason and "mean confidence drop" in failed.reason
    gauges = {g.name: g for g in drift.gauges("resnet", "4", shifted, release)}
    assert gauges["mlops_vision_psi"].labels == {"model": "resnet", "version": "4"}
    assert math.isclose(gauges["mlops_vision_psi"].value, drift.psi([0.9, 0.1], [0.5, 0.5]))
    assert gauges["mlops_vision_mean_confidence_release"].value == 0.9
    assert set(g.name for g in drift.gauges("resnet", "4", shifted, None)) == {
        "mlops_vision_probe_images",
        "mlops_vision_mean_confidence",
    }
