"""The tiny local base: build and pre-train a small Mistral (`mlops.models.hf_base` fetches and loads it).

The local base is a standard `MistralForCausalLM` (config.json + model.safetensors, tokenizer in
HF format), only small: what vLLM loads for Mistral-7B it loads for this one. Pre-training is
plain next-token prediction over the training split's documents, packed into fixed-length
windows; enough that the base writes the corpus' language instead of noise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mlops.errors import BadInput


@dataclass(frozen=True)
class TinyMistralSpec:
    """Shape of the local base: Mistral's architecture (GQA, RoPE, SwiGLU, RMSNorm) at toy size."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024

    def check(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise BadInput(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise BadInput("num_attention_heads must be a multiple of num_key_value_heads")
        head_dim = self.hidden_size // self.num_attention_heads
        if head_dim not in (32, 64, 80, 96, 112, 128, 256):  # vLLM's CPU attention kernels
            raise BadInput(
                f"head size {head_dim} is not one vLLM's CPU attention supports (32, 64, 80, 96, 112, 128, 256)"
            )

    def config(self, bos_token_id: int, eos_token_id: int) -> Any:
        from transformers import MistralConfig

        self.check()
        return MistralConfig(
            **asdict(self),
            head_dim=self.hidden_size // self.num_attention_heads,
            sliding_window=None,
            tie_word_embeddings=False,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            architectures=["MistralForCausalLM"],
        )


def seed_everything(seed: int, threads: int) -> None:
    """Same seed, same threads, same numbers: seeded generators and deterministic kernels on CPU."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def pack_windows(documents: list[list[int]], window: int, eos_id: int) -> list[list[int]]:
    """Concatenate token lists (each ended by EOS) and cut into windows of `window` tokens; the tail is dropped."""
    stream: list[int] = []
    for ids in documents:
        stream.extend([*ids, eos_id])
    return [stream[i : i + window] for i in range(0, len(stream) - window + 1, window)]


def check_finite(name: str, value: float, where: str) -> float:
    if not math.isfinite(value):
        raise BadInput(f"{name} became {value} at {where}: training diverged (lower the learning rate)")
    return value


def pretrain(
    model: Any,
    windows: list[list[int]],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Next-token prediction over packed windows with AdamW and cosine decay; per-epoch mean loss."""
    import torch

    if not windows:
        raise BadInput("no pre-training windows: the training split is shorter than one window")
    data = torch.tensor(windows, dtype=torch.long)
    steps = epochs * math.ceil(len(data) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(seed)
    history = []
    model.train()
    for epoch in range(1, epochs + 1):
        started = time.monotonic()
        order = torch.randperm(len(data), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(data), batch_size):
            batch = data[order[start : start + batch_size]]
            loss = model(input_ids=batch, labels=batch).loss
            value = check_finite("pre-training loss", float(loss.item()), f"epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += value * len(batch)
            count += len(batch)
        record = {
            "epoch": float(epoch),
            "pretrain_loss": total / count,
            "epoch_seconds": time.monotonic() - started,
            "tokens_per_s": count * data.shape[1] / max(time.monotonic() - started, 1e-9),
        }
        history.append(record)
        print(
            f"pre-train epoch {epoch}/{epochs}: loss={record['pretrain_loss']:.4f} "
            f"({record['epoch_seconds']:.1f}s, {record['tokens_per_s']:.0f} tokens/s)",
            flush=True,
        )
        if on_epoch:
            on_epoch(record)
    model.eval()
    return history
