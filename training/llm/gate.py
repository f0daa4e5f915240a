"""The loss gate, a pure function: is the fine-tuned adapter worth trying?

`eval_loss <= max_eval_loss` and `perplexity <= max_perplexity`, both finite. The loss is the
mean cross-entropy of answer tokens on the held-out eval split (nats), the perplexity its
exponential: a perplexity below 1, a negative loss, or a perplexity that is not exp(loss) is
a metric logged wrong, refused as bad input rather than compared.
"""

from __future__ import annotations

import math

from mlops.errors import BadInput
from mlops.gates import Verdict, check, require_finite, verdict

PERPLEXITY_TOLERANCE = 1e-4  # relative; metrics round-trip through MLflow as doubles


def loss_gate(eval_loss: float, perplexity: float, max_eval_loss: float, max_perplexity: float) -> Verdict:
    """Pass when both the eval loss and the perplexity are at or under their bounds."""
    eval_loss = require_finite("eval_loss", eval_loss)
    perplexity = require_finite("perplexity", perplexity)
    max_eval_loss = require_finite("max_eval_loss", max_eval_loss)
    max_perplexity = require_finite("max_perplexity", max_perplexity)
    if eval_loss < 0:
        raise BadInput(f"eval_loss={eval_loss} is negative: a cross-entropy cannot be")
    if perplexity < 1:
        raise BadInput(f"perplexity={perplexity} is below 1: a perplexity cannot be")
    if max_eval_loss <= 0 or max_perplexity <= 1:
        raise BadInput(
            f"bounds max_eval_loss={max_eval_loss} (> 0) and max_perplexity={max_perplexity} (> 1) are impossible"
        )
    if abs(math.log(perplexity) - eval_loss) > PERPLEXITY_TOLERANCE * max(1.0, eval_loss):
        raise BadInput(
            f"perplexity={perplexity} is not exp(eval_loss={eval_loss})={math.exp(eval_loss):.6g}: "
            "the two metrics come from different evaluations"
        )
    return verdict(
        [
            check("eval_loss", eval_loss, "<=", max_eval_loss),
            check("perplexity", perplexity, "<=", max_perplexity),
        ]
    )
