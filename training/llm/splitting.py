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
    train: float = 0.8
    val: float = 0.1
    eval: float = 0.05
    probe: float = 0.05  # held out from training and the release gate: the production probe's questions

    def as_dict(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "eval": self.eval, "probe": self.probe}

    def check(self) -> None:
        values = self.as_dict()
        if any(v <= 0 for v in values.values()) or abs(sum(values.values()) - 1.0) > 1e-6:
            raise BadInput(f"split fractions {values} must each be > 0 and sum to 1")


def _deal(
    records: list[QARecord], members: dict[int, list[int]], shares: dict[str, float], seed: int
) -> dict[str, list[int]]:
    """Groups dealt to the named splits (in order) so each question_type is spread by `shares`."""
    names = tuple(shares)
    if len(members) < len(names):
        raise BadInput(
            f"only {len(members)} distinct context(s): at least {len(names)} are needed to split into "
            f"{', '.join(names)} without sharing a context between splits"
        )
    totals = Counter(records[i].question_type for rows in members.values() for i in rows)
    target = {s: {t: shares[s] * n for t, n in totals.items()} for s in names}
    counts: dict[str, Counter[str]] = {s: Counter() for s in names}
    order = sorted(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the seeded order
    assigned: dict[str, list[int]] = {s: [] for s in names}
    for group in order:
        types = Counter(records[i].question_type for i in members[group])

        def deficit(split: str, types: Counter[str] = types) -> float:
            # Relative shortfall per type (at most 1 a row), weighted by how many rows of that type the
            # group brings. An empty split scores the most, so every split gets a group early.
            return sum(
                n * (target[split][t] - counts[split][t]) / max(target[split][t], 1e-9)
                for t, n in types.items()
            )

        best = max(names, key=deficit)
        assigned[best].append(group)
        counts[best].update(types)
    return assigned


def stratified_group_split(
    records: list[QARecord], groups: list[int], fractions: Fractions, seed: int
) -> dict[str, list[QARecord]]:
    """Assign whole groups to splits so each question_type is spread by `fractions`.

    Two deals: train / val / held-out (eval + probe), then the held-out groups into eval and probe.
    Holding the probe set out of the held-out share leaves train and val exactly what a three-way
    split with the same train and val fractions gives: adding the probe changes no training.
    """
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
    held_out = fractions.eval + fractions.probe
    first = _deal(records, members, {"train": fractions.train, "val": fractions.val, "eval": held_out}, seed)
    if len(first["eval"]) < 2:  # a held-out share too small for two contexts: deal it from the rest
        spare = max(("train", "val"), key=lambda s: len(first[s]))
        first["eval"].append(first[spare].pop())
    second = _deal(
        records,
        {g: members[g] for g in first["eval"]},
        {"eval": fractions.eval / held_out, "probe": fractions.probe / held_out},
        seed,
    )
    assigned = {"train": first["train"], "val": first["val"], **second}
    return {s: [records[i] for g in assigned[s] for i in sorted(members[g])] for s in SPLITS}
