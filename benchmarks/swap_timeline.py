"""Which streamed requests a swap touched, and their time to first token against the steady state.

Pure: each request is (start, first token, end, tokens, error) and each swap (start, end), in
seconds on one clock. A request overlaps a swap when it was waiting for its first token while the
swap ran, or started within `after_s` (0.5 s) of its end (the first requests on the new weights pay
whatever the swap left to do: a prefix-cache miss, a reload in the request path).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AFTER_SWAP_S = 0.5


@dataclass(frozen=True)
class Request:
    start: float
    first: float | None  # None: no token came
    end: float
    tokens: int
    error: str = ""

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.start

    @property
    def tpot(self) -> float | None:
        """Mean time between tokens after the first."""
        if self.first is None or self.tokens < 2:
            return None
        return (self.end - self.first) / (self.tokens - 1)


def touched(request: Request, swaps: Sequence[tuple[float, float]], after_s: float = AFTER_SWAP_S) -> bool:
    waiting_until = request.first if request.first is not None else request.end
    return any(request.start <= end + after_s and waiting_until >= start for start, end in swaps)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def ttft_figures(requests: Sequence[Request]) -> dict[str, Any]:
    ok = [r for r in requests if not r.error and r.ttft is not None]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    tpots = [r.tpot for r in ok if r.tpot is not None]
    return {
        "requests": len(requests),
        "failed": len(requests) - len(ok),
        "ttft_p50_ms": _ms(statistics.median(ttfts)) if ttfts else None,
        "ttft_p99_ms": _ms(percentile(ttfts, 99)),
        "ttft_max_ms": _ms(max(ttfts)) if ttfts else None,
        "tpot_p50_ms": _ms(statistics.median(tpots)) if tpots else None,
    }


def swap_figures(
    requests: Sequence[Request], swaps: Sequence[tuple[float, float]], steady_p99_ms: float | None
) -> dict[str, Any]:
    """The phase's figures, those of the requests a swap touched and of the rest, and the worst
    TTFT during swaps as a multiple of the steady state's p99."""
    near = [r for r in requests if touched(r, swaps)]
    rest = [r for r in requests if not touched(r, swaps)]
    overall = ttft_figures(requests)
    durations = [end - start for start, end in swaps]
    worst = overall["ttft_max_ms"]
    return {
        **overall,
        "swaps": len(swaps),
        "swap_median_ms": _ms(statistics.median(durations)) if durations else None,
        "swap_max_ms": _ms(max(durations)) if durations else None,
        "touched_by_a_swap": ttft_figures(near),
        "not_touched": ttft_figures(rest),
        "worst_over_steady_p99": round(worst / steady_p99_ms, 2) if worst and steady_p99_ms else None,
    }
