"""LoRA presets and overrides, the serving rank limit, and QLoRA: CUDA required, config testable on CPU."""

from __future__ import annotations

import pytest

from mlops.errors import BadInput
from training.llm import lora
from training.llm.finetune import Config, preflight, run


@pytest.mark.parametrize(
    ("preset", "rank", "alpha", "modules"),
    [
        ("minimal", 4, 8, ("q_proj", "v_proj")),
        ("standard", 8, 16, ("q_proj", "k_proj", "v_proj", "o_proj")),
        ("aggressive", 16, 32, lora.ALL_PROJECTIONS),
        ("high_capacity", 32, 64, lora.ALL_PROJECTIONS),
    ],
)
def test_presets(preset: str, rank: int, alpha: int, modules: tuple[str, ...]) -> None:
    settings = lora.resolve(preset)
    assert (settings.r, settings.alpha, settings.target_modules, settings.dropout) == (
        rank,
        alpha,
        modules,
        0.05,
    )
    assert len(lora.ALL_PROJECTIONS) == 7


def test_overrides_replace_preset_values() -> None:
    settings = lora.resolve("standard", r=4, dropout=0.0, target_modules="q_proj, v_proj")
    assert (settings.r, settings.alpha, settings.dropout, settings.target_modules) == (
        4,
        8,
        0.0,
        ("q_proj", "v_proj"),
    )
    assert lora.resolve("standard", r=4, alpha=4).alpha == 4
    config = lora.resolve("minimal").peft_config()
    assert (
        config.r == 4
        and set(config.target_modules) == {"q_proj", "v_proj"}
        and config.task_type == "CAUSAL_LM"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown LoRA preset"),
        ({"preset": "standard", "target_modules": "q_proj,lm_head"}, "unknown LoRA target module"),
        ({"preset": "standard", "dropout": 1.5}, "dropout"),
    ],
)
def test_bad_settings_are_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        lora.resolve(**kwargs)  # type: ignore[arg-type]


def test_a_rank_above_the_serving_limit_is_bad_input() -> None:
    lora.check_serving_rank(16, 16)
    with pytest.raises(BadInput, match=r"LoRA rank 32 is above the serving limit max_lora_rank=16"):
        lora.check_serving_rank(32, 16)


def test_preflight_refuses_the_high_capacity_preset_under_a_rank_16_server() -> None:
    cfg = Config(preset="high_capacity", max_lora_rank=16, dataset_uri="s3://d/", base_uri="s3://b/")
    with pytest.raises(BadInput, match="rank 32 is above"):
        preflight(cfg, has_cuda=lambda: False)
    with pytest.raises(BadInput, match="rank 24 is above"):
        preflight(cfg.model_copy(update={"preset": "standard", "lora_r": 24}), has_cuda=lambda: False)


def test_qlora_without_cuda_is_bad_input_naming_cuda() -> None:
    cfg = Config(method="qlora", dataset_uri="s3://d/", base_uri="s3://b/")
    with pytest.raises(BadInput, match="QLoRA needs a CUDA GPU") as caught:
        preflight(cfg, has_cuda=lambda: False)
    assert "bitsandbytes" in str(caught.value) and "--method=lora" in str(caught.value)


def test_qlora_on_this_machine_fails_before_any_work() -> None:
    # A dataset and a base that do not exist, no services: the CUDA check comes first, so nothing
    # is fetched or logged.
    if lora.cuda_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BadInput, match="QLoRA needs a CUDA GPU"):
        run(Config(method="qlora", dataset_uri="s3://no-such-bucket/d/", base_uri="s3://no-such-bucket/b/"))


def test_qlora_with_cuda_passes_preflight() -> None:
    cfg = Config(method="qlora", dataset_uri="s3://d/", base_uri="s3://b/")
    assert preflight(cfg, has_cuda=lambda: True).preset == "standard"


def test_the_qlora_quantization_config_is_nf4_with_double_quantisation() -> None:
    import torch

    kwargs = lora.qlora_quantization_kwargs(torch.bfloat16)
    assert kwargs == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": torch.bfloat16,
    }
    config = lora.qlora_quantization_config()  # transformers' BitsAndBytesConfig: builds without a GPU
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_compute_dtype == torch.bfloat16


def test_an_unknown_method_is_refused_at_parse_time() -> None:
    from mlops.config import load_config

    with pytest.raises(BadInput, match="--method"):
        load_config(Config, ["--method=dora"], env={})
