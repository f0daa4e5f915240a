"""Supervised examples: only answer tokens (and the closing </s>) are scored."""

from __future__ import annotations

import math
from pathlib import Path

from mlops.models import hf_base
from tests.unit.llm.factories import record
from training.llm import examples
from training.llm.examples import IGNORE


def test_labels_score_the_answer_and_eos_only(tiny_base: Path) -> None:
    tokenizer = hf_base.load_tokenizer(tiny_base)
    rec = record()
    example = examples.encode(tokenizer, rec)
    prompt = tokenizer(rec.prompt_inference)["input_ids"]
    assert example.input_ids[: len(prompt)] == prompt
    assert example.labels[: len(prompt)] == [IGNORE] * len(prompt)
    answer = example.labels[len(prompt) :]
    assert answer[-1] == tokenizer.eos_token_id and IGNORE not in answer
    assert tokenizer.decode(answer[:-1]) == " " + rec.reference_answer
    # The pieces tokenized apart are what the whole training text tokenizes to.
    assert example.input_ids[:-1] == tokenizer(rec.prompt_training)["input_ids"]


def test_examples_over_the_limit_are_left_out_and_counted(tiny_base: Path) -> None:
    tokenizer = hf_base.load_tokenizer(tiny_base)
    kept, over = examples.encode_all(tokenizer, [record(), record(context="word " * 200)], max_seq_length=128)
    assert len(kept) == 1 and over == 1


def test_collate_pads_without_scoring_padding() -> None:
    batch = examples.collate(
        [examples.Example([1, 5, 6], [IGNORE, 6, 2], "a"), examples.Example([1, 7], [IGNORE, 2], "b")],
        pad_id=2,
    )
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 7, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 2], [IGNORE, 2, IGNORE]]


def test_evaluate_is_the_token_weighted_answer_loss(tiny_base: Path) -> None:
    import torch

    tokenizer = hf_base.load_tokenizer(tiny_base)
    model = hf_base.load_model(tiny_base)
    encoded = [
        examples.encode(tokenizer, record(question=q)) for q in ("Where?", "Which port is it on today?")
    ]
    scores = examples.evaluate(model, encoded, tokenizer.eos_token_id)
    total, count = 0.0, 0
    with torch.no_grad():
        for example in encoded:  # one at a time, no padding: the reference
            batch = examples.collate([example], tokenizer.eos_token_id)
            loss = model(**batch).loss  # mean over scored tokens
            n = sum(1 for label in example.labels[1:] if label != IGNORE)
            total, count = total + float(loss) * n, count + n
    assert math.isclose(scores["loss"], total / count, rel_tol=1e-5)
    assert math.isclose(scores["perplexity"], math.exp(scores["loss"]))
    assert scores["tokens"] == count and "loss_numeric" in scores
