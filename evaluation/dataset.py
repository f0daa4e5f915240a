"""Which evaluation items a run asks: a seeded, type-balanced selection.

The items themselves (`EvalItem`, read from a prepared dataset's `eval.jsonl`) are the RAG-QA
format of `mlops.datasets.ragqa`.
"""

from __future__ import annotations

import random
from collections import defaultdict

from mlops.datasets.ragqa import EvalItem


def select(items: list[EvalItem], limit: int, seed: int) -> list[EvalItem]:
    """At most `limit` items (0: all), dealt round-robin across question types in a seeded order.

    Every type stays represented in a small local run; the same seed gives the same questions,
    so a resumed run hits its answer cache.
    """
    unique = list({item.id: item for item in items}.values())
    if limit <= 0 or limit >= len(unique):
        return unique
    by_type: dict[str, list[EvalItem]] = defaultdict(list)
    for item in unique:
        by_type[item.question_type].append(item)
    rng = random.Random(seed)
    queues = []
    for kind in sorted(by_type):
        group = sorted(by_type[kind], key=lambda i: i.id)
        rng.shuffle(group)
        queues.append(group)
    chosen: list[EvalItem] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return chosen
