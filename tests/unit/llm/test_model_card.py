"""The adapter's model card: every section filled from what the fine-tuning run logged, nothing left blank."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlops.gates import Verdict
from mlops.storage import sha256_file
from training.llm import lora, model_card
from training.llm.finetune import Config
from training.llm.gate import loss_gate

RUN_ID = "0f3c9a1e2b7d4c55a1e2b7d4c55a1e2b"
SECTIONS = ("Base model", "Dataset", "Training", "Results", "Loss gate", "Intended use", "Limits")


def _logged(base: Path) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params, metrics and tags as `training.llm.finetune` logs them."""
    cfg = Config(dataset_uri="s3://data/rag-qa/" + "a" * 64 + "/", base_uri="s3://models/base/tiny/k1/")
    settings = lora.resolve("minimal")
    params = {
        k: str(v)
        for k, v in {
            **cfg.model_dump(),
            **settings.as_params(),
            "trainable_parameters": 2048,
            "total_parameters": 190_000,
            "train_examples": 96,
            "val_examples": 12,
            "eval_examples": 14,
            "train_over_max_seq_length": 0,
            "val_over_max_seq_length": 0,
            "eval_over_max_seq_length": 1,
            "device": "cpu",
            "torch_version": "2.14.1",
            "transformers_version": "5.23.0",
            "peft_version": "0.21.0",
        }.items()
    }
    metrics = {
        "eval_loss": 0.6931,
        "perplexity": 2.0,
        "best_epoch": 2.0,
        "best_val_loss": 0.71,
        "epochs_run": 3.0,
        "stopped_early": 0.0,
        "train_tokens": 51234.0,
        "train_seconds": 12.5,
        "train_tokens_per_s": 4098.7,
    }
    tags = {
        "dataset_uri": cfg.dataset_uri,
        "dataset_sha256": "a" * 64,
        "base_uri": cfg.base_uri,
        **model_card.base_facts(base),
        "adapter_sha256": "b" * 64,
    }
    return params, metrics, tags


def _section(card: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", card, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def test_base_facts_hash_the_weights_and_name_the_build_run(tmp_path: Path, tiny_base: Path) -> None:
    facts = model_card.base_facts(tiny_base)
    (weights,) = sorted(tiny_base.glob("*.safetensors"))
    assert facts["base_weights_sha256"] == sha256_file(weights)
    assert facts["base_weights_files"] == weights.name
    assert "base_run_id" not in facts  # built here without build_base's build.json
    (tmp_path / "model-00001.safetensors").write_bytes(b"one")
    (tmp_path / "model-00002.safetensors").write_bytes(b"two")
    (tmp_path / "build.json").write_text(json.dumps({"run_id": "r123"}))
    several = model_card.base_facts(tmp_path)
    assert several["base_run_id"] == "r123" and len(several["base_weights_sha256"]) == 64
    assert several["base_weights_sha256"] not in (sha256_file(p) for p in tmp_path.glob("*.safetensors"))


def test_the_registered_card_fills_every_section_with_the_runs_values(tiny_base: Path) -> None:
    params, metrics, tags = _logged(tiny_base)
    gate = loss_gate(metrics["eval_loss"], metrics["perplexity"], 1.0, 2.5)
    card = model_card.render(
        params, metrics, tags, run_id=RUN_ID, model="mistral-7b-lora", version="7", gate=gate
    )
    assert "[More Information Needed]" not in card and "not recorded" not in card
    assert len(card) < model_card.DESCRIPTION_LIMIT  # the version's description holds all of it
    assert card.startswith("# mistral-7b-lora v7: LoRA adapter")
    for title in SECTIONS:
        assert _section(card, title).strip()
    assert tags["base_weights_sha256"] in _section(card, "Base model")
    assert "s3://models/base/tiny/k1/" in _section(card, "Base model")
    dataset = _section(card, "Dataset")
    assert "a" * 64 in dataset and "train 96" in dataset and "eval 14 (left out as too long: 1)" in dataset
    training = _section(card, "Training")
    for row in (
        "| method | lora |",
        "| LoRA preset | minimal |",
        "| rank r / alpha / dropout | 4 / 8 / 0.05 |",
        "| target modules | q_proj,v_proj |",
        "| epochs (max / run / best) | 3 / 3 / 2 |",
        "| learning rate (AdamW, warm-up share, cosine) | 0.0002 (0.05) |",
        "| seed / CPU threads | 42 / 1 |",
    ):
        assert row in training
    assert "eval_loss: 0.6931" in _section(card, "Results") and "perplexity 2.0000" in _section(
        card, "Results"
    )
    gate_text = _section(card, "Loss gate")
    assert "Verdict: **pass**" in gate_text and "registered as mistral-7b-lora v7" in gate_text
    assert "| eval_loss | 0.6931 | <= 1 | pass |" in gate_text
    assert "| perplexity | 2 | <= 2.5 | pass |" in gate_text
    assert "--max-lora-rank` of at least 4" in _section(card, "Limits")


def test_a_failed_gate_says_nothing_was_registered(tiny_base: Path) -> None:
    params, metrics, tags = _logged(tiny_base)
    gate = loss_gate(metrics["eval_loss"], metrics["perplexity"], 0.5, 2.5)
    card = model_card.render(params, metrics, tags, run_id=RUN_ID, model="m", gate=gate)
    text = _section(card, "Loss gate")
    assert "Verdict: **fail**" in text and "not registered" in text and "| FAIL |" in text


def test_before_the_gate_the_card_says_so(tiny_base: Path) -> None:
    params, metrics, tags = _logged(tiny_base)
    card = model_card.render(params, metrics, tags, run_id=RUN_ID, model="m")
    assert "Not judged yet" in _section(card, "Loss gate")


def test_a_missing_value_shows_as_not_recorded_rather_than_blank() -> None:
    card = model_card.render({}, {}, {}, run_id=RUN_ID, model="m", gate=Verdict(True, [], "ok"))
    assert "weights sha256: `not recorded`" in card and "| method | not recorded |" in card


def test_the_description_is_cut_to_what_mlflow_keeps() -> None:
    assert model_card.description("short", RUN_ID) == "short"
    cut = model_card.description("x" * 6000, RUN_ID)
    assert len(cut) == model_card.DESCRIPTION_LIMIT and cut.endswith(f"run `{RUN_ID}`)\n")
