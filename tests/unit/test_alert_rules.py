"""The alerting rules, tested with Prometheus' own `promtool test rules` (series in, alerts out).

The rule file is made from infra/monitoring/prometheus-rules.yaml exactly as the local stack makes
it; the promtool test files are tests/unit/alerts/*.test.yaml. Broken copies (a threshold moved,
a runbook dropped) must make promtool fail.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.errors import BadInput
from mlops.stack.alert_rules import (
    LOCAL_EXCLUDED_ALERTS,
    RULES_PATH,
    alerts_without_runbook,
    rule_file,
    rule_groups,
)
from mlops.stack.services import Ports, prometheus_service

ALERT_TESTS = Path(__file__).parent / "alerts"
TEST_FILES = sorted(ALERT_TESTS.glob("*.test.yaml"))


@pytest.fixture  # a PATH lookup: per test, so the promtool runs spread over the xdist workers
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: apt-get install prometheus (Debian's package ships it; `make env` does)"
    return path


def promtool_test(
    promtool: str, rules_text: str, where: Path, files: list[Path]
) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` on copies of `files` next to `rules_text` written as rules.yml."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "rules.yml").write_text(rule_file(rules_text))
    for test_file in files:
        shutil.copy(test_file, where / test_file.name)
    return subprocess.run(
        [promtool, "test", "rules", *(f.name for f in files)],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def groups() -> list[dict[str, Any]]:
    return rule_groups(yaml.safe_load(RULES_PATH.read_text()))


def alert_names(rule_groups_: list[dict[str, Any]]) -> set[str]:
    return {rule["alert"] for group in rule_groups_ for rule in group["rules"] if "alert" in rule}


def alerts_tested(group: dict[str, Any]) -> set[str]:
    """The alerts one promtool test group asserts on (firing or silent)."""
    return {t["alertname"] for t in group.get("alert_rule_test", [])}


def alerts_without_a_firing_test(rule_groups_: list[dict[str, Any]], test_files: list[Path]) -> set[str]:
    """Alerts that no promtool test expects to fire (a test only of silence proves nothing)."""
    fired = {
        case["alertname"]
        for path in test_files
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    return alert_names(rule_groups_) - fired


def test_promtool_tests_pass(promtool: str, tmp_path: Path) -> None:
    assert len(TEST_FILES) == 5
    answer = promtool_test(promtool, RULES_PATH.read_text(), tmp_path, TEST_FILES)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert answer.stdout.count("SUCCESS") == len(TEST_FILES)


def test_promtool_checks_the_rule_file(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(rule_file(RULES_PATH.read_text()))
    answer = subprocess.run(
        [promtool, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    rules = sum(len(group["rules"]) for group in groups())
    assert f"SUCCESS: {rules} rules found" in answer.stdout


def test_every_alert_has_a_test_that_expects_it_to_fire() -> None:
    assert alerts_without_a_firing_test(groups(), TEST_FILES) == set()
    # the check itself: an alert nobody tests is reported
    extra = [*groups(), {"name": "x", "rules": [{"alert": "Untested", "expr": "vector(1)"}]}]
    assert alerts_without_a_firing_test(extra, TEST_FILES) == {"Untested"}


def test_every_alert_has_a_runbook() -> None:
    assert len(alert_names(groups())) >= 22
    assert alerts_without_runbook(groups()) == []
    broken = groups()
    del broken[1]["rules"][0]["annotations"]["runbook"]
    broken[2]["rules"][0]["annotations"]["runbook"] = "  "
    assert alerts_without_runbook(broken) == [broken[1]["rules"][0]["alert"], broken[2]["rules"][0]["alert"]]


# (what is broken, the text replaced, its replacement, the test file that must now fail; with
# `#Alert`, only that file's test groups that test Alert: regression.test.yaml simulates 26 hours
# per group with two rule groups at 30 s, about 2 s of promtool each, and the broken alert is
# tested by three of its seven)
BROKEN_COPIES = [
    (
        "vLLM latency regression ratio 1.5 -> 5",
        "mlops:vllm_e2e_latency_seconds:p95_rate30m > 1.5 *",
        "mlops:vllm_e2e_latency_seconds:p95_rate30m > 5 *",
        "regression.test.yaml#VLLMLatencyRegression",
    ),
    (
        "throughput regression without its queue condition",
        "and on() mlops:vllm_requests_waiting:avg30m > 1",
        "",
        "regression.test.yaml#VLLMThroughputRegression",
    ),
    (
        "KV cache threshold 0.9 -> 0.96",
        'max by (instance) (vllm:kv_cache_usage_perc{job="vllm"}) > 0.9',
        'max by (instance) (vllm:kv_cache_usage_perc{job="vllm"}) > 0.96',
        "saturation.test.yaml",
    ),
    (
        "GPU threshold 95 -> 50",
        "DCGM_FI_DEV_GPU_UTIL[15m]) > 95",
        "DCGM_FI_DEV_GPU_UTIL[15m]) > 50",
        "saturation.test.yaml",
    ),
    (
        "P95 latency SLO 8 s -> 10 s",
        '(rate(vllm:e2e_request_latency_seconds_bucket{job="vllm"}[10m]))) > 8',
        '(rate(vllm:e2e_request_latency_seconds_bucket{job="vllm"}[10m]))) > 10',
        "slo.test.yaml",
    ),
    ("a runbook line changed", "the Rollout and its readiness probe", "the pods", "slo.test.yaml"),
    (
        "probe score compared without its confidence interval",
        '< mlops_probe_score_release{job="mlops-probe"} - mlops_probe_score_ci_halfwidth{job="mlops-probe"}',
        '< mlops_probe_score_release{job="mlops-probe"}',
        "drift.test.yaml",
    ),
    (
        "refusal-rate tolerance 0.1 -> 0.3",
        'mlops_probe_refusal_rate_release{job="mlops-probe"}) > 0.1',
        'mlops_probe_refusal_rate_release{job="mlops-probe"}) > 0.3',
        "drift.test.yaml",
    ),
    (
        "refusal rate watched only upwards",
        'abs(mlops_probe_refusal_rate{job="mlops-probe"} - mlops_probe_refusal_rate_release{job="mlops-probe"})',
        '(mlops_probe_refusal_rate_release{job="mlops-probe"} - mlops_probe_refusal_rate{job="mlops-probe"})',
        "drift.test.yaml",
    ),
    (
        "PSI threshold 0.2 -> 0.4",
        'mlops_vision_psi{job="mlops-probe"} > 0.2',
        'mlops_vision_psi{job="mlops-probe"} > 0.4',
        "drift.test.yaml",
    ),
    ("stale after 3 days, not 2", "> 2 * 86400", "> 3 * 86400", "stale.test.yaml"),
]


@pytest.mark.parametrize(
    ("old", "new", "test_file"), [c[1:] for c in BROKEN_COPIES], ids=[c[0] for c in BROKEN_COPIES]
)
def test_promtool_fails_on_a_broken_copy(
    promtool: str, tmp_path: Path, old: str, new: str, test_file: str
) -> None:
    text = RULES_PATH.read_text()
    assert text.count(old) == 1, old
    name, _, alert = test_file.partition("#")
    tests = ALERT_TESTS / name
    if alert:  # only the groups that test `alert`, as a file of their own
        tests = tmp_path / "selected" / name
        tests.parent.mkdir()
        document = yaml.safe_load((ALERT_TESTS / name).read_text())
        document["tests"] = [g for g in document["tests"] if alert in alerts_tested(g)]
        assert document["tests"], f"no test group of {name} tests {alert}"
        tests.write_text(yaml.safe_dump(document, sort_keys=False))
    answer = promtool_test(promtool, text.replace(old, new), tmp_path / "run", [tests])
    assert answer.returncode != 0
    assert "FAILED" in answer.stdout + answer.stderr
    if alert:  # it failed on that alert's expectations, not on the file made from the groups
        assert f"alertname: {alert}," in answer.stdout + answer.stderr


def test_rule_file_is_the_prometheus_rule_groups_less_excluded_alerts() -> None:
    text = RULES_PATH.read_text()
    plain = yaml.safe_load(rule_file(text))["groups"]
    assert plain == groups()
    local = yaml.safe_load(rule_file(text, {"MLflowDown"}))["groups"]
    assert alert_names(local) == alert_names(groups()) - {"MLflowDown"}
    with pytest.raises(BadInput, match="expected a PrometheusRule"):
        rule_file("kind: ConfigMap\n")
    with pytest.raises(BadInput, match=r"no spec\.groups"):
        rule_file("kind: PrometheusRule\nspec: {}\n")


def test_local_prometheus_loads_the_rules(promtool: str, tmp_path: Path) -> None:
    """The stack's prometheus.yml names rules.yml, and promtool accepts both as Prometheus would."""
    spec = prometheus_service(tmp_path, Ports(prometheus=15590, vllm=15591, triton_metrics=15592))
    for name, text in spec.files.items():
        (tmp_path / name).write_text(text)
    config = yaml.safe_load(spec.files["prometheus.yml"])
    assert config["rule_files"] == ["rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # the probes' figures keep their pushed job and labels (job="mlops-probe", model, version)
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"] == [{"targets": ["127.0.0.1:9091"]}]
    assert "honor_labels" not in jobs["vllm"]
    local = yaml.safe_load(spec.files["rules.yml"])["groups"]
    assert alert_names(local) == alert_names(groups()) - set(LOCAL_EXCLUDED_ALERTS)
    answer = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "rules.yml" in answer.stdout and "SUCCESS" in answer.stdout
