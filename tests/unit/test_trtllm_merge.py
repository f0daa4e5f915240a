"""TensorRT-LLM path, merge step: size estimate, the CPU refusal of a 7B base before any download,
and a real merge of a peft LoRA into a tiny MistralForCausalLM (same logits as base + adapter)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployment.trtllm import merge
from mlops.errors import BadInput
from mlops.registry import InMemoryBackend, Registry
from mlops.storage import COMMIT_MARKER, S3Store, S3Url, sha256_file
from tests.unit.moto_s3 import moto_store

MODEL = "mistral-7b-lora"
# Mistral-7B-v0.1's config.json (the sizes that matter)
MISTRAL_7B = {
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    with moto_store(monkeypatch, "trtllm-deployment-abc12") as store:
        yield store


def keys(store: S3Store) -> list[str]:
    buckets = store.client.list_buckets().get("Buckets", [])
    return [f"{b['Name']}/{key}" for b in buckets for key in store.list(S3Url(b["Name"], ""))]


def test_parameter_estimate_of_mistral_7b() -> None:
    estimate = merge.estimate_parameters(MISTRAL_7B)
    assert 7_200_000_000 < estimate < 7_300_000_000  # Mistral-7B has 7.24B parameters
    tied = merge.estimate_parameters({**MISTRAL_7B, "tie_word_embeddings": True})
    assert estimate - tied == 32000 * 4096
    with pytest.raises(BadInput, match="sizes of a decoder"):
        merge.estimate_parameters({"model_type": "mistral"})


def test_a_7b_base_is_refused_without_cuda_and_accepted_with_it() -> None:
    with pytest.raises(BadInput, match=r"about 7\.2B parameters: merging it needs a CUDA GPU node") as caught:
        merge.check_cpu_merge(7_241_732_096, 1_000_000_000, has_cuda=False)
    assert "--max-cpu-parameters=1,000,000,000" in str(caught.value)
    merge.check_cpu_merge(7_241_732_096, 1_000_000_000, has_cuda=True)
    merge.check_cpu_merge(500_000, 1_000_000_000, has_cuda=False)


# --- a tiny Mistral and a LoRA adapter, built here ----------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-layer MistralForCausalLM with a BPE tokenizer, and a peft LoRA (r4, q/v) with non-zero B."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    from training.llm.tokenizer import to_transformers, train_bpe

    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    texts = [f"question {i}: what does service {i % 7} do? answer: it stores data" for i in range(200)]
    tokenizer = to_transformers(train_bpe(texts, 300), model_max_length=128)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    base = root / "base"
    MistralForCausalLM(config).save_pretrained(str(base), safe_serialization=True)
    tokenizer.save_pretrained(str(base))
    model = MistralForCausalLM.from_pretrained(str(base))
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj"],
        task_type=TaskType.CAUSAL_LM,
        init_lora_weights=False,  # random B: the merge must change the weights
    )
    adapter = root / "adapter"
    get_peft_model(model, lora).save_pretrained(str(adapter), safe_serialization=True)
    return {"base": base, "adapter": adapter, "tokenizer": tokenizer}


def logits(model: Any, tokenizer: Any) -> Any:
    import torch

    ids = torch.tensor([tokenizer.encode("what does service 3 do?")])
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merge_folds_the_adapter_into_the_weights(tiny: dict[str, Any], tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    count = merge.merge_checkpoint(tiny["base"], tiny["adapter"], out, dtype="float32", device="cpu")
    assert count == merge.estimate_parameters(json.loads((tiny["base"] / "config.json").read_text()))
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny["base"])), str(tiny["adapter"])
    )
    base_only = AutoModelForCausalLM.from_pretrained(str(tiny["base"]))
    expected = logits(with_adapter, tiny["tokenizer"])
    assert torch.allclose(logits(merged, tiny["tokenizer"]), expected, atol=1e-4)
    assert not torch.allclose(logits(base_only, tiny["tokenizer"]), expected, atol=1e-4)


def registered(adapter: Path, base_uri: str) -> Registry:
    registry = Registry(InMemoryBackend(), actor="test")
    version = registry.register(
        MODEL,
        str(adapter),
        None,
        tags={"base_uri": base_uri, "adapter_sha256": sha256_file(adapter / "adapter_model.safetensors")},
    )
    registry.move_alias(MODEL, "live", version, expect_version=None, reason="test")
    return registry


def test_merge_step_publishes_a_committed_checkpoint(tiny: dict[str, Any], s3: S3Store) -> None:
    cfg = merge.Config(work_prefix="s3://work/trtllm")
    result = merge.run(cfg, registered(tiny["adapter"], str(tiny["base"])), s3, has_cuda=lambda: False)
    target = S3Url.parse("s3://work/trtllm/trtllm-deployment-abc12/merged-v1")
    assert result.outputs["merged-uri"] == str(target) and result.outputs["version"] == "1"
    manifest = json.loads(s3.get_bytes(target.join(COMMIT_MARKER)))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest)
    again = merge.run(cfg, registered(tiny["adapter"], str(tiny["base"])), s3, has_cuda=lambda: False)
    assert "already committed" in again.summary


def test_merge_step_refuses_a_corrupt_adapter(tiny: dict[str, Any], s3: S3Store) -> None:
    registry = registered(tiny["adapter"], str(tiny["base"]))
    registry.tag_version(MODEL, "1", {"adapter_sha256": "0" * 64})
    with pytest.raises(BadInput, match="adapter weights have sha256"):
        merge.run(merge.Config(work_prefix="s3://work/trtllm"), registry, s3, has_cuda=lambda: False)


def test_a_7b_base_on_cpu_is_refused_before_any_weight_is_read(
    tiny: dict[str, Any], s3: S3Store, tmp_path: Path
) -> None:
    # A "7B base" that is only config.json + tokenizer: no weights, so any attempt to load them would fail.
    base = tmp_path / "base-7b"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(MISTRAL_7B))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (base / name).write_bytes((tiny["base"] / name).read_bytes())
    store_keys_before = keys(s3)
    with pytest.raises(BadInput, match="needs a CUDA GPU node"):
        merge.run(
            merge.Config(work_prefix="s3://work/trtllm"),
            registered(tiny["adapter"], str(base)),
            s3,
            has_cuda=lambda: False,
        )
    assert keys(s3) == store_keys_before == []


def test_the_merge_command_line_exits_2_for_an_unknown_option() -> None:
    assert merge.main(["--alias=live", "--no-such-flag=1"]) == 2
