"""The tokenizer and the tiny Mistral base: formats vLLM loads, the checks on a base, pre-training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlops.datasets.ragqa import REFUSAL
from mlops.errors import BadInput
from mlops.models import hf_base
from mlops.models.hf_base import check_base_dir
from tests.unit.llm.factories import record
from training.llm import base_model
from training.llm.base_model import TinyMistralSpec, pack_windows
from training.llm.build_base import Config, pretraining_texts, recipe_key
from training.llm.tokenizer import MIN_VOCAB, train_bpe


def test_the_base_is_a_standard_mistral_in_safetensors(tiny_base: Path) -> None:
    names = {p.name for p in tiny_base.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not any(n.endswith(".bin") for n in names)
    config = json.loads((tiny_base / "config.json").read_text())
    assert config["model_type"] == "mistral" and config["architectures"] == ["MistralForCausalLM"]
    assert config["head_dim"] * config["num_attention_heads"] == config["hidden_size"]
    assert check_base_dir(tiny_base)["vocab_size"] == 320


def test_the_tokenizer_speaks_the_instruction_format(tiny_base: Path) -> None:
    tokenizer = hf_base.load_tokenizer(tiny_base)
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    ids = tokenizer("[INST] context\n\nQuestion: q? [/INST]")["input_ids"]
    assert ids[:2] == [1, tokenizer.convert_tokens_to_ids("[INST]")]  # <s> added, [INST] one token
    assert ids[-1] == tokenizer.convert_tokens_to_ids("[/INST]")
    assert tokenizer.decode(tokenizer(REFUSAL, add_special_tokens=False)["input_ids"]) == REFUSAL
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "C\n\nQuestion: q?"}], tokenize=False)
    assert chat == "<s>[INST] C\n\nQuestion: q? [/INST]"


def test_any_text_encodes_without_unknown_tokens(tiny_base: Path) -> None:
    tokenizer = hf_base.load_tokenizer(tiny_base)
    text = "Ünïcödé, emoji 🚀 and 数字"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == text


def test_the_base_loads_and_is_not_random(tiny_base: Path, prepared_dir: Path) -> None:
    import torch

    from mlops.datasets import ragqa

    tokenizer = hf_base.load_tokenizer(tiny_base)
    model = hf_base.load_model(tiny_base)
    text = pretraining_texts(ragqa.read_split(prepared_dir, "train"))[0]
    ids = torch.tensor([tokenizer(text)["input_ids"][:64]])
    with torch.no_grad():
        loss = float(model(input_ids=ids, labels=ids).loss)
    assert loss < math.log(320) - 0.5  # better than a uniform guess over the vocabulary


def test_vocabularies_below_the_byte_alphabet_are_refused() -> None:
    with pytest.raises(ValueError, match="below"):
        train_bpe(["text"], MIN_VOCAB - 1)


def test_head_sizes_vllm_cpu_cannot_run_are_bad_input() -> None:
    with pytest.raises(BadInput, match="head size 48"):
        TinyMistralSpec(hidden_size=96, num_attention_heads=2).check()
    with pytest.raises(BadInput, match="multiple of num_key_value_heads"):
        TinyMistralSpec(num_attention_heads=4, num_key_value_heads=3).check()


def test_pack_windows_concatenates_with_eos_and_drops_the_tail() -> None:
    assert pack_windows([[1, 5, 6], [1, 7]], 3, 2) == [[1, 5, 6], [2, 1, 7]]
    assert pack_windows([[1]], 8, 2) == []


def test_pretraining_texts_never_use_the_instruction_format() -> None:
    texts = pretraining_texts([record(line=1), record(question="Other?", answer="Other.", line=2)])
    assert len(texts) == 1 and "[INST]" not in texts[0]
    assert texts[0].endswith("Question: Other?\nAnswer: Other.")


def test_the_recipe_key_covers_data_settings_and_versions() -> None:
    versions = {"torch": "1"}
    key = recipe_key(Config(), "abc", versions)
    assert key == recipe_key(Config(experiment="elsewhere", dataset_uri="s3://x/"), "abc", versions)
    assert key != recipe_key(Config(pretrain_epochs=9), "abc", versions)
    assert key != recipe_key(Config(), "abd", versions)
    assert key != recipe_key(Config(), "abc", {"torch": "2"})


def test_a_diverging_pretraining_is_bad_input(tiny_base: Path, torch_global_state: None) -> None:
    import torch

    model = hf_base.load_model(tiny_base)
    with torch.no_grad():
        model.model.embed_tokens.weight.fill_(float("nan"))
    with pytest.raises(BadInput, match="pre-training loss became nan"):
        base_model.pretrain(model, [[1, 2, 3, 4]], epochs=1, batch_size=1, learning_rate=1e-3, seed=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: (d / "config.json").write_text('{"model_type": "llama"}'), "model_type 'llama'"),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
        (lambda d: (d / "model.safetensors").unlink(), "no \\*.safetensors"),
        (lambda d: (d / "config.json").unlink(), "no config.json"),
    ],
)
def test_a_base_that_is_not_a_usable_mistral_is_bad_input(
    tiny_base: Path, tmp_path: Path, change: object, message: str
) -> None:
    import shutil

    folder = tmp_path / "base"
    shutil.copytree(tiny_base, folder)
    change(folder)  # type: ignore[operator]
    with pytest.raises(BadInput, match=message):
        check_base_dir(folder)


def test_fetch_base_from_s3_verifies_checksums(tiny_base: Path, s3: object, tmp_path: Path) -> None:
    from mlops.storage import S3Url

    target = S3Url.parse("s3://models/base/tiny/r1")
    s3.ensure_bucket("models")  # type: ignore[attr-defined]
    s3.publish_directory(tiny_base, target)  # type: ignore[attr-defined]
    tokenizer_only = hf_base.fetch_base(f"{target}/", tmp_path / "t", tokenizer_only=True, store=s3)  # type: ignore[arg-type]
    assert (
        not (tokenizer_only / "model.safetensors").exists() and (tokenizer_only / "tokenizer.json").exists()
    )
    full = hf_base.fetch_base(f"{target}/", tmp_path / "f", store=s3)  # type: ignore[arg-type]
    assert (full / "model.safetensors").read_bytes() == (tiny_base / "model.safetensors").read_bytes()
    s3.put_bytes(target.join("model.safetensors"), b"tampered")  # type: ignore[attr-defined]
    with pytest.raises(BadInput, match="differs from the commit manifest"):
        hf_base.fetch_base(f"{target}/", tmp_path / "g", store=s3)  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="no base model"):
        hf_base.fetch_base("s3://models/base/none/", tmp_path / "h", store=s3)  # type: ignore[arg-type]
