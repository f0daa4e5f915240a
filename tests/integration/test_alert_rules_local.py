"""The local stack's Prometheus (Debian's, started as `mlops up` starts it) loads infra/monitoring's
rules and evaluates them: `TritonDown` goes pending while nothing answers on the Triton metrics
port and resolves once a Triton-shaped /metrics page is served there.

The page is served by a stdlib HTTP server in this test: what is under test is Prometheus and the
rule file, not Triton (the stand-in's own metrics are tested with it).
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlops.stack.alert_rules import LOCAL_EXCLUDED_ALERTS, RULES_PATH, rule_groups
from mlops.stack.manager import StackManager, free_port
from mlops.stack.services import Ports, prometheus_service

pytestmark = pytest.mark.integration

TRITON_PAGE = (
    "# TYPE nv_inference_request_success counter\n"
    'nv_inference_request_success{model="resnet18-imagenette-onnx",version="1"} 0\n'
    "# TYPE nv_inference_count counter\n"
    'nv_inference_count{model="resnet18-imagenette-onnx",version="1"} 0\n'
)


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = TRITON_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    ports = Ports(prometheus=free_port(), vllm=free_port(), triton_metrics=free_port())
    spec = prometheus_service(tmp_path, ports)
    if spec.skip_reason:
        raise RuntimeError(f"Prometheus is part of the local stack: {spec.skip_reason}")
    manager = StackManager(tmp_path, [spec], ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    try:
        yield spec.url, ports.triton_metrics
    finally:
        manager.down(progress=lambda line: print(f"[stack] {line}"))


def wait_for(what: str, probe: Any, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def alert_state(url: str, name: str) -> str:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    states = [a["state"] for a in alerts if a["labels"]["alertname"] == name]
    return states[0] if states else "inactive"


def test_local_prometheus_evaluates_the_rules_and_an_alert_resolves(prometheus: tuple[str, int]) -> None:
    url, triton_port = prometheus
    expected = rule_groups(yaml.safe_load(RULES_PATH.read_text()))

    def all_rules_evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return groups if rules and all(rule["health"] == "ok" for rule in rules) else None

    groups = wait_for("every rule evaluated with health ok", all_rules_evaluated)
    assert sorted(g["name"] for g in groups) == sorted(g["name"] for g in expected)
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    wanted = {r.get("alert") or r["record"] for g in expected for r in g["rules"]} - set(
        LOCAL_EXCLUDED_ALERTS
    )
    assert loaded == wanted

    # nothing listens on the Triton metrics port: TritonDown is pending (it fires after 5 minutes)
    wait_for("TritonDown pending", lambda: alert_state(url, "TritonDown") == "pending")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", triton_port), _MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_for("TritonDown resolved", lambda: alert_state(url, "TritonDown") == "inactive")
        up = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="triton"}'}, timeout=5).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        server.shutdown()
        server.server_close()
