"""The Pushgateway client's text format and group paths (pure); the real server is exercised in
tests/integration/test_pushgateway.py."""

from __future__ import annotations

import base64
import math

import pytest

from mlops.errors import BadInput
from mlops.pushgateway import Gauge, RecordingSink, exposition, group_path


def test_exposition_groups_samples_by_metric_with_help_and_type() -> None:
    text = exposition(
        [
            Gauge("mlops_probe_score", 0.5, {"model": "m", "judge": "reference"}, "probe A-rate"),
            Gauge("mlops_probe_questions", 40.0, {"model": "m"}),
            Gauge("mlops_probe_score", 0.25, {"model": "m", "judge": "llm"}),
        ]
    )
    assert text == (
        "# HELP mlops_probe_score probe A-rate\n"
        "# TYPE mlops_probe_score gauge\n"
        'mlops_probe_score{judge="reference",model="m"} 0.5\n'
        'mlops_probe_score{judge="llm",model="m"} 0.25\n'
        "# TYPE mlops_probe_questions gauge\n"
        'mlops_probe_questions{model="m"} 40.0\n'
    )


def test_label_values_are_escaped() -> None:
    text = exposition([Gauge("x", 1.0, {"model": 'a"b\\c\nd'})])
    assert 'x{model="a\\"b\\\\c\\nd"} 1.0' in text


@pytest.mark.parametrize(
    ("gauge", "message"),
    [
        (Gauge("mlops-probe", 1.0), "not a Prometheus metric name"),
        (Gauge("x", 1.0, {"bad-label": "v"}), "not Prometheus label names"),
        (Gauge("x", 1.0, {"__name__": "v"}), "not Prometheus label names"),
        (Gauge("x", math.nan), "only finite values"),
        (Gauge("x", math.inf), "only finite values"),
    ],
)
def test_what_prometheus_would_refuse_is_bad_input_and_nothing_is_recorded(
    gauge: Gauge, message: str
) -> None:
    sink = RecordingSink()
    with pytest.raises(BadInput, match=message):
        sink.push("job", {}, [Gauge("ok", 1.0), gauge])
    assert sink.pushes == []


def test_group_path_encodes_every_value() -> None:
    path = group_path("mlops-probe", {"model": "mistral/7b lora", "version": ""})
    parts = path.split("/")
    assert parts[:3] == ["", "metrics", "job@base64"]
    assert base64.urlsafe_b64decode(parts[3]).decode() == "mlops-probe"
    assert parts[4] == "model@base64" and base64.urlsafe_b64decode(parts[5]).decode() == "mistral/7b lora"
    assert parts[6:] == ["version@base64", "="]  # the Pushgateway's empty value
    with pytest.raises(BadInput, match="grouping label"):
        group_path("j", {"job": "x"})
    with pytest.raises(BadInput, match="job name"):
        group_path("", {})
