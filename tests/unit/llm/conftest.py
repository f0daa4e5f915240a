"""Fixtures of the LLM step tests: a small synthetic corpus, a prepared dataset and a tiny base, made once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Smaller than the local profile's base, same architecture: tests stay fast.
TEST_SPEC = {
    "vocab_size": 320,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "max_position_embeddings": 512,
}


@pytest.fixture(scope="session")
def corpus_rows() -> list[dict[str, Any]]:
    from training.llm import corpus

    return corpus.generate(documents=30, seed=3, noise=0.0)


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared dataset folder (train/val/eval.jsonl + data_card.json) from 40 synthetic documents."""
    from training.llm.prepare_data import Config, prepare

    _, folder = prepare(Config(synthetic_documents=40, seed=5), tmp_path_factory.mktemp("prepared"))
    return folder


@pytest.fixture(scope="session")
def tiny_base(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer Mistral with its tokenizer, pre-trained for one epoch, saved in HF format."""
    import torch

    from mlops.datasets import ragqa
    from training.llm.build_base import Config, build_tiny

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    target = tmp_path_factory.mktemp("base") / "base"
    cfg = Config(pretrain_epochs=1, pretrain_window=64, **TEST_SPEC)
    build_tiny(cfg, ragqa.read_split(prepared_dir, "train"), target)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    return target


@pytest.fixture
def torch_global_state() -> Iterator[None]:
    """Restore what `seed_everything` changes process-wide (deterministic kernels, thread count)."""
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
