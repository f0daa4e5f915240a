"""The Pushgateway client against Debian's real Pushgateway (`pushgateway_url`, as `mlops up` runs it)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mlops.errors import BadInput, Transient
from mlops.pushgateway import Gauge, Pushgateway
from mlops.stack.manager import free_port

pytestmark = pytest.mark.integration


def group_metrics(url: str, model: str) -> dict[str, float]:
    """name{labels} -> value of the samples the Pushgateway holds for `model` (its /api/v1/metrics)."""
    found = {}
    for group in httpx.get(f"{url}/api/v1/metrics", timeout=10).json()["data"]:
        if group["labels"].get("model") != model:
            continue
        for name, family in group.items():
            if not isinstance(family, dict) or "metrics" not in family or name.startswith("push_"):
                continue
            for metric in family["metrics"]:
                labels = ",".join(f"{k}={v}" for k, v in sorted(metric["labels"].items()))
                found[f"{name}{{{labels}}}"] = float(metric["value"])
    return found


def test_a_push_replaces_the_groups_metrics(pushgateway_url: str) -> None:
    model = f"push-{uuid.uuid4().hex[:6]}"
    gateway = Pushgateway(pushgateway_url)
    gateway.push("mlops-probe", {"model": model}, [Gauge("mlops_probe_score", 0.5, {"version": "1"})])
    gateway.push("mlops-probe", {"model": model}, [Gauge("mlops_probe_score", 0.75, {"version": "2"})])
    held = group_metrics(pushgateway_url, model)
    # the second push replaced the first: version 1's figure does not linger beside version 2's
    assert held == {f"mlops_probe_score{{instance=,job=mlops-probe,model={model},version=2}}": 0.75}
    gateway.delete("mlops-probe", {"model": model})
    assert group_metrics(pushgateway_url, model) == {}


def test_a_push_the_gateway_refuses_is_bad_input_and_the_group_keeps_its_metrics(
    pushgateway_url: str,
) -> None:
    model = f"push-{uuid.uuid4().hex[:6]}"
    name = f"probe_test_{uuid.uuid4().hex[:6]}"
    gateway = Pushgateway(pushgateway_url)
    gateway.push("mlops-probe", {"model": model}, [Gauge("mlops_probe_score", 0.5, {"version": "1"})])
    # another group holds `name` as a counter: a gauge of that name is inconsistent (400)
    other = httpx.put(
        f"{pushgateway_url}/metrics/job/other/model/{model}",
        content=f"# TYPE {name} counter\n{name} 1\n".encode(),
        timeout=10,
    )
    assert other.status_code == 200, other.text
    with pytest.raises(BadInput, match="refused the push"):
        gateway.push("mlops-probe", {"model": model}, [Gauge(name, 2.0, {"version": "2"})])
    held = group_metrics(pushgateway_url, model)
    assert held[f"mlops_probe_score{{instance=,job=mlops-probe,model={model},version=1}}"] == 0.5
    gateway.delete("mlops-probe", {"model": model})
    httpx.delete(f"{pushgateway_url}/metrics/job/other/model/{model}", timeout=10)


def test_a_gateway_that_is_down_is_transient() -> None:
    with pytest.raises(Transient, match="Pushgateway"):
        Pushgateway(f"http://127.0.0.1:{free_port()}", timeout_s=2).push("j", {}, [Gauge("x", 1.0)])
