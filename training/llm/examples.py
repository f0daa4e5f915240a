"""Token ids and labels for supervised fine-tuning: the loss counts answer tokens only.

An example is `<s>` + tokens of `prompt_inference` (labels -100: never scored) + tokens of
" answer" + `</s>` (scored). The prompt is tokenized on its own exactly as vLLM will tokenize it
when served, and `</s>` is scored so the model learns to stop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlops.datasets.ragqa import QARecord

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    question_type: str

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def prompt_ids(tokenizer: Any, record: QARecord) -> list[int]:
    return list(tokenizer(record.prompt_inference, add_special_tokens=True)["input_ids"])


def answer_ids(tokenizer: Any, record: QARecord) -> list[int]:
    return [
        *tokenizer(" " + record.reference_answer, add_special_tokens=False)["input_ids"],
        tokenizer.eos_token_id,
    ]


def encode(tokenizer: Any, record: QARecord) -> Example:
    prompt, answer = prompt_ids(tokenizer, record), answer_ids(tokenizer, record)
    return Example([*prompt, *answer], [IGNORE] * len(prompt) + answer, record.question_type)


def encode_all(tokenizer: Any, records: list[QARecord], max_seq_length: int) -> tuple[list[Example], int]:
    """Encoded examples that fit `max_seq_length`, and how many did not (they are left out, not cut)."""
    kept: list[Example] = []
    over = 0
    for record in records:
        example = encode(tokenizer, record)
        if len(example.input_ids) > max_seq_length:
            over += 1
        else:
            kept.append(example)
    return kept, over


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (padding never scored)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in examples]
    labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in examples]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples]
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def batches(
    examples: list[Example], batch_size: int, pad_id: int, order: list[int] | None = None
) -> Iterator[dict[str, Any]]:
    indices = order if order is not None else list(range(len(examples)))
    for start in range(0, len(indices), batch_size):
        yield collate([examples[i] for i in indices[start : start + batch_size]], pad_id)


def evaluate(
    model: Any, examples: list[Example], pad_id: int, batch_size: int = 32, device: Any = None
) -> dict[str, float]:
    """Token-weighted answer loss and perplexity over `examples`, and the loss per question type."""
    import torch

    was_training = model.training
    model.eval()
    totals: dict[str, list[float]] = {}
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = collate(chunk, pad_id)
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[
                :, :-1
            ]
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2).float(), targets, ignore_index=IGNORE, reduction="none"
            ).sum(dim=1)
            counts = (targets != IGNORE).sum(dim=1)
            for example, loss, count in zip(chunk, losses.tolist(), counts.tolist(), strict=True):
                bucket = totals.setdefault(example.question_type, [0.0, 0.0])
                bucket[0] += loss
                bucket[1] += count
    if was_training:
        model.train()
    loss_sum = sum(v[0] for v in totals.values())
    count = sum(v[1] for v in totals.values())
    if count == 0:
        return {"loss": math.nan, "perplexity": math.nan, "tokens": 0.0}
    loss = loss_sum / count
    # exp overflows past ~709; a NaN loss stays NaN and the gate refuses it as bad input.
    result = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": float(count)}
    for question_type, (type_loss, type_count) in sorted(totals.items()):
        result[f"loss_{question_type}"] = type_loss / max(type_count, 1.0)
    return result
