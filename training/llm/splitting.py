"""Split records into train / val / eval / probe, stratified by question_type, without context leakage.

Rows about one context cluster (identical or near-identical contexts) always land in the same
split, so no split can answer from a passage another split trained on. Clusters are dealt out
greedily, largest first in a seeded order, each to the split whose per-type counts are furthest
below target: the per-type shares of every split end up close to the requested fractions.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass

from mlops.datasets.ragqa import SPLITS, QARecord
from mlops.errors import BadInput


@dataclass(frozen=True)
class Fractions:
    train: float = 0.7
    val: float = 0.1
    eval: float = 0.1
    probe: float = 0.1  # held out from training and the release gate: the production probe's questions

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "eval": self.eval, "probe": self.probe}

    def check(self) -> None:
        values = self.as_dict()
        if any(v <= 0 for v in values.values()) or abs(sum(values.values()) - 1.0) > 1e-6:
            raise BadInput(f"split fractions {values} must each be > 0 and sum to 1")


def stratified_group_split(
    records: list[QARecord], groups: list[int], fractions: Fractions, seed: int
) -> dict[str, list[QARecord]]:
    """Assign whole groups to splits so each question_type is spread by `fractions`."""
    fractions.check()
    if len(records) != len(groups):
        raise ValueError("one group id per record")
    members: dict[int, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    if len(members) < len(SPLITS):
        raise BadInput(
            f"only {len(members)} distinct context(s): at least {len(SPLITS)} are needed to split into "
            f"{', '.join(SPLITS)} without sharing a context between splits"
        )
    totals = Counter(r.question_type for r in records)
    share = fractions.as_dict()
    target = {s: {t: share[s] * n for t, n in totals.items()} for s in SPLITS}
    counts: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    order = sorted(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the seeded order
    assigned: dict[str, list[int]] = {s: [] for s in SPLITS}
    for group in order:
        types = Counter(records[i].question_type for i in members[group])

        def deficit(split: str, types: Counter[str] = types) -> float:
            # Relative shortfall per type (at most 1 a row), weighted by how many rows of that type the
            # group brings. An empty split scores the most, so every split gets a group early.
            return sum(
                n * (target[split][t] - counts[split][t]) / max(target[split][t], 1e-9)
                for t, n in types.items()
            )

        best = max(SPLITS, key=deficit)
        assigned[best].append(group)
        counts[best].update(types)
    return {s: [records[i] for g in assigned[s] for i in sorted(members[g])] for s in SPLITS}
