"""`{{=...}}` expression tags: Argo's expr-lang expressions with its functions and sprig's.

https://argo-workflows.readthedocs.io/en/latest/variables/#expression. The expression sees the
same variables as a `{{...}}` tag, nested by their dots (`inputs.parameters.x`,
`inputs.parameters['my-param']`, `steps.a.outputs.result`, `item`, `workflow.name`), every value a
string as in Argo. Functions: Argo's (`asInt`, `asFloat`, `string`, `toJson`, `jsonpath`), a few of
expr-lang's built-ins, and `sprig.NAME(...)` for the sprig functions in `SPRIG`. Anything else is
refused by name (lint and run). The result is written the way Go's `fmt.Sprintf("%v")` writes it:
`3`, `1.5`, `true`, `[a b]`. Parsing and evaluation are `mlops.argo.expr`'s; nothing is `eval`ed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from mlops.argo.expr import EXPR, FUNCTIONS, ExpressionError, evaluate, parse


def _empty(value: Any) -> bool:
    """sprig's `empty`: nil, "", 0, false and empty collections."""
    return value is None or value is False or value == "" or value == 0 or value in ([], {})


def _to_int64(value: Any) -> int:
    """sprig's toInt64 (spf13/cast): strings parsed (a trailing `.0` allowed), anything unparsable is 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = re.sub(r"\.0*$", "", value.strip())
        try:
            return int(text, 0) if text[:2].lower() in ("0x", "0o", "0b") else int(text)
        except ValueError:
            return 0
    return 0


def _to_float64(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return 0.0
    return 0.0


def _go_div(a: Any, b: Any) -> int:
    left, right = _to_int64(a), _to_int64(b)
    if right == 0:
        raise ExpressionError("sprig.div: division by zero")
    quotient = abs(left) // abs(right)
    return quotient if (left >= 0) == (right >= 0) else -quotient  # Go truncates toward zero


def _go_mod(a: Any, b: Any) -> int:
    left, right = _to_int64(a), _to_int64(b)
    if right == 0:
        raise ExpressionError("sprig.mod: division by zero")
    return left - right * _go_div(left, right)


def _text(value: Any) -> str:
    """A sprig string argument: a non-string is written as Go's %v writes it."""
    return value if isinstance(value, str) else go_format(value)


def _default(default: Any, *given: Any) -> Any:
    return default if not given or _empty(given[0]) else given[0]


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)  # Go's encoding/json writes 2.0 as 2
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> str:
    """Go's json.Marshal: keys sorted, no spaces."""
    return json.dumps(_json_ready(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


_JSONPATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+|\*|'[^']*'|\"[^\"]*\")\]|\.\*")


def jsonpath(document: Any, path: Any) -> Any:
    """Argo's `jsonpath(json, path)` for the common subset: `$`, `.key`, `['key']`, `[n]`, `[*]`, `.*`."""
    if not isinstance(document, str) or not isinstance(path, str):
        raise ExpressionError("jsonpath: needs a JSON string and a path string")
    try:
        data = json.loads(document)
    except ValueError:
        raise ExpressionError(f"jsonpath: {document[:60]!r} is not JSON") from None
    text = path.strip()
    if not text.startswith("$"):
        raise ExpressionError(f"jsonpath: path {path!r} must start with '$'")
    pos = 1
    values, many = [data], False
    while pos < len(text):
        match = _JSONPATH_STEP.match(text, pos)
        if match is None:
            raise ExpressionError(
                f"jsonpath: {text[pos:]!r} in {path!r} is not supported by the local executor "
                "(supported: .key, ['key'], [n], [*], .*)"
            )
        key, bracket = match.group(1), match.group(2)
        found: list[Any] = []
        for value in values:
            if key is not None or (bracket and bracket[0] in "'\""):
                name = key if key is not None else bracket[1:-1]
                if not isinstance(value, dict) or name not in value:
                    raise ExpressionError(f"jsonpath: unknown key {name!r} in {path!r}")
                found.append(value[name])
            elif bracket is not None and bracket.isdigit():
                if not isinstance(value, list) or int(bracket) >= len(value):
                    raise ExpressionError(f"jsonpath: index {bracket} out of range in {path!r}")
                found.append(value[int(bracket)])
            else:  # [*] or .*
                many = True
                found.extend(value if isinstance(value, list) else list(value.values()))
        values = found
        pos = match.end()
    return values if many else values[0]


def _from_json(text: Any) -> Any:
    if not isinstance(text, str):
        raise ExpressionError("fromJSON: needs a string")
    try:
        return json.loads(text)
    except ValueError:
        raise ExpressionError(f"fromJSON: {text[:60]!r} is not JSON") from None


def _split(text: Any, sep: Any) -> list[str]:
    if not isinstance(text, str) or not isinstance(sep, str):
        raise ExpressionError("split: needs two strings")
    return text.split(sep)


def _join(items: Any, sep: Any = "") -> str:
    if not isinstance(items, list) or not isinstance(sep, str):
        raise ExpressionError("join: needs a list and a string")
    return sep.join(go_format(i) for i in items)


def _ternary(if_true: Any, if_false: Any, condition: Any) -> Any:
    if not isinstance(condition, bool):
        raise ExpressionError(f"sprig.ternary: condition {go_format(condition)!r} is not a boolean")
    return if_true if condition else if_false


def _b64dec(value: Any) -> str:
    try:
        return base64.b64decode(_text(value)).decode()
    except ValueError:
        raise ExpressionError(f"sprig.b64dec: {value!r} is not base64") from None


def _variadic_int(fn: Callable[[list[int]], int]) -> Callable[..., int]:
    def apply(first: Any, *rest: Any) -> int:
        return fn([_to_int64(v) for v in (first, *rest)])

    return apply


def _product(numbers: list[int]) -> int:
    out = 1
    for n in numbers:
        out *= n
    return out


SPRIG: dict[str, Callable[..., Any]] = {
    "trim": lambda s: _text(s).strip(),
    "trimAll": lambda cut, s: _text(s).strip(_text(cut)),
    "trimPrefix": lambda prefix, s: _text(s).removeprefix(_text(prefix)),
    "trimSuffix": lambda suffix, s: _text(s).removesuffix(_text(suffix)),
    "upper": lambda s: _text(s).upper(),
    "lower": lambda s: _text(s).lower(),
    "title": lambda s: _text(s).title(),
    "replace": lambda old, new, s: _text(s).replace(_text(old), _text(new)),
    "contains": lambda sub, s: _text(sub) in _text(s),
    "hasPrefix": lambda prefix, s: _text(s).startswith(_text(prefix)),
    "hasSuffix": lambda suffix, s: _text(s).endswith(_text(suffix)),
    "quote": lambda s: json.dumps(_text(s), ensure_ascii=False),
    "squote": lambda s: f"'{_text(s)}'",
    "default": _default,
    "empty": _empty,
    "coalesce": lambda *values: next((v for v in values if not _empty(v)), None),
    "ternary": _ternary,
    "add": _variadic_int(sum),
    "add1": lambda a: _to_int64(a) + 1,
    "sub": lambda a, b: _to_int64(a) - _to_int64(b),
    "mul": _variadic_int(_product),
    "div": _go_div,
    "mod": _go_mod,
    "max": _variadic_int(max),
    "min": _variadic_int(min),
    "addf": lambda *values: sum(_to_float64(v) for v in values),
    "subf": lambda a, b: _to_float64(a) - _to_float64(b),
    "mulf": lambda a, b: _to_float64(a) * _to_float64(b),
    "int": _to_int64,
    "int64": _to_int64,
    "atoi": lambda s: _to_int64(_text(s)),
    "float64": _to_float64,
    "toString": lambda v: go_format(v),
    "toJson": to_json,
    "splitList": lambda sep, s: _text(s).split(_text(sep)),
    "join": lambda sep, items: _join(items, _text(sep)),
    "b64enc": lambda s: base64.b64encode(_text(s).encode()).decode(),
    "b64dec": _b64dec,
}
# Argo's own functions and the expr-lang built-ins the local executor knows, then `sprig.*`.
TAG_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **FUNCTIONS,
    "toJson": to_json,
    "toJSON": to_json,
    "fromJSON": _from_json,
    "jsonpath": jsonpath,
    "split": _split,
    "join": _join,
    **{f"sprig.{name}": fn for name, fn in SPRIG.items()},
}


def _go_float(value: float) -> str:
    """Go's `%v` for a float64 (`%g`, shortest digits): an exponent when it is below -4 or at least 6."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[str(value)]
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point within `text`
    exp = point - 1
    head = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{head}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{head}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{head}{text}{'0' * (point - len(text))}"
    return f"{head}{text[:point]}.{text[point:]}"


def go_format(value: Any) -> str:
    """A value as Go's `fmt.Sprintf("%v")` writes it (what Argo puts in place of the tag)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value, key=str)) + "]"
    return str(value)


def expression_env(scope: Mapping[str, str]) -> dict[str, Any]:
    """The variables of a `{{...}}` scope as nested maps: `inputs.parameters.x` -> env['inputs']['parameters']['x'].

    A name that is both a value and a prefix of others (`item` with `item.a`) is the map.
    """
    env: dict[str, Any] = {}
    for name in sorted(scope, key=lambda n: n.count(".")):
        parts = name.split(".")
        here = env
        for part in parts[:-1]:
            inner = here.get(part)
            if not isinstance(inner, dict):
                inner = here[part] = {}
            here = inner
        if not isinstance(here.get(parts[-1]), dict):
            here[parts[-1]] = scope[name]
    return env


def evaluate_tag(expression: str, scope: Mapping[str, str], where: str) -> str:
    """The text Argo writes in place of `{{=expression}}`; ExpressionError names the tag and why."""
    try:
        value = evaluate(expression, expression_env(scope), dialect=EXPR, functions=TAG_FUNCTIONS)
    except ExpressionError as exc:
        raise ExpressionError(f"{where}: {{{{={expression}}}}}: {exc}") from None
    if value is None:
        raise ExpressionError(f"{where}: {{{{={expression}}}}} evaluated to nil")
    return go_format(value)


def _walk(node: Any) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, tuple) and node:
        yield node
        for part in node[1:]:
            yield from _walk(part)
    elif isinstance(node, list):
        for part in node:
            yield from _walk(part)


def _chain(node: tuple[Any, ...]) -> str | None:
    """`inputs.parameters['x']` -> "inputs.parameters.x"; None for anything but names and literal keys."""
    parts: list[str] = []
    while node[0] in ("member", "index"):
        if node[0] == "member":
            parts.append(node[2])
        elif node[2][0] == "lit" and isinstance(node[2][1], str):
            parts.append(node[2][1])
        else:
            return None
        node = node[1]
    if node[0] != "var":
        return None
    return ".".join([node[1], *reversed(parts)])


def tag_names(expression: str) -> tuple[list[str], list[str]]:
    """(variables, unsupported functions) an expression tag uses; ExpressionError if it does not parse.

    Variables are the longest dotted chains (`steps.a.outputs.result`); a chain inside a longer one
    is not listed again.
    """
    tree = parse(expression, EXPR)
    variables: list[str] = []
    inner: set[int] = set()
    unsupported: list[str] = []
    for node in _walk(tree):
        if node[0] == "call" and node[1] not in TAG_FUNCTIONS and node[1] not in unsupported:
            unsupported.append(node[1])
        if node[0] in ("member", "index", "var") and id(node) not in inner:
            name = _chain(node)
            if name is not None and name not in variables:
                variables.append(name)
            child = node[1] if node[0] != "var" else None
            while isinstance(child, tuple) and child[0] in ("member", "index", "var"):
                inner.add(id(child))
                child = child[1] if child[0] != "var" else None
    return variables, unsupported
