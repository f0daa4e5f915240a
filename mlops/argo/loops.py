"""Argo's loops: `withItems`, `withParam`, `withSequence` expanded into items, `{{item}}` variables,
and the aggregated outputs of a looped step or task.

https://argo-workflows.readthedocs.io/en/latest/walk-through/loops/ and
https://argo-workflows.readthedocs.io/en/latest/fields/#sequence. A looped step becomes one node
per item, named `name(i:item)`; `steps.NAME.outputs.parameters.P` (and `outputs.result`) of the
group is a JSON list of each item's value in item order, a value that is itself JSON kept as JSON,
as Argo's controller aggregates them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mlops.argo.substitute import as_text, substitute, substitute_all


def _sequence(spec: Mapping[str, Any], scope: Mapping[str, str], where: str) -> list[str]:
    def number(key: str) -> int | None:
        value = spec.get(key)
        if value is None:
            return None
        text = substitute(as_text(value), scope, f"{where}.withSequence.{key}")
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{where}.withSequence.{key}: {text!r} is not an integer") from None

    count, start, end = number("count"), number("start"), number("end")
    if count is not None and end is not None:
        raise ValueError(f"{where}.withSequence: use either count or end, not both")
    first = start or 0
    if count is not None:
        numbers = list(range(first, first + count))
    elif end is not None:
        numbers = list(range(first, end + 1)) if end >= first else list(range(first, end - 1, -1))
    else:
        raise ValueError(f"{where}.withSequence: needs count or end")
    fmt = spec.get("format")
    if not fmt:
        return [str(n) for n in numbers]
    try:
        return [str(fmt) % n for n in numbers]  # printf-style, as Go's fmt.Sprintf
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}.withSequence.format: {fmt!r}: {exc}") from None


def loop_items(step: Mapping[str, Any], scope: Mapping[str, str], where: str) -> list[Any] | None:
    """The items a step or task loops over, or None when it has no loop; ValueError naming a bad one."""
    if "withItems" in step:
        items = substitute_all(step["withItems"], scope, f"{where}.withItems")
        if not isinstance(items, list):
            raise ValueError(f"{where}.withItems: expected a list")
        return items
    if "withParam" in step:
        text = substitute(as_text(step["withParam"]), scope, f"{where}.withParam")
        try:
            items = json.loads(text)
        except ValueError:
            raise ValueError(f"{where}.withParam: {text[:80]!r} is not a JSON list") from None
        if not isinstance(items, list):
            raise ValueError(f"{where}.withParam: {text[:80]!r} is not a JSON list")
        return items
    if "withSequence" in step:
        return _sequence(step["withSequence"] or {}, scope, where)
    return None


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return as_text(value)


def item_scope(item: Any) -> dict[str, str]:
    """`{{item}}`, and for a mapping `{{item.KEY}}` (nested keys dotted)."""
    scope = {"item": _text(item)}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                scope[f"{prefix}.{key}"] = _text(inner)
                flatten(f"{prefix}.{key}", inner)

    flatten("item", item)
    return scope


def item_label(item: Any) -> str:
    """The part of a loop node's name after the index, as `argo get` shows it."""
    if isinstance(item, dict):
        return ",".join(f"{k}:{_text(v)}" for k, v in item.items())
    return _text(item)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def aggregate_outputs(
    members: Sequence[tuple[Mapping[str, str], str | None, str]],
) -> tuple[dict[str, str], str | None]:
    """(outputs.parameters, outputs.result) of a loop group from its members' (outputs, result, phase)."""
    values: dict[str, list[Any]] = {}
    results: list[Any] = []
    for outputs, result, _ in members:
        for name, value in outputs.items():
            values.setdefault(name, []).append(_json_or_text(value))
        if result is not None:
            results.append(_json_or_text(result))
    aggregated = {name: json.dumps(found, separators=(",", ":")) for name, found in values.items()}
    return aggregated, (json.dumps(results, separators=(",", ":")) if results else None)


def parameter_list(members: Sequence[Mapping[str, str]]) -> str:
    """A loop group's whole `outputs.parameters`: a JSON list of each item's {name: value}, as Argo writes it.

    Items without output parameters are left out, keys are sorted and values stay strings
    (Go's json.Marshal of the controller's []map[string]string).
    """
    found = [dict(outputs) for outputs in members if outputs]
    return json.dumps(found, separators=(",", ":"), sort_keys=True)
