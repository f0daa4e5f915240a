"""Typed step configuration: defaults < YAML file (`--config`) < `MLOPS_*` env < CLI flags.

A step's config is a pydantic model with `extra="forbid"`, so a misspelt key in the YAML
file or an unknown flag is an error (exit 2), never silently ignored. Field `snake_name`
is flag `--snake-name` and env `MLOPS_SNAKE_NAME`, which is what Argo templates pass.
A field without a default is a required input: given by none of the sources, or given empty
(an Argo parameter that resolved to ""), it is bad input naming its flag.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.errors import BadInput

ENV_PREFIX = "MLOPS_"


class StepConfig(BaseModel):
    """Base class of every step config: strict keys, validated assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


C = TypeVar("C", bound=StepConfig)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def cli_flags(config_cls: type[StepConfig]) -> set[str]:
    """The flags a step accepts (used by `mlops lint` to check workflow args)."""
    return {flag_name(name) for name in config_cls.model_fields} | {"--config"}


def required_fields(config_cls: type[StepConfig]) -> list[str]:
    """The fields without a default: inputs a step cannot run without."""
    return [name for name, field in config_cls.model_fields.items() if field.is_required()]


def required_flags(config_cls: type[StepConfig]) -> set[str]:
    """The flags of the required fields (`mlops lint` reports a container that passes none of one)."""
    return {flag_name(name) for name in required_fields(config_cls)}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a malformed command line as BadInput instead of exiting the process."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(
            f"{message} (write negative numbers as --flag=-1)"
            if "expected one argument" in message
            else message
        )


def build_parser(
    config_cls: type[StepConfig], prog: str | None, description: str | None
) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description=description, allow_abbrev=False)
    parser.add_argument("--config", metavar="FILE", help="YAML file with values for any of the options below")
    # Not argparse's required=True: the env or --config may give the value instead of the flag.
    required = parser.add_argument_group("required (as a flag, in the env or in --config)")
    optional = parser.add_argument_group("optional")
    for name, field in config_cls.model_fields.items():
        help_text = (field.description or "").replace("%", "%%")
        env = f"env {ENV_PREFIX}{name.upper()}"
        if field.is_required():
            group, where = required, f"required; {env}"
        else:
            group, where = optional, f"default: {field.get_default(call_default_factory=True)!r}; {env}"
        group.add_argument(
            flag_name(name),
            dest=name,
            metavar=name.upper(),
            default=argparse.SUPPRESS,
            help=f"{help_text} ({where})",
        )
    return parser


def _missing(config_cls: type[StepConfig], values: Mapping[str, Any]) -> list[str]:
    """The required fields not given, or given empty (an Argo parameter that resolved to "")."""
    return [
        name
        for name in required_fields(config_cls)
        if values.get(name) is None or (isinstance(values[name], str) and not values[name].strip())
    ]


def _load_yaml(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise BadInput(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInput(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _from_env(config_cls: type[StepConfig], env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: env[f"{ENV_PREFIX}{name.upper()}"]
        for name in config_cls.model_fields
        if f"{ENV_PREFIX}{name.upper()}" in env
    }


def load_config(
    config_cls: type[C],
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    prog: str | None = None,
    description: str | None = None,
) -> C:
    """Resolve a config from defaults, `--config FILE`, env and flags; BadInput on any error."""
    parser = build_parser(config_cls, prog, description)
    args, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    if unknown:
        known = ", ".join(sorted(cli_flags(config_cls)))
        raise BadInput(f"unknown option(s) {' '.join(unknown)}; this step accepts: {known}")
    values: dict[str, Any] = {}
    cli = vars(args)
    config_file = cli.pop("config", None)
    if config_file:
        file_values = _load_yaml(config_file)
        unknown_keys = sorted(set(file_values) - set(config_cls.model_fields))
        if unknown_keys:
            raise BadInput(
                f"unknown key(s) {unknown_keys} in {config_file}; known: {sorted(config_cls.model_fields)}"
            )
        values.update(file_values)
    values.update(_from_env(config_cls, os.environ if env is None else env))
    values.update(cli)
    missing = _missing(config_cls, values)
    try:
        return config_cls.model_validate({k: v for k, v in values.items() if k not in missing})
    except ValidationError as exc:
        problems = [
            f"{flag_name(n)} is required: {config_cls.model_fields[n].description or n}" for n in missing
        ]
        invalid = [
            f"{flag_name(str(err['loc'][0])) if err['loc'] else 'config'}: {err['msg']}"
            for err in exc.errors()
            if not (err["loc"] and err["loc"][0] in missing)  # said above, once
        ]
        if invalid:
            problems.append(f"invalid configuration: {'; '.join(invalid)}")
        raise BadInput("; ".join(problems)) from exc
