"""Tokenizer statistics of the prepared splits, and too many examples over max_seq_length."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.datasets import ragqa
from mlops.datasets.ragqa import SPLITS
from mlops.errors import BadInput
from mlops.models import hf_base
from training.llm import datacard
from training.llm.token_stats import Config, check_overlength, run, statistics_for


def test_statistics_cover_every_split(tiny_base: Path, prepared_dir: Path) -> None:
    tokenizer = hf_base.load_tokenizer(tiny_base)
    splits = {s: ragqa.read_split(prepared_dir, s) for s in SPLITS}
    stats = statistics_for(tokenizer, splits, 512, "tiny")
    for split in SPLITS:
        info = stats["splits"][split]
        assert info["prompt_training"]["count"] == len(splits[split])
        assert info["answer"]["max"] < info["prompt_training"]["max"]
        assert info["over_max_seq_length"] == 0 and info["tokens"] == sum(info["_lengths"])
    card = {**ragqa.read_card(prepared_dir), "tokens": stats}
    assert "## Tokens (tiny, max_seq_length 512)" in datacard.card_markdown(card)


def test_too_many_examples_over_max_seq_length_is_bad_input(tiny_base: Path, prepared_dir: Path) -> None:
    tokenizer = hf_base.load_tokenizer(tiny_base)
    splits = {s: ragqa.read_split(prepared_dir, s) for s in SPLITS}
    stats = statistics_for(tokenizer, splits, 40, "tiny")
    with pytest.raises(BadInput, match=r"longer than max_seq_length=40 tokens"):
        check_overlength(stats, 0.02)
    check_overlength(stats, 1.0)


def test_the_step_runs_on_local_folders(tiny_base: Path, prepared_dir: Path) -> None:
    result = run(Config(dataset_uri=str(prepared_dir), base_uri=str(tiny_base)))
    assert int(result.outputs["max-tokens"]) > 0 and result.outputs["over-max-seq-length"] == "0"


def test_the_step_needs_both_inputs() -> None:
    from mlops.config import load_config

    with pytest.raises(BadInput, match=r"^--base-uri is required: base model whose tokenizer counts"):
        load_config(Config, ["--dataset-uri=s3://d/"], env={})
