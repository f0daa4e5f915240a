"""Pure parts of the Triton deployment: served-version configs and replica discovery."""

from __future__ import annotations

import pytest

from deployment.triton.repository import served_versions, with_versions
from mlops.errors import BadInput
from mlops.serving.discovery import PodSelector, parse_endpoints, pods_from_api

CONFIG = """
name: "from-export"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ { name: "input" data_type: TYPE_FP32 dims: [ 3, 32, 32 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ]
version_policy: { latest: { num_versions: 1 } }
dynamic_batching { }
"""


def test_with_versions_replaces_the_policy_and_keeps_the_rest() -> None:
    text = with_versions(CONFIG, [4, 2, 4], "resnet")
    assert served_versions(text) == [2, 4]
    assert "latest" not in text
    assert 'name: "resnet"' in text
    assert "max_batch_size: 32" in text and "dynamic_batching" in text


def test_with_versions_refuses_an_empty_set_and_a_broken_config() -> None:
    with pytest.raises(BadInput, match="cannot be empty"):
        with_versions(CONFIG, [], "resnet")
    with pytest.raises(BadInput, match="does not parse"):
        with_versions("name: [", [1], "resnet")


def test_latest_policy_serves_no_specific_versions() -> None:
    assert served_versions(CONFIG) == []


def test_static_endpoints_keep_order_and_drop_duplicates() -> None:
    assert parse_endpoints(" a:8001, b:8001,a:8001 ") == ["a:8001", "b:8001"]
    with pytest.raises(BadInput, match="no endpoints"):
        parse_endpoints(" , ")


def test_pod_selector_parsing() -> None:
    assert parse_endpoints("k8s://mlops/app.kubernetes.io/name=triton:8001") == PodSelector(
        "mlops", "app.kubernetes.io/name=triton", 8001
    )
    for bad in ("k8s://mlops", "k8s://mlops/app=triton", "k8s:///app=x:1", "k8s://mlops/app=x:port"):
        with pytest.raises(BadInput, match="expected k8s://"):
            parse_endpoints(bad)


def test_only_running_pods_that_are_not_terminating_are_replicas() -> None:
    selector = PodSelector("mlops", "app=triton", 8001)
    items = [
        {"metadata": {"name": "t-1"}, "status": {"phase": "Running", "podIP": "10.0.0.2"}},
        {"metadata": {"name": "t-0"}, "status": {"phase": "Running", "podIP": "10.0.0.1"}},
        {"metadata": {"name": "t-2"}, "status": {"phase": "Pending"}},
        {
            "metadata": {"name": "t-3", "deletionTimestamp": "x"},
            "status": {"phase": "Running", "podIP": "10.0.0.3"},
        },
    ]
    ready, other = pods_from_api(selector, items)
    assert ready == ["10.0.0.1:8001", "10.0.0.2:8001"]
    assert other == ["t-2 (Pending)", "t-3 (Running, terminating)"]
