"""`{{...}}` substitution the way Argo does it; an unresolved tag is an error.

A simple tag (`{{inputs.parameters.x}}`) is looked up in the scope; an expression tag
(`{{=asInt(inputs.parameters.x) + 1}}`) is evaluated by `mlops.argo.exprtag` against the same scope.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlops.argo.exprtag import evaluate_tag

# DOTALL: an expression tag may span lines (`{{=\n  a ? b : c\n}}` in a folded YAML value), as in Argo
TAG = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)


class UnresolvedReference(ValueError):
    """A `{{...}}` tag with no value in scope; the message names it and where it was."""

    def __init__(self, name: str, where: str, known: list[str]) -> None:
        hint = ""
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the nearest enclosing scope with names in it
            prefix = ".".join(parts[:cut]) + "."
            siblings = sorted(k for k in known if k.startswith(prefix))
            if siblings:
                hint = f" (available: {', '.join(siblings)})"
                break
        super().__init__(f"{where}: cannot resolve {{{{{name}}}}}{hint}")
        self.name = name


def tags(text: str) -> list[str]:
    """The names inside every `{{...}}` tag of a string."""
    return [match.group(1) for match in TAG.finditer(text)]


def substitute(text: str, scope: Mapping[str, str], where: str) -> str:
    """Replace every `{{name}}` in `text` from `scope`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("="):
            return evaluate_tag(name[1:], scope, where)
        if name not in scope:
            raise UnresolvedReference(name, where, list(scope))
        return scope[name]

    return TAG.sub(replace, text)


def substitute_all(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """Substitute inside every string of a nested structure (lists, mappings)."""
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [substitute_all(item, scope, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: substitute_all(item, scope, f"{where}.{key}") for key, item in value.items()}
    return value


def as_text(value: Any) -> str:
    """A YAML scalar as Argo would pass it: booleans lower-case, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
