"""Workflow parameters: template defaults < `--params` file < `-p key=value`."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
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


def did_you_mean(key: str, *pools: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for the closest name in the first pool that has one, else ``."""
    for pool in pools:
        close = difflib.get_close_matches(key, list(pool), n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


def unknown_file_keys(
    values: Mapping[str, str], known: Collection[str], *, source: str, where: str, closest: Sequence[str] = ()
) -> list[str]:
    """A params file's keys that no workflow declares, each with the closest declared name.

    A params file is shared by the workflows of a folder (workflows/params/local.yaml serves all
    of them), so a key is fine when any workflow in `where` declares it; a key none declares is a
    misspelling that would otherwise leave the parameter at its default.
    """
    pool = sorted(known)
    return [
        f"{source}: {key}: no workflow in {where} declares this parameter{did_you_mean(key, closest, pool)}"
        for key in values
        if key not in known
    ]


def resolve_parameters(
    declared: Sequence[Mapping[str, Any]],
    file_values: Mapping[str, str],
    cli_values: Mapping[str, str],
    *,
    workflow: str,
    file_known: Collection[str] | None = None,
    file_source: str = "--params",
    file_where: str = "this folder",
) -> dict[str, str]:
    """Merge the three sources for the declared parameters; every one must end with a value.

    `file_known`: every parameter name the file may set (the folder's workflows' parameters);
    default: only this workflow's. A key outside it is refused like a bad `-p`.
    """
    names = [str(p.get("name")) for p in declared]
    errors = [
        f"-p {key}: {workflow} declares no parameter {key!r}{did_you_mean(key, names)} "
        f"(declared: {', '.join(names) or 'none'})"
        for key in cli_values
        if key not in names
    ]
    known = set(names) | set(file_known or ())
    errors += unknown_file_keys(file_values, known, source=file_source, where=file_where, closest=names)
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
