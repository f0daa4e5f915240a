"""Clean validated records: normalise text, enforce length limits, drop exact and near duplicates.

Every dropped row is kept with its reason, so the data card can say what was removed and why.
Near duplicates are judged per context cluster (contexts that are identical after
normalisation, or near-identical by MinHash): two rows are near duplicates when both their
questions and their answers are near-identical (character 3-gram Jaccard). Comparing whole
rows instead would call every pair of questions about one long context a duplicate.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field, replace

from mlops.datasets.ragqa import QARecord
from mlops.errors import BadInput

_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = {c for c in map(chr, range(32)) if c not in "\n\t"} | {"\x7f"}
_WORD = re.compile(r"\w+")

REASON_EXACT = "exact duplicate"
REASON_NEAR = "near duplicate"
REASON_CONTEXT_TOO_LONG = "context over max length"
REASON_QUESTION_TOO_LONG = "question over max length"
REASON_ANSWER_TOO_LONG = "answer over max length"
REASON_EMPTY = "empty after cleaning"


def normalize_text(text: str) -> str:
    """NFKC, no control characters, one space between words, at most one blank line, stripped."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(" " if c == "\t" else c for c in text if c not in _CONTROL)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def normalize_record(record: QARecord) -> QARecord:
    return replace(
        record,
        context=normalize_text(record.context),
        question=normalize_text(record.question),
        reference_answer=normalize_text(record.reference_answer),
        question_type=normalize_text(record.question_type),
    )


def _key_text(text: str) -> str:
    """What two texts must share to be the same: case-folded words."""
    return " ".join(_WORD.findall(text.casefold()))


def shingles(text: str, size: int = 3) -> set[str]:
    """Character n-grams of the case-folded words (the whole text when shorter than n)."""
    key = _key_text(text)
    if len(key) <= size:
        return {key}
    return {key[i : i + size] for i in range(len(key) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Drop:
    """A row removed by cleaning, and why."""

    record: QARecord
    reason: str
    detail: str = ""


@dataclass
class CleanResult:
    kept: list[QARecord] = field(default_factory=list)
    dropped: list[Drop] = field(default_factory=list)
    context_groups: dict[str, int] = field(default_factory=dict)  # normalised context -> cluster id

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for drop in self.dropped:
            counts[drop.reason] += 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Limits:
    """Character limits of each field, and how many over-long contexts are tolerated (dropped)."""

    max_context_chars: int = 6000
    max_question_chars: int = 500
    max_answer_chars: int = 1000
    max_overlength_fraction: float = 0.05


def apply_limits(records: list[QARecord], limits: Limits) -> tuple[list[QARecord], list[Drop]]:
    """Drop rows over a length limit; BadInput when more than the tolerated fraction is over."""
    kept: list[QARecord] = []
    dropped: list[Drop] = []
    for record in records:
        if not (record.context and record.question and record.reference_answer and record.question_type):
            dropped.append(Drop(record, REASON_EMPTY))
        elif len(record.context) > limits.max_context_chars:
            dropped.append(
                Drop(record, REASON_CONTEXT_TOO_LONG, f"{len(record.context)} > {limits.max_context_chars}")
            )
        elif len(record.question) > limits.max_question_chars:
            dropped.append(
                Drop(
                    record, REASON_QUESTION_TOO_LONG, f"{len(record.question)} > {limits.max_question_chars}"
                )
            )
        elif len(record.reference_answer) > limits.max_answer_chars:
            dropped.append(
                Drop(
                    record,
                    REASON_ANSWER_TOO_LONG,
                    f"{len(record.reference_answer)} > {limits.max_answer_chars}",
                )
            )
        else:
            kept.append(record)
    over = [d for d in dropped if d.reason != REASON_EMPTY]
    if records and len(over) / len(records) > limits.max_overlength_fraction:
        lines = ", ".join(str(d.record.source_line) for d in over[:10])
        raise BadInput(
            f"{len(over)} of {len(records)} rows ({len(over) / len(records):.1%}) are over the length limits "
            f"(context {limits.max_context_chars}, question {limits.max_question_chars}, answer "
            f"{limits.max_answer_chars} characters), more than the tolerated "
            f"{limits.max_overlength_fraction:.1%}: lines {lines}{' ...' if len(over) > 10 else ''}. "
            "Raise the limits or fix the data: dropping that much would change what the model learns"
        )
    return kept, dropped


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def minhash_signatures(texts: list[str], permutations: int = 64, seed: int = 1) -> list[tuple[int, ...]]:
    """MinHash signature of each text's 5-gram set: universal hashing modulo the prime 2^31 - 1."""
    import numpy as np

    prime = np.uint64((1 << 31) - 1)  # a * h < 2^62: the products fit in uint64 before the modulo
    rng = np.random.default_rng(seed)
    a = rng.integers(1, int(prime), size=permutations, dtype=np.uint64)
    b = rng.integers(0, int(prime), size=permutations, dtype=np.uint64)
    signatures = []
    for text in texts:
        hashes = np.fromiter((_stable_hash(s) for s in shingles(text, 5)), dtype=np.uint64) % prime
        values = (np.outer(hashes, a) + b) % prime
        signatures.append(tuple(int(v) for v in values.min(axis=0)))
    return signatures


def context_clusters(contexts: list[str], threshold: float = 0.9, bands: int = 16) -> list[int]:
    """Cluster id of each context: identical ones, and near-identical ones (MinHash LSH, then exact Jaccard)."""
    unique = sorted(set(contexts))
    index = {c: i for i, c in enumerate(unique)}
    groups = _UnionFind(len(unique))
    signatures = minhash_signatures(unique)
    rows = len(signatures[0]) // bands if signatures else 0
    candidates: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, signature in enumerate(signatures):
            buckets[signature[band * rows : (band + 1) * rows]].append(i)
        for members in buckets.values():
            candidates.update((members[0], other) for other in members[1:])
    shingle_sets: dict[int, set[str]] = {}
    for i, j in sorted(candidates):
        a = shingle_sets.setdefault(i, shingles(unique[i], 5))
        b = shingle_sets.setdefault(j, shingles(unique[j], 5))
        if jaccard(a, b) >= threshold:
            groups.union(i, j)
    roots: dict[int, int] = {}
    cluster_of = [roots.setdefault(groups.find(i), len(roots)) for i in range(len(unique))]
    return [cluster_of[index[c]] for c in contexts]


def deduplicate(
    records: list[QARecord], near_threshold: float = 0.85, context_threshold: float = 0.9
) -> CleanResult:
    """Keep the first of each exact duplicate (same context and question) and of each near duplicate."""
    result = CleanResult()
    seen: dict[tuple[str, str], QARecord] = {}
    unique: list[QARecord] = []
    for record in records:
        key = (_key_text(record.context), _key_text(record.question))
        if key in seen:
            first = seen[key]
            result.dropped.append(Drop(record, REASON_EXACT, f"same as line {first.source_line}"))
            continue
        seen[key] = record
        unique.append(record)
    clusters = context_clusters([r.context for r in unique], context_threshold)
    result.context_groups = {r.context: c for r, c in zip(unique, clusters, strict=True)}
    kept_by_cluster: dict[int, list[tuple[QARecord, set[str], set[str]]]] = defaultdict(list)
    for record, cluster in zip(unique, clusters, strict=True):
        question, answer = shingles(record.question), shingles(record.reference_answer)
        match = next(
            (
                other
                for other, other_q, other_a in kept_by_cluster[cluster]
                if jaccard(question, other_q) >= near_threshold and jaccard(answer, other_a) >= near_threshold
            ),
            None,
        )
        if match is not None:
            result.dropped.append(Drop(record, REASON_NEAR, f"like line {match.source_line}"))
            continue
        kept_by_cluster[cluster].append((record, question, answer))
        result.kept.append(record)
    return result


def clean(
    records: list[QARecord],
    limits: Limits,
    near_threshold: float = 0.85,
    context_threshold: float = 0.9,
    max_duplicate_fraction: float = 0.5,
) -> CleanResult:
    """Normalise, apply limits, deduplicate; BadInput when nothing, or mostly duplicates, is left."""
    normalized = [normalize_record(r) for r in records]
    within, over = apply_limits(normalized, limits)
    result = deduplicate(within, near_threshold, context_threshold)
    result.dropped = over + result.dropped
    reasons = ", ".join(f"{n} {reason}" for reason, n in result.reasons().items())
    if not result.kept:
        raise BadInput(f"no rows left after cleaning {len(records)} rows ({reasons})")
    duplicates = sum(1 for d in result.dropped if d.reason in (REASON_EXACT, REASON_NEAR))
    if within and duplicates / len(within) > max_duplicate_fraction:
        raise BadInput(
            f"{duplicates} of {len(within)} rows ({duplicates / len(within):.1%}) are duplicates, more than "
            f"the tolerated {max_duplicate_fraction:.0%}: {len(result.kept)} distinct rows remain. "
            "The source looks like one record repeated, or the same file concatenated"
        )
    return result
