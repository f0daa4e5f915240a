"""The split: no context in two splits, question types spread by the fractions, seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from mlops.datasets.ragqa import SPLITS, QARecord
from mlops.errors import BadInput
from tests.unit.llm.factories import record
from training.llm.splitting import Fractions, _deal, stratified_group_split


def _dataset(groups: int = 60) -> tuple[list[QARecord], list[int]]:
    types = ["factual", "numeric", "yes_no", "unanswerable"]
    records, ids = [], []
    for g in range(groups):
        for q in range(2 + g % 4):  # groups of 2..5 questions
            kind = types[(g + q) % 4]
            records.append(
                record(question=f"q{q}", question_type=kind, context=f"context {g}", line=len(records) + 1)
            )
            ids.append(g)
    return records, ids


def test_no_context_lands_in_two_splits() -> None:
    records, ids = _dataset()
    splits = stratified_group_split(records, ids, Fractions(), seed=1)
    contexts = {s: {r.context for r in splits[s]} for s in SPLITS}
    assert SPLITS == ("train", "val", "eval", "probe")
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            assert not contexts[first] & contexts[second], (first, second)
    assert sum(len(v) for v in splits.values()) == len(records)


def test_each_question_type_is_spread_by_the_fractions() -> None:
    records, ids = _dataset(120)
    splits = stratified_group_split(records, ids, Fractions(0.7, 0.1, 0.1, 0.1), seed=3)
    totals = Counter(r.question_type for r in records)
    for split, share in (("train", 0.7), ("val", 0.1), ("eval", 0.1), ("probe", 0.1)):
        counts = Counter(r.question_type for r in splits[split])
        for kind, total in totals.items():
            assert abs(counts[kind] / total - share) <= 0.05, (split, kind, counts[kind], total)


def test_holding_the_probe_out_changes_no_training_row() -> None:
    """train and val are exactly the three-way split's (train 0.8, val 0.1, eval 0.1); the probe
    split comes out of that eval share."""
    records, ids = _dataset(120)
    four = stratified_group_split(records, ids, Fractions(0.8, 0.1, 0.05, 0.05), seed=3)
    members: dict[int, list[int]] = {}
    for i, group in enumerate(ids):
        members.setdefault(group, []).append(i)
    three = _deal(records, members, {"train": 0.8, "val": 0.1, "eval": 0.1}, 3)
    for split in ("train", "val"):
        assert four[split] == [records[i] for g in three[split] for i in sorted(members[g])]
    held_out = [records[i] for g in three["eval"] for i in sorted(members[g])]
    assert sorted(map(id, four["eval"] + four["probe"])) == sorted(map(id, held_out))
    assert four["eval"] and four["probe"]


def test_the_split_is_seeded() -> None:
    records, ids = _dataset()
    first = stratified_group_split(records, ids, Fractions(), seed=5)
    assert first == stratified_group_split(records, ids, Fractions(), seed=5)
    assert first != stratified_group_split(records, ids, Fractions(), seed=6)


def test_every_split_gets_rows_even_from_four_contexts() -> None:
    records, ids = _dataset(4)
    splits = stratified_group_split(records, ids, Fractions(), seed=0)
    assert all(splits[s] for s in SPLITS)


def test_fewer_contexts_than_splits_is_bad_input() -> None:
    records, ids = _dataset(3)
    with pytest.raises(BadInput, match="only 3 distinct context"):
        stratified_group_split(records, ids, Fractions(), seed=0)


@pytest.mark.parametrize(
    "fractions", [Fractions(0.8, 0.1, 0.1, 0.0), Fractions(0.5, 0.3, 0.3, 0.1), Fractions(0.8, 0.1, 0.1, 0.1)]
)
def test_fractions_must_be_positive_and_sum_to_one(fractions: Fractions) -> None:
    records, ids = _dataset()
    with pytest.raises(BadInput, match="fractions"):
        stratified_group_split(records, ids, fractions, seed=0)
