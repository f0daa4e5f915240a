"""The ResNet quality gate: accuracy against a threshold and the champion.

A pure function over `mlops.gates` checks: metrics + thresholds -> Verdict, no I/O. The
equivalence gate stays in `mlops.gates`: training and the Triton deployment both apply it.
"""

from __future__ import annotations

from mlops.errors import BadInput
from mlops.gates import Verdict, check, require_finite, require_fraction, verdict


def quality_gate(
    accuracy: float,
    threshold: float,
    champion_accuracy: float | None = None,
    min_improvement: float = 0.0,
) -> Verdict:
    """Gate 1: `accuracy >= threshold` and, if a champion exists, `accuracy >= champion + min_improvement`.

    With `min_improvement == 0` an equal model is not an improvement: the candidate must beat the
    champion strictly, so retraining the same model never moves `champion`. A negative value
    accepts a regression of at most that much (-1: any model above the threshold), for a
    deliberate replacement.
    """
    accuracy = require_fraction("best_val_accuracy", accuracy)
    threshold = require_fraction("threshold", threshold)
    min_improvement = require_finite("min_improvement", min_improvement)
    if not -1.0 <= min_improvement < 1.0:
        raise BadInput(f"min_improvement={min_improvement} must be a fraction in -1..1")
    checks = [check("best_val_accuracy", accuracy, ">=", threshold)]
    if champion_accuracy is not None:
        champion = require_fraction("champion best_val_accuracy", champion_accuracy)
        if min_improvement != 0:
            checks.append(check("improvement_over_champion", accuracy - champion, ">=", min_improvement))
        else:
            checks.append(check("improvement_over_champion", accuracy - champion, ">", 0.0))
    return verdict(checks)
