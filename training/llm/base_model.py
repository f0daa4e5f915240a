"""The base model: build and pre-train the tiny local Mistral, save, fetch and load any Mistral base.

The local base is a standard `MistralForCausalLM` (config.json + model.safetensors, tokenizer in
HF format), only small: what vLLM loads for Mistral-7B it loads for this one. Pre-training is
plain next-token prediction over the training split's documents, packed into fixed-length
windows; enough that the base writes the corpus' language instead of noise.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops.errors import BadInput
from mlops.storage import COMMIT_MARKER, S3Store, S3Url

SUPPORTED_MODEL_TYPES = ("mistral",)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
OPTIONAL_TOKENIZER_FILES = ("chat_template.jinja", "special_tokens_map.json", "tokenizer.model")
WEIGHT_SUFFIXES = (".safetensors",)


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


# --- a base on disk or S3 -------------------------------------------------------------------------


def check_base_dir(folder: Path, *, need_weights: bool = True) -> dict[str, Any]:
    """The base's config.json after checking it is a Mistral model with a HF tokenizer (and weights)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BadInput(f"base model at {folder} has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"base model config.json is not JSON: {exc}") from exc
    if config.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise BadInput(
            f"base model is model_type {config.get('model_type')!r}; this pipeline fine-tunes {SUPPORTED_MODEL_TYPES}"
        )
    missing = [name for name in TOKENIZER_FILES if not (folder / name).is_file()]
    if missing:
        raise BadInput(f"base model at {folder} has no {', '.join(missing)} (a Hugging Face fast tokenizer)")
    if need_weights and not any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise BadInput(f"base model at {folder} has no *.safetensors weights")
    return dict(config)


def fetch_base(
    uri: str, workdir: Path, *, tokenizer_only: bool = False, store: S3Store | None = None
) -> Path:
    """A local folder with the base at `uri` (folder or s3:// prefix); checksums verified when committed."""
    if not uri.startswith("s3://"):
        folder = Path(uri)
        if not folder.is_dir():
            raise BadInput(f"base model {uri} is not a folder")
        check_base_dir(folder, need_weights=not tokenizer_only)
        return folder
    store = store or S3Store()
    prefix = S3Url.parse(uri.rstrip("/"))
    keys = store.list(prefix.join(""))
    names = sorted(k[len(prefix.key) :].lstrip("/") for k in keys if k.startswith(prefix.key + "/"))
    if "config.json" not in names:
        raise BadInput(f"no base model at {uri}: no config.json there")
    wanted_names = {"config.json", *TOKENIZER_FILES, *OPTIONAL_TOKENIZER_FILES}
    wanted = [
        n for n in names if n != COMMIT_MARKER and "/" not in n and (not tokenizer_only or n in wanted_names)
    ]
    target = workdir / "base"
    if COMMIT_MARKER in names:
        manifest = store.commit_manifest(prefix, what="base model")
        store.download_committed(prefix, target, [n for n in wanted if n in manifest], what="base model")
    else:  # a base placed by hand, without a manifest: only the per-object checksums apply
        for name in wanted:
            store.download_file(prefix.join(name), target / name)
    check_base_dir(target, need_weights=not tokenizer_only)
    return target


def load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.eos_token_id is None:
        raise BadInput(f"the tokenizer at {folder} has no EOS token: answers could not end")
    return tokenizer


def load_model(
    folder: Path, *, dtype: Any = None, quantization_config: Any = None, device_map: Any = None
) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
