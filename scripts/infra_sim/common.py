"""What the simulations share: findings, rendered builds, label selectors, quantities."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")


@dataclass(frozen=True)
class Finding:
    where: str
    message: str


@dataclass(frozen=True)
class Build:
    """The objects one `kubectl kustomize DIR` produced, named by DIR (relative to the repository)."""

    path: str
    objects: list[dict[str, Any]]

    def of_kind(self, *kinds: str) -> Iterator[dict[str, Any]]:
        return (o for o in self.objects if o.get("kind") in kinds)


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj.get('kind')} {namespace + '/' if namespace else ''}{meta.get('name')}"


def api_group(api_version: str) -> str:
    """`apps/v1` -> `apps`; `v1` -> `` (the core group)."""
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes LabelSelector: matchLabels and matchExpressions all hold; `{}` selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {operator!r}")
    return True


_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity (`250m`, `2`, `4Gi`) as a number; ValueError if it is none."""
    found = _QUANTITY.match(str(value).strip())
    if not found:
        raise ValueError(f"not a resource quantity: {value!r}")
    return Decimal(found.group(1)) * _SUFFIX[found.group(2) or ""]
