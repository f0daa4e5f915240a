"""Fine-tuning on the tiny base: learns, evaluates each epoch, stops early, keeps the best, saves PEFT."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from mlops.datasets import ragqa
from mlops.errors import BadInput
from mlops.models import hf_base
from training.llm import base_model, examples, lora
from training.llm.finetune import Config, save_adapter
from training.llm.loop import fit, restore_state, trainable_state

PRESET = lora.resolve("standard", r=4)


def _setup(
    tiny_base: Path, prepared_dir: Path, seed: int = 0
) -> tuple[Any, Any, list[examples.Example], list[examples.Example]]:
    from peft import get_peft_model

    base_model.seed_everything(seed, 1)
    tokenizer = hf_base.load_tokenizer(tiny_base)
    model = get_peft_model(hf_base.load_model(tiny_base), PRESET.peft_config())
    train, _ = examples.encode_all(tokenizer, ragqa.read_split(prepared_dir, "train")[:48], 512)
    val, _ = examples.encode_all(tokenizer, ragqa.read_split(prepared_dir, "val")[:16], 512)
    return model, tokenizer, train, val


def _fit(
    model: Any, tokenizer: Any, train: list[examples.Example], val: list[examples.Example], **kwargs: Any
) -> Any:
    options = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "patience": 0, "seed": 0} | kwargs
    return fit(model, train, val, pad_id=tokenizer.eos_token_id, **options)


def test_fit_lowers_the_validation_loss_and_logs_every_epoch(
    tiny_base: Path, prepared_dir: Path, torch_global_state: None
) -> None:
    model, tokenizer, train, val = _setup(tiny_base, prepared_dir)
    before = examples.evaluate(model, val, tokenizer.eos_token_id)["loss"]
    epochs: list[dict[str, float]] = []
    result = _fit(model, tokenizer, train, val, on_epoch=epochs.append)
    assert [int(e["epoch"]) for e in epochs] == [1, 2] == [int(h["epoch"]) for h in result.history]
    assert result.best_val_loss < before
    assert {"train_loss", "val_loss", "val_perplexity", "train_tokens_per_s", "val_loss_numeric"} <= set(
        epochs[0]
    )
    assert math.isclose(epochs[0]["val_perplexity"], math.exp(epochs[0]["val_loss"]))
    assert result.train_tokens == 2 * sum(len(e.input_ids) for e in train) and result.tokens_per_s > 0


def test_only_lora_weights_train(tiny_base: Path, prepared_dir: Path, torch_global_state: None) -> None:
    model, tokenizer, train, val = _setup(tiny_base, prepared_dir)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    _fit(model, tokenizer, train, val, epochs=1)
    assert all(n.count("lora_") for n, p in model.named_parameters() if p.requires_grad)
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert parameter.equal(frozen[name]), name


def test_early_stopping_keeps_the_best_epoch(
    tiny_base: Path, prepared_dir: Path, torch_global_state: None
) -> None:
    model, tokenizer, train, val = _setup(tiny_base, prepared_dir)
    # A huge min_delta: no epoch after the first counts as an improvement.
    result = _fit(model, tokenizer, train, val, epochs=5, patience=2, min_delta=100.0)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
    kept = examples.evaluate(model, val, tokenizer.eos_token_id)["loss"]
    assert math.isclose(
        kept, result.history[0]["val_loss"], rel_tol=1e-6
    )  # the epoch-1 weights were restored


def test_a_nan_loss_is_bad_input(tiny_base: Path, prepared_dir: Path, torch_global_state: None) -> None:
    import torch

    model, tokenizer, train, val = _setup(tiny_base, prepared_dir)
    with torch.no_grad():
        model.get_base_model().model.embed_tokens.weight.fill_(float("nan"))
    with pytest.raises(BadInput, match=r"training loss became nan at epoch 1, batch 1"):
        _fit(model, tokenizer, train, val)


def test_no_example_within_max_seq_length_is_bad_input(
    tiny_base: Path, prepared_dir: Path, torch_global_state: None
) -> None:
    model, tokenizer, _, val = _setup(tiny_base, prepared_dir)
    with pytest.raises(BadInput, match="no training examples fit"):
        _fit(model, tokenizer, [], val)


def test_the_same_seed_trains_the_same_adapter(
    tiny_base: Path, prepared_dir: Path, torch_global_state: None
) -> None:
    states = []
    for _ in range(2):
        model, tokenizer, train, val = _setup(tiny_base, prepared_dir, seed=3)
        _fit(model, tokenizer, train, val, epochs=1, seed=3)
        states.append(trainable_state(model))
    assert states[0].keys() == states[1].keys()
    assert all(states[0][k].equal(states[1][k]) for k in states[0])


def test_the_adapter_is_saved_in_peft_format_and_loads_back(
    tiny_base: Path, prepared_dir: Path, tmp_path: Path, torch_global_state: None
) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    model, tokenizer, train, val = _setup(tiny_base, prepared_dir)
    _fit(model, tokenizer, train, val, epochs=1)
    folder = save_adapter(model, tmp_path / "adapter", "s3://models/base/tiny/")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["lora_alpha"] == 8
    assert config["base_model_name_or_path"] == "s3://models/base/tiny/"
    assert set(config["target_modules"]) == set(PRESET.target_modules)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    assert tensors and all(".lora_A." in k or ".lora_B." in k for k in tensors)
    reloaded = PeftModel.from_pretrained(hf_base.load_model(tiny_base), str(folder))
    model.eval()  # no dropout: the two must compute the same function
    reloaded.eval()
    batch = examples.collate(val[:2], tokenizer.eos_token_id)
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, reloaded(**batch).logits, atol=1e-5)


def test_restore_state_puts_weights_back(
    tiny_base: Path, prepared_dir: Path, torch_global_state: None
) -> None:
    import torch

    model, *_ = _setup(tiny_base, prepared_dir)
    saved = trainable_state(model)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    restore_state(model, saved)
    assert all(p.equal(saved[n]) for n, p in model.named_parameters() if p.requires_grad)


def test_the_step_without_its_inputs_is_bad_input_naming_both() -> None:
    from mlops.config import load_config

    with pytest.raises(BadInput, match=r"^--dataset-uri is required: .*; --base-uri is required: "):
        load_config(Config, [], env={})
