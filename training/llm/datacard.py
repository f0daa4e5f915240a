"""The data card: what went in, what was dropped and why, what each split holds; plus its figures.

Logged to MLflow by prepare_data (`data_card/`), completed by token_stats with token counts.
No timestamps or hosts in it: the same data and settings give the same card.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from mlops.datasets.ragqa import SPLITS, QARecord
from training.llm.cleaning import CleanResult
from training.llm.ingest import IngestResult

EXAMPLES_PER_REASON = 3


def length_summary(values: list[int]) -> dict[str, float]:
    """count, mean, p50, p95, max of a list of lengths (zeros when empty)."""
    if not values:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "p50": float(ordered[len(ordered) // 2]),
        "p95": float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
        "max": float(ordered[-1]),
    }


def build_card(
    ingested: IngestResult,
    cleaned: CleanResult,
    splits: dict[str, list[QARecord]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Counts, drops with reasons (and a few examples each), per-split type counts, length statistics."""
    examples: dict[str, list[dict[str, Any]]] = {}
    for drop in cleaned.dropped:
        bucket = examples.setdefault(drop.reason, [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append(
                {
                    "line": drop.record.source_line,
                    "detail": drop.detail,
                    "question": drop.record.question[:200],
                }
            )
    kept = [r for split in SPLITS for r in splits[split]]
    types = sorted({r.question_type for r in kept})
    return {
        "source": ingested.source,
        "format": ingested.format,
        "rows_read": ingested.rows_read,
        "rows_invalid": ingested.invalid_rows,
        "invalid_examples": [str(e) for e in ingested.errors[: EXAMPLES_PER_REASON * 3]],
        "rows_valid": len(ingested.records),
        "rows_dropped": len(cleaned.dropped),
        "dropped_by_reason": cleaned.reasons(),
        "dropped_examples": examples,
        "rows_kept": len(kept),
        "question_types": types,
        "splits": {
            split: {
                "rows": len(splits[split]),
                "contexts": len({r.context for r in splits[split]}),
                "by_question_type": {
                    t: Counter(r.question_type for r in splits[split]).get(t, 0) for t in types
                },
            }
            for split in SPLITS
        },
        "shared_contexts_between_splits": 0,  # guaranteed by the group split, re-checked by prepare_data
        "lengths_chars": {
            "context": length_summary([len(r.context) for r in kept]),
            "question": length_summary([len(r.question) for r in kept]),
            "reference_answer": length_summary([len(r.reference_answer) for r in kept]),
            "prompt_training": length_summary([len(r.prompt_training) for r in kept]),
        },
        "settings": settings,
    }


def card_markdown(card: dict[str, Any]) -> str:
    """A page a person reads: the same facts as the JSON card."""
    lines = [
        f"# Data card: {card.get('sha256', '')[:12]}",
        "",
        f"Source `{card['source']}` ({card['format']}): {card['rows_read']} rows read, "
        f"{card['rows_invalid']} invalid, {card['rows_dropped']} dropped, {card['rows_kept']} kept.",
        "",
        "## Dropped rows",
        "",
        "| reason | rows |",
        "|---|---|",
        *[f"| {reason} | {n} |" for reason, n in card["dropped_by_reason"].items()],
        "",
        "## Splits (no context is shared between splits)",
        "",
        "| split | rows | contexts | " + " | ".join(card["question_types"]) + " |",
        "|---|---|---|" + "---|" * len(card["question_types"]),
    ]
    for split, info in card["splits"].items():
        counts = " | ".join(str(info["by_question_type"][t]) for t in card["question_types"])
        lines.append(f"| {split} | {info['rows']} | {info['contexts']} | {counts} |")
    lines += [
        "",
        "## Lengths (characters)",
        "",
        "| field | mean | p50 | p95 | max |",
        "|---|---|---|---|---|",
    ]
    for name, summary in card["lengths_chars"].items():
        lines.append(
            f"| {name} | {summary['mean']} | {summary['p50']} | {summary['p95']} | {summary['max']} |"
        )
    tokens = card.get("tokens")
    if tokens:
        lines += [
            "",
            f"## Tokens ({tokens['tokenizer']}, max_seq_length {tokens['max_seq_length']})",
            "",
            "| split | prompt_training mean | p95 | max | answer mean | over max_seq_length |",
            "|---|---|---|---|---|---|",
        ]
        for split, info in tokens["splits"].items():
            t, a = info["prompt_training"], info["answer"]
            lines.append(
                f"| {split} | {t['mean']} | {t['p95']} | {t['max']} | {a['mean']} | {info['over_max_seq_length']} |"
            )
    return "\n".join(lines) + "\n"
