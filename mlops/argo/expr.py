"""Safe evaluation of the three expression languages a WorkflowTemplate uses.

- `when` (after `{{...}}` substitution): Argo's govaluate dialect. Bare words are strings
  (Argo turns govaluate variables into strings), numbers are floats, `'x'`/`"x"` are strings.
- `retryStrategy.expression`: expr-lang with Argo's bindings (`lastRetry.exitCode`, `.status`,
  `.duration`, `.message`, all strings as in Argo) and functions such as `asInt`.
- DAG `depends`: `A && (B.Failed || !C.Skipped)`.

A tokenizer and a Pratt parser build a small tuple AST; nothing is handed to `eval`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated; the message says where and why."""


WHEN = "when"
EXPR = "expr"

_WHEN_WORD = re.compile(r"[A-Za-z0-9_.]+")
_EXPR_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_EXPR_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OPERATORS = (
    "==",
    "!=",
    ">=",
    "<=",
    "&&",
    "||",
    "=~",
    "!~",
    "??",
    ">",
    "<",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "?",
    ":",
)
_PUNCT = "()[],."
_EXPR_WORD_OPS = {"and": "&&", "or": "||", "not": "!"}
_EXPR_INFIX_WORDS = {"in", "matches", "contains", "startsWith", "endsWith"}
_EXPR_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "nil": None}

_PRECEDENCE = {
    "?": 1,
    "??": 2,
    "||": 3,
    "&&": 4,
    "==": 5,
    "!=": 5,
    "<": 5,
    "<=": 5,
    ">": 5,
    ">=": 5,
    "=~": 5,
    "!~": 5,
    "in": 5,
    "not in": 5,
    "matches": 5,
    "contains": 5,
    "startsWith": 5,
    "endsWith": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "/": 7,
    "%": 7,
}


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, name, op, punct, eof
    value: Any
    pos: int


def _read_string(text: str, pos: int) -> tuple[str, int]:
    quote = text[pos]
    out: list[str] = []
    i = pos + 1
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`"}
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "`" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        if ch == quote:
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ExpressionError(f"unterminated string starting at position {pos}")


def tokenize(text: str, dialect: str) -> list[Token]:
    """Split an expression into tokens for the given dialect (`when` or `expr`)."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"" or (ch == "`" and dialect == EXPR):
            value, i_end = _read_string(text, i)
            tokens.append(Token("str", value, i))
            i = i_end
            continue
        if dialect == WHEN and (ch.isalnum() or ch == "_" or (ch == "." and text[i + 1 : i + 2].isdigit())):
            word = _WHEN_WORD.match(text, i)
            assert word is not None
            tokens.append(_when_word(word.group(), i))
            i = word.end()
            continue
        if dialect == EXPR and ch.isdigit():
            number = _EXPR_NUMBER.match(text, i)
            assert number is not None
            literal = number.group()
            is_float = any(c in literal for c in ".eE")
            tokens.append(Token("num", float(literal) if is_float else int(literal), i))
            i = number.end()
            continue
        if dialect == EXPR and (ch.isalpha() or ch in "_$"):
            name = _EXPR_NAME.match(text, i)
            assert name is not None
            tokens.append(_expr_word(name.group(), i))
            i = name.end()
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(Token("op", op, i))
            i += len(op)
            continue
        if ch in _PUNCT:
            tokens.append(Token("punct", ch, i))
            i += 1
            continue
        raise ExpressionError(f"unexpected character {ch!r} at position {i}")
    tokens.append(Token("eof", None, len(text)))
    return tokens


def _when_word(word: str, pos: int) -> Token:
    if word in ("true", "false"):
        return Token("const", word == "true", pos)
    if word in ("in", "IN"):
        return Token("op", "in", pos)
    if word[0].isdigit() or word[0] == ".":
        try:
            return Token("num", float(word), pos)
        except ValueError:
            raise ExpressionError(
                f"{word!r} at position {pos} is neither a number nor a quoted string; quote it"
            ) from None
    # Argo converts govaluate variables into strings, so `pass == pass` compares two strings.
    return Token("str", word, pos)


def _expr_word(word: str, pos: int) -> Token:
    if word in _EXPR_CONSTANTS:
        return Token("const", _EXPR_CONSTANTS[word], pos)
    if word in _EXPR_WORD_OPS:
        return Token("op", _EXPR_WORD_OPS[word], pos)
    if word in _EXPR_INFIX_WORDS:
        return Token("op", word, pos)
    return Token("name", word, pos)


class _Parser:
    def __init__(self, text: str, dialect: str) -> None:
        self.text = text
        self.dialect = dialect
        self.tokens = tokenize(text, dialect)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, kind: str, value: str) -> None:
        if self.tok.kind != kind or self.tok.value != value:
            found = "end of expression" if self.tok.kind == "eof" else repr(self.tok.value)
            raise ExpressionError(f"expected {value!r} at position {self.tok.pos}, found {found}")
        self.advance()

    def parse(self) -> tuple[Any, ...]:
        if self.tok.kind == "eof":
            raise ExpressionError("empty expression")
        node = self.expression(0)
        if self.tok.kind != "eof":
            raise ExpressionError(f"unexpected {self.tok.value!r} at position {self.tok.pos}")
        return node

    def _infix_operator(self) -> str | None:
        tok = self.tok
        if tok.kind != "op":
            return None
        if tok.value == "!" and self.dialect == EXPR:
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "op" and nxt.value == "in":
                return "not in"
            return None
        return tok.value if tok.value in _PRECEDENCE else None

    def expression(self, min_prec: int) -> tuple[Any, ...]:
        left = self.unary()
        while True:
            op = self._infix_operator()
            if op is None or _PRECEDENCE[op] <= min_prec:
                return left
            prec = _PRECEDENCE[op]
            self.advance()
            if op == "not in":
                self.advance()
            if op == "?":
                then = self.expression(0)
                self.expect("op", ":")
                otherwise = self.expression(prec - 1)
                left = ("cond", left, then, otherwise)
                continue
            right = self.expression(prec)
            left = ("binary", op, left, right)

    def unary(self) -> tuple[Any, ...]:
        tok = self.tok
        if tok.kind == "op" and tok.value in ("!", "-", "+"):
            self.advance()
            return ("unary", tok.value, self.unary())
        return self.postfix(self.primary())

    def primary(self) -> tuple[Any, ...]:
        tok = self.advance()
        if tok.kind in ("num", "str", "const"):
            return ("lit", tok.value)
        if tok.kind == "name":
            if self.tok.kind == "punct" and self.tok.value == "(":
                self.advance()
                return ("call", tok.value, tok.pos, self.sequence(")"))
            return ("var", tok.value, tok.pos)
        if tok.kind == "punct" and tok.value == "(":
            first = self.expression(0)
            if self.dialect == WHEN and self.tok.kind == "punct" and self.tok.value == ",":
                self.advance()
                rest = self.sequence(")")
                return ("list", [first, *rest])
            self.expect("punct", ")")
            return first
        if tok.kind == "punct" and tok.value == "[" and self.dialect == EXPR:
            return ("list", self.sequence("]"))
        found = "end of expression" if tok.kind == "eof" else repr(tok.value)
        raise ExpressionError(f"unexpected {found} at position {tok.pos}")

    def sequence(self, closing: str) -> list[tuple[Any, ...]]:
        items: list[tuple[Any, ...]] = []
        if self.tok.kind == "punct" and self.tok.value == closing:
            self.advance()
            return items
        while True:
            items.append(self.expression(0))
            if self.tok.kind == "punct" and self.tok.value == ",":
                self.advance()
                continue
            self.expect("punct", closing)
            return items

    def postfix(self, node: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.dialect != EXPR:
            return node
        while self.tok.kind == "punct" and self.tok.value in ".[":
            if self.advance().value == ".":
                name = self.advance()
                if name.kind not in ("name", "op", "const") or not isinstance(name.value, str):
                    raise ExpressionError(f"expected a field name after '.' at position {name.pos}")
                if self.tok.kind == "punct" and self.tok.value == "(":
                    # `sprig.trim(x)`: Argo's sprig functions live in a namespace; no other method calls
                    if node[0] != "var" or node[1] != "sprig":
                        raise ExpressionError(
                            f"method call .{name.value}() at position {name.pos} is not supported"
                        )
                    self.advance()
                    node = ("call", f"sprig.{name.value}", name.pos, self.sequence(")"))
                    continue
                node = ("member", node, name.value)
            else:
                index = self.expression(0)
                self.expect("punct", "]")
                node = ("index", node, index)
        return node


def parse(text: str, dialect: str) -> tuple[Any, ...]:
    """Parse an expression into a tuple AST (raises ExpressionError)."""
    return _Parser(text, dialect).parse()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return "nil" if value is None else repr(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ExpressionError(f"asInt: cannot convert {_show(value)}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ExpressionError(f"asInt: {value!r} is not an integer") from None
    raise ExpressionError(f"asInt: cannot convert {_show(value)}")


def _as_float(value: Any) -> float:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ExpressionError(f"asFloat: {value!r} is not a number") from None
    raise ExpressionError(f"asFloat: cannot convert {_show(value)}")


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "nil" if value is None else str(value)


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise ExpressionError(f"len: {_show(value)} has no length")


def _string_function(name: str, fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        if not isinstance(value, str):
            raise ExpressionError(f"{name}: expected a string, got {_show(value)}")
        return fn(value)

    return apply


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _as_int,
    "asFloat": _as_float,
    "int": _as_int,
    "float": _as_float,
    "string": _to_string,
    "len": _length,
    "lower": _string_function("lower", str.lower),
    "upper": _string_function("upper", str.upper),
    "trim": _string_function("trim", str.strip),
}


class _Evaluator:
    def __init__(
        self, env: Mapping[str, Any], dialect: str, functions: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self.env = env
        self.dialect = dialect
        self.functions = FUNCTIONS if functions is None else functions

    def eval(self, node: tuple[Any, ...]) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "list":
            return [self.eval(item) for item in node[1]]
        if kind == "var":
            name = node[1]
            if name not in self.env:
                known = ", ".join(sorted(self.env)) or "none"
                raise ExpressionError(f"unknown identifier {name!r} at position {node[2]} (known: {known})")
            return self.env[name]
        if kind == "member":
            return self._member(self.eval(node[1]), node[2], node[1])
        if kind == "index":
            return self._index(self.eval(node[1]), self.eval(node[2]))
        if kind == "call":
            return self._call(node[1], node[2], [self.eval(arg) for arg in node[3]])
        if kind == "unary":
            return self._unary(node[1], self.eval(node[2]))
        if kind == "cond":
            condition = self._bool(self.eval(node[1]), "?")
            return self.eval(node[2]) if condition else self.eval(node[3])
        return self._binary(node[1], node[2], node[3])

    def _member(self, obj: Any, name: str, obj_node: tuple[Any, ...]) -> Any:
        if not isinstance(obj, Mapping):
            raise ExpressionError(f"cannot read field {name!r} of {_show(obj)}")
        if name not in obj:
            owner = obj_node[1] if obj_node[0] == "var" else "value"
            raise ExpressionError(f"unknown field {owner}.{name} (known: {', '.join(sorted(obj))})")
        return obj[name]

    def _index(self, obj: Any, key: Any) -> Any:
        if isinstance(obj, Mapping):
            if key not in obj:
                raise ExpressionError(f"unknown key {key!r} (known: {', '.join(sorted(map(str, obj)))})")
            return obj[key]
        if isinstance(obj, (list, str)) and isinstance(key, int) and not isinstance(key, bool):
            try:
                return obj[key]
            except IndexError:
                raise ExpressionError(f"index {key} out of range") from None
        raise ExpressionError(f"cannot index {_show(obj)} with {_show(key)}")

    def _call(self, name: str, pos: int, args: list[Any]) -> Any:
        fn = self.functions.get(name)
        if fn is None:
            raise ExpressionError(
                f"unknown function {name!r} at position {pos} (known: {', '.join(sorted(self.functions))})"
            )
        try:
            inspect.signature(fn).bind(*args)
        except TypeError:
            raise ExpressionError(f"{name}: wrong number of arguments ({len(args)})") from None
        return fn(*args)

    def _bool(self, value: Any, op: str) -> bool:
        if not isinstance(value, bool):
            raise ExpressionError(f"operator {op!r} needs a boolean, got {_show(value)}")
        return value

    def _unary(self, op: str, value: Any) -> Any:
        if op == "!":
            return not self._bool(value, "!")
        if not _is_number(value):
            raise ExpressionError(f"unary {op!r} needs a number, got {_show(value)}")
        return -value if op == "-" else value

    def _binary(self, op: str, left_node: tuple[Any, ...], right_node: tuple[Any, ...]) -> Any:
        left = self.eval(left_node)
        if op == "&&":
            return self._bool(left, op) and self._bool(self.eval(right_node), op)
        if op == "||":
            return self._bool(left, op) or self._bool(self.eval(right_node), op)
        if op == "??":
            return self.eval(right_node) if left is None else left
        right = self.eval(right_node)
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if op in ("<", "<=", ">", ">="):
            return _order(op, left, right)
        if op in ("in", "not in"):
            return _contains_member(left, right) != (op == "not in")
        if op in ("=~", "!~", "matches"):
            return _regex(op, left, right)
        if op in ("contains", "startsWith", "endsWith"):
            if not (isinstance(left, str) and isinstance(right, str)):
                raise ExpressionError(f"{op!r} needs two strings, got {_show(left)} and {_show(right)}")
            method = {"contains": str.__contains__, "startsWith": str.startswith, "endsWith": str.endswith}[
                op
            ]
            return method(left, right)
        return _arithmetic(op, left, right)


def _equal(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    return bool(left == right)


def _order(op: str, left: Any, right: Any) -> bool:
    if not ((_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))):
        raise ExpressionError(
            f"cannot compare {_show(left)} {op} {_show(right)}: needs two numbers or two strings"
        )
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _contains_member(item: Any, container: Any) -> bool:
    if isinstance(container, list):
        return any(_equal(item, element) for element in container)
    if isinstance(container, Mapping):
        return item in container
    raise ExpressionError(f"'in' needs a list on its right, got {_show(container)}")


def _regex(op: str, left: Any, right: Any) -> bool:
    if not (isinstance(left, str) and isinstance(right, str)):
        raise ExpressionError(f"{op!r} needs a string and a pattern, got {_show(left)} and {_show(right)}")
    try:
        found = re.search(right, left) is not None
    except re.error as exc:
        raise ExpressionError(f"invalid pattern {right!r}: {exc}") from None
    return found != (op == "!~")


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_is_number(left) and _is_number(right)):
        raise ExpressionError(
            f"operator {op!r} needs two numbers, got {_show(left)} and {_show(right)}"
            + ("; a word with '-' must be quoted" if op == "-" else "")
        )
    if op in ("/", "%") and right == 0:
        raise ExpressionError("division by zero")
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right
    return left % right


def evaluate(
    text: str,
    env: Mapping[str, Any] | None = None,
    *,
    dialect: str = EXPR,
    functions: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    """Evaluate an expression in the given dialect with the given bindings (and functions)."""
    return _Evaluator(env or {}, dialect, functions).eval(parse(text, dialect))


def _require_bool(text: str, value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"{what} {text!r} evaluated to {_show(value)}, not to true or false")
    return value


def evaluate_when(text: str) -> bool:
    """Evaluate a `when` condition (already substituted) the way Argo does."""
    try:
        return _require_bool(text, evaluate(text, dialect=WHEN), "when")
    except ExpressionError as exc:
        if str(exc).startswith("when "):
            raise
        raise ExpressionError(f"when {text!r}: {exc}") from None


def retry_bindings(
    exit_code: int | None, status: str, duration_seconds: float, message: str
) -> dict[str, Any]:
    """The `lastRetry` map Argo binds for `retryStrategy.expression` (all values are strings)."""
    return {
        "lastRetry": {
            "exitCode": "-1" if exit_code is None else str(exit_code),
            "status": status,
            "duration": f"{duration_seconds:g}",
            "message": message,
        }
    }


def evaluate_retry_expression(text: str, bindings: Mapping[str, Any]) -> bool:
    """Evaluate `retryStrategy.expression` against `retry_bindings(...)`."""
    try:
        return _require_bool(text, evaluate(text, bindings, dialect=EXPR), "retryStrategy.expression")
    except ExpressionError as exc:
        if str(exc).startswith("retryStrategy.expression "):
            raise
        raise ExpressionError(f"retryStrategy.expression {text!r}: {exc}") from None


# --- DAG `depends` -------------------------------------------------------------------------

DEPENDS_RESULTS = (
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
)
_DEPENDS_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([A-Za-z0-9_][A-Za-z0-9_-]*)(?:\.([A-Za-z]+))?)")


def _depends_tokens(text: str) -> list[tuple[str, str, str | None]]:
    tokens: list[tuple[str, str, str | None]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _DEPENDS_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(f"depends {text!r}: unexpected text at position {pos}: {text[pos:]!r}")
        op, name, result = match.groups()
        if op:
            tokens.append(("op", op, None))
        else:
            if result is not None and result not in DEPENDS_RESULTS:
                raise ExpressionError(
                    f"depends {text!r}: unknown result {name}.{result} (known: {', '.join(DEPENDS_RESULTS)})"
                )
            tokens.append(("task", name, result))
        pos = match.end()
    return tokens


class _DependsParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _depends_tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str, str | None] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> tuple[Any, ...]:
        node = self.disjunction()
        leftover = self.peek()
        if leftover is not None:
            raise ExpressionError(f"depends {self.text!r}: unexpected {leftover[1]!r}")
        return node

    def disjunction(self) -> tuple[Any, ...]:
        node = self.conjunction()
        while self.peek() == ("op", "||", None):
            self.i += 1
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> tuple[Any, ...]:
        node = self.negation()
        while self.peek() == ("op", "&&", None):
            self.i += 1
            node = ("and", node, self.negation())
        return node

    def negation(self) -> tuple[Any, ...]:
        token = self.peek()
        if token == ("op", "!", None):
            self.i += 1
            return ("not", self.negation())
        if token == ("op", "(", None):
            self.i += 1
            node = self.disjunction()
            if self.peek() != ("op", ")", None):
                raise ExpressionError(f"depends {self.text!r}: missing ')'")
            self.i += 1
            return node
        if token is None or token[0] != "task":
            found = "end of expression" if token is None else repr(token[1])
            raise ExpressionError(f"depends {self.text!r}: expected a task name, found {found}")
        self.i += 1
        return ("task", token[1], token[2])


def depends_tasks(text: str) -> list[str]:
    """The task names a `depends` expression mentions, in order (raises ExpressionError)."""
    names: list[str] = []

    def walk(node: tuple[Any, ...]) -> None:
        if node[0] == "task":
            if node[1] not in names:
                names.append(node[1])
        else:
            for child in node[1:]:
                walk(child)

    walk(_DependsParser(text).parse())
    return names


_RESULT_PHASES = {
    "Succeeded": {"Succeeded"},
    "AnySucceeded": {"Succeeded"},
    "Failed": {"Failed"},
    "AllFailed": {"Failed"},
    "Errored": {"Error"},
    "Skipped": {"Skipped"},
    "Omitted": {"Omitted"},
    "Daemoned": set(),
}


def evaluate_depends(text: str, phases: Mapping[str, str]) -> bool:
    """Whether a task with `depends: text` runs, given the final phase of each dependency."""

    def walk(node: tuple[Any, ...]) -> bool:
        if node[0] == "and":
            return walk(node[1]) and walk(node[2])
        if node[0] == "or":
            return walk(node[1]) or walk(node[2])
        if node[0] == "not":
            return not walk(node[1])
        _, name, result = node
        if name not in phases:
            raise ExpressionError(f"depends {text!r}: unknown task {name!r}")
        if result is None:  # plain `A` means A.Succeeded || A.Skipped || A.Daemoned
            return phases[name] in ("Succeeded", "Skipped")
        return phases[name] in _RESULT_PHASES[result]

    return walk(_DependsParser(text).parse())


def dependencies_as_depends(dependencies: Sequence[str]) -> str:
    """The `depends` equivalent of the older `dependencies: [A, B]` list."""
    return " && ".join(dependencies)
