"""The platform's alerting and recording rules as a plain Prometheus rule file.

`infra/monitoring/prometheus-rules.yaml` is a PrometheusRule (Prometheus Operator); Prometheus
itself and `promtool test rules` read a rule file, whose `groups` are the PrometheusRule's
`spec.groups`. The local stack loads that file, so the same rules are evaluated on one machine
as on the cluster, and the unit tests feed the same file to promtool.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import BadInput

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
RULES_PATH = REPO_ROOT / "infra" / "monitoring" / "prometheus-rules.yaml"
# Alerts the local stack leaves out, and why: their target is not scraped on one machine.
LOCAL_EXCLUDED_ALERTS = {
    "MLflowDown": "the local MLflow runs without its Prometheus exporter; no `mlflow` job to be up",
}


def rule_groups(prometheus_rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The `spec.groups` of a PrometheusRule; BadInput when it is not one."""
    if prometheus_rule.get("kind") != "PrometheusRule":
        raise BadInput(f"expected a PrometheusRule, got kind {prometheus_rule.get('kind')!r}")
    groups = (prometheus_rule.get("spec") or {}).get("groups")
    if not isinstance(groups, list) or not groups:
        raise BadInput("the PrometheusRule has no spec.groups")
    return groups


def rule_file(prometheus_rule_text: str, exclude_alerts: Iterable[str] = ()) -> str:
    """A Prometheus rule file (`groups:`) from a PrometheusRule manifest, without `exclude_alerts`."""
    excluded = set(exclude_alerts)
    groups = []
    for group in rule_groups(yaml.safe_load(prometheus_rule_text) or {}):
        rules = [rule for rule in group["rules"] if rule.get("alert") not in excluded]
        if rules:
            groups.append({**group, "rules": rules})
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000)


def local_rule_file(path: Path = RULES_PATH) -> str:
    """The rule file the local Prometheus loads: the cluster's rules less LOCAL_EXCLUDED_ALERTS."""
    return rule_file(path.read_text(), LOCAL_EXCLUDED_ALERTS)


def alerts_without_runbook(groups: list[dict[str, Any]]) -> list[str]:
    """Names of the alerting rules whose `runbook` annotation is missing or empty."""
    return [
        rule["alert"]
        for group in groups
        for rule in group["rules"]
        if "alert" in rule and not str((rule.get("annotations") or {}).get("runbook", "")).strip()
    ]
