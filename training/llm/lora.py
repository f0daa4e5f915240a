"""LoRA settings: named presets, overrides, the serving rank limit, and QLoRA's 4-bit config.

Presets (alpha = 2 r, dropout 0.05 unless overridden):
  minimal        r 4 on q, v
  standard       r 8 on q, k, v, o
  aggressive     r 16 on all seven projections (q, k, v, o, gate, up, down)
  high_capacity  r 32 on all seven projections

A rank above the serving `max_lora_rank` is bad input before any work: vLLM would refuse to
load the adapter (`--max-lora-rank`), so training it would be wasted. QLoRA loads the base in
4-bit NF4 through bitsandbytes, which needs CUDA: without a GPU it is bad input at once,
naming CUDA, rather than a crash an hour into a job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops.errors import BadInput

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_PROJECTIONS = (*ATTENTION, "gate_proj", "up_proj", "down_proj")
METHODS = ("lora", "qlora")


@dataclass(frozen=True)
class LoraSettings:
    """What peft's LoraConfig needs, resolved from a preset and overrides."""

    preset: str
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]

    def peft_config(self) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            bias="none",
            task_type=TaskType.CAUSAL_LM,
        )

    def as_params(self) -> dict[str, str]:
        return {
            "lora_preset": self.preset,
            "lora_r": str(self.r),
            "lora_alpha": str(self.alpha),
            "lora_dropout": str(self.dropout),
            "lora_target_modules": ",".join(self.target_modules),
        }


PRESETS: dict[str, LoraSettings] = {
    "minimal": LoraSettings("minimal", 4, 8, 0.05, ("q_proj", "v_proj")),
    "standard": LoraSettings("standard", 8, 16, 0.05, ATTENTION),
    "aggressive": LoraSettings("aggressive", 16, 32, 0.05, ALL_PROJECTIONS),
    "high_capacity": LoraSettings("high_capacity", 32, 64, 0.05, ALL_PROJECTIONS),
}


def resolve(
    preset: str, r: int = 0, alpha: int = 0, dropout: float = -1.0, target_modules: str = ""
) -> LoraSettings:
    """A preset with overrides applied (0, -1 or '' keep the preset's value; alpha follows an overridden r)."""
    if preset not in PRESETS:
        raise BadInput(f"unknown LoRA preset {preset!r}; known: {', '.join(PRESETS)}")
    base = PRESETS[preset]
    rank = r or base.r
    modules = tuple(m.strip() for m in target_modules.split(",") if m.strip()) or base.target_modules
    unknown = sorted(set(modules) - set(ALL_PROJECTIONS))
    if unknown:
        raise BadInput(
            f"unknown LoRA target module(s) {unknown}; a Mistral layer has {', '.join(ALL_PROJECTIONS)}"
        )
    if rank < 1:
        raise BadInput(f"LoRA rank must be >= 1, got {rank}")
    if dropout != -1.0 and not 0.0 <= dropout < 1.0:
        raise BadInput(f"LoRA dropout {dropout} must be in [0, 1)")
    return LoraSettings(
        preset=preset,
        r=rank,
        alpha=alpha or (2 * rank if r else base.alpha),
        dropout=base.dropout if dropout == -1.0 else dropout,
        target_modules=modules,
    )


def check_serving_rank(rank: int, max_lora_rank: int) -> None:
    """BadInput when vLLM (started with `--max-lora-rank`) could not load an adapter of this rank."""
    if rank > max_lora_rank:
        raise BadInput(
            f"LoRA rank {rank} is above the serving limit max_lora_rank={max_lora_rank}: vLLM would refuse "
            f"to load this adapter. Use a smaller --lora-r / preset, or raise the servers' --max-lora-rank "
            f"and --max-lora-rank here together"
        )


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def require_cuda_for_qlora(method: str, has_cuda: Callable[[], bool] = cuda_available) -> None:
    """QLoRA needs a CUDA GPU (bitsandbytes 4-bit kernels); say so before anything heavy happens."""
    if method not in METHODS:
        raise BadInput(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if method == "qlora" and not has_cuda():
        raise BadInput(
            "QLoRA needs a CUDA GPU: bitsandbytes' 4-bit NF4 kernels run on CUDA only, and this machine has "
            "none (torch.cuda.is_available() is False). Use --method=lora on CPU, or run on a GPU node"
        )


def qlora_quantization_kwargs(compute_dtype: Any) -> dict[str, Any]:
    """BitsAndBytesConfig arguments of QLoRA (Dettmers et al. 2023): NF4, double quantisation."""
    return {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": compute_dtype,
    }


def qlora_quantization_config() -> Any:
    """transformers' BitsAndBytesConfig for QLoRA (building it needs no GPU; loading with it does)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(**qlora_quantization_kwargs(torch.bfloat16))
