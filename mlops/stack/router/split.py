"""Which slot a request goes to, and the request rewritten to name it: pure, no I/O.

Smooth weighted round-robin (nginx's): every pick adds each slot's weight to its running score,
takes the slot with the highest score and subtracts the total from it. Over any run of
`sum(weights)` picks each slot is chosen exactly `weight` times, spread out evenly (weights
10/90: one candidate request in every ten, never ten in a row), so the share a canary step sees
is the weight itself, not a sample of it. The cluster's endpoint picker splits by weighted
random choice (InferenceModelRewrite); the share there converges to the same weight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlops.errors import BadInput

LIVE, CANDIDATE = "live", "candidate"
# OpenAI-style endpoints whose JSON body names the model; only these are rewritten
MODEL_ROUTES = ("/v1/completions", "/v1/chat/completions")


def slot_name(public_name: str, slot: str) -> str:
    """`aws-rag-qa` + `candidate` -> `aws-rag-qa-candidate` (deployment.vllm.slots' names)."""
    return f"{public_name}-{slot}"


def check_weight(value: object) -> int:
    """A candidate weight is a whole percent 0..100 (the InferenceModelRewrite weights' unit)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise BadInput(f"candidate weight must be a whole number of percent 0..100, got {value!r}")
    if not 0 <= int(value) <= 100:
        raise BadInput(f"candidate weight {int(value)} is outside 0..100 (percent of requests)")
    return int(value)


class SmoothWeightedRoundRobin:
    """Picks slots so that each gets exactly its weight's share of every `sum(weights)` requests."""

    def __init__(self, weights: dict[str, int]) -> None:
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise BadInput(f"weights must be >= 0 with a positive sum, got {weights}")
        self.weights = dict(weights)
        self._current = dict.fromkeys(weights, 0)

    def pick(self) -> str:
        total = sum(self.weights.values())
        for slot, weight in self.weights.items():
            self._current[slot] += weight
        chosen = max(self._current, key=lambda slot: self._current[slot])
        self._current[chosen] -= total
        return chosen


def canary_split(candidate_weight: int) -> SmoothWeightedRoundRobin:
    """live gets `100 - w` percent, candidate `w` (order fixed: live wins ties)."""
    weight = check_weight(candidate_weight)
    return SmoothWeightedRoundRobin({LIVE: 100 - weight, CANDIDATE: weight})


@dataclass(frozen=True)
class Rewritten:
    """A request body after routing: the model it asked for, the one it goes to, the new body."""

    requested: str
    target: str
    body: bytes
    stream: bool


def read_request(body: bytes) -> dict[str, object]:
    """The JSON object of an OpenAI-style request; BadInput (answered 400) for anything else."""
    try:
        parsed = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("model"), str):
        raise BadInput('request body must be a JSON object with a string "model"')
    return parsed


def rewrite(body: bytes, public_name: str, slot: str) -> Rewritten:
    """Point a request for `public_name` at `slot`'s LoRA name; any other model (or no slot) passes unchanged."""
    parsed = read_request(body)
    requested = str(parsed["model"])
    stream = parsed.get("stream") is True
    if requested != public_name or not slot:
        return Rewritten(requested, requested, body, stream)
    target = slot_name(public_name, slot)
    return Rewritten(requested, target, json.dumps({**parsed, "model": target}).encode(), stream)
