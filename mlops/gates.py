"""What every gate is built of: checks, a Verdict(passed, checks, reason), domain guards.

A gate (e.g. `training.resnet.gates`, `evaluation.gate`) is a pure function over these, no I/O:
a step loads the metrics, calls its gate, and records the verdict. Fractions are
0..1 everywhere; a value outside its domain (NaN, a percent where a fraction belongs) is bad
input, raised as BadInput, never compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from mlops.errors import BadInput


@dataclass(frozen=True)
class Check:
    """One comparison of a gate: `value <op> bound` and whether it held."""

    name: str
    value: float
    op: str
    bound: float
    passed: bool

    def describe(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return f"{self.name}={self.value:.6g} {self.op} {self.bound:.6g}: {mark}"


@dataclass(frozen=True)
class Verdict:
    """The result of a gate: every check, and a reason a person can read."""

    passed: bool
    checks: list[Check] = field(default_factory=list)
    reason: str = ""

    @property
    def label(self) -> str:
        return "pass" if self.passed else "fail"

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


_OPS = {
    ">=": lambda v, b: v >= b,
    "<=": lambda v, b: v <= b,
    ">": lambda v, b: v > b,
    "<": lambda v, b: v < b,
    "==": lambda v, b: v == b,
}


def check(name: str, value: float, op: str, bound: float) -> Check:
    """Compare one finite value against a bound."""
    require_finite(name, value)
    require_finite(f"bound of {name}", bound)
    return Check(
        name=name, value=float(value), op=op, bound=float(bound), passed=bool(_OPS[op](value, bound))
    )


def verdict(checks: list[Check]) -> Verdict:
    """All checks must hold; the reason names the failed ones (or all, when passing)."""
    failed = [c for c in checks if not c.passed]
    shown = failed or checks
    reason = "; ".join(c.describe() for c in shown)
    return Verdict(passed=not failed, checks=checks, reason=reason)


def require_finite(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise BadInput(f"{name} is {number}: not a finite number")
    return number


def require_fraction(name: str, value: float) -> float:
    """A fraction lies in 0..1; 93.0 is a percent given by mistake and is refused, not compared."""
    number = require_finite(name, value)
    if not 0.0 <= number <= 1.0:
        hint = " (looks like a percent; give a fraction 0..1)" if 1.0 < number <= 100.0 else ""
        raise BadInput(f"{name}={number} is outside 0..1{hint}")
    return number


def equivalence_gate(max_abs_diff: float, tolerance: float, argmax_mismatches: int) -> Verdict:
    """Gate 2: ONNX and PyTorch outputs agree within `tolerance` and predict the same classes."""
    tolerance = require_finite("tolerance", tolerance)
    if tolerance < 0:
        raise BadInput(f"tolerance={tolerance} must be >= 0")
    return verdict(
        [
            check("max_abs_diff", max_abs_diff, "<=", tolerance),
            check("argmax_mismatches", float(argmax_mismatches), "==", 0.0),
        ]
    )
