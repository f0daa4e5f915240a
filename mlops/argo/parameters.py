"""Workflow parameters: template defaults < `--params` file < `-p key=value`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mlops.argo.substitute import as_text


class WorkflowInvalid(ValueError):
    """The workflow, its references or its parameters are wrong; nothing was run."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def params_file_errors(path: Path) -> tuple[dict[str, str], list[str]]:
    """Read a flat `name: value` YAML mapping; (values, problems)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        return {}, [f"{path}: cannot read: {exc.strerror or exc}"]
    except yaml.YAMLError as exc:
        return {}, [f"{path}: not valid YAML: {exc}"]
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [f"{path}: expected a flat mapping of parameter: value, found {type(data).__name__}"]
    values: dict[str, str] = {}
    errors: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str):
            errors.append(f"{path}: key {key!r} is not a string")
        elif isinstance(value, (dict, list)):
            errors.append(f"{path}: {key}: expected a single value, found a {type(value).__name__}")
        elif value is None:
            errors.append(f"{path}: {key}: has no value")
        else:
            values[key] = as_text(value)
    return values, errors


def load_params_file(path: str | Path) -> dict[str, str]:
    """The values of a `--params` file; WorkflowInvalid if it is not a flat mapping."""
    values, errors = params_file_errors(Path(path))
    if errors:
        raise WorkflowInvalid(errors)
    return values


def parse_parameter_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`-p key=value` arguments as a dict; WorkflowInvalid naming any pair without `=`."""
    values: dict[str, str] = {}
    errors: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            errors.append(f"-p {pair!r}: expected key=value")
            continue
        values[key.strip()] = value
    if errors:
        raise WorkflowInvalid(errors)
    return values


def resolve_parameters(
    declared: Sequence[Mapping[str, Any]],
    file_values: Mapping[str, str],
    cli_values: Mapping[str, str],
    *,
    workflow: str,
) -> dict[str, str]:
    """Merge the three sources for the declared parameters; every one must end with a value."""
    names = [str(p.get("name")) for p in declared]
    errors = [
        f"-p {key}: {workflow} declares no parameter {key!r} (declared: {', '.join(names) or 'none'})"
        for key in cli_values
        if key not in names
    ]
    values: dict[str, str] = {}
    for param in declared:
        name = str(param.get("name"))
        if name in cli_values:
            values[name] = cli_values[name]
        elif name in file_values:
            values[name] = file_values[name]
        elif param.get("value") is not None:
            values[name] = as_text(param["value"])
        else:
            errors.append(
                f"parameter {name!r} has no value: pass -p {name}=... or put it in the --params file"
            )
            continue
        enum = param.get("enum")
        if enum and values[name] not in [as_text(v) for v in enum]:
            errors.append(
                f"parameter {name!r}: {values[name]!r} is not one of {', '.join(map(as_text, enum))}"
            )
    if errors:
        raise WorkflowInvalid(errors)
    return values
