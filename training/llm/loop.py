"""The LoRA training loop: AdamW with warm-up and cosine decay, per-epoch validation, early stopping.

Framework-free on purpose (no Trainer, no accelerate): a few dozen lines that are deterministic on
CPU, start instantly, and say exactly which batch of which epoch produced a NaN loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops.errors import BadInput
from training.llm import examples
from training.llm.base_model import check_finite


@dataclass
class FitResult:
    """What training produced: per-epoch history, the best epoch's LoRA weights, throughput."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    best_state: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    train_tokens: int = 0
    train_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def _schedule(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction)) if warmup_fraction > 0 else 0

    def factor(step_index: int) -> float:
        if step_index < warmup:
            return (step_index + 1) / warmup
        progress = (step_index - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def restore_state(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in state:
                parameter.copy_(state[name])


def fit(
    model: Any,
    train: list[examples.Example],
    val: list[examples.Example],
    *,
    pad_id: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    gradient_accumulation: int = 1,
    weight_decay: float = 0.0,
    warmup_fraction: float = 0.05,
    patience: int = 2,
    min_delta: float = 0.0,
    seed: int = 42,
    device: Any = None,
    log_every_steps: int = 10,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train the trainable (LoRA) weights; evaluate on `val` each epoch; keep the best; stop early."""
    import torch

    if not train:
        raise BadInput("no training examples fit max_seq_length")
    if not val:
        raise BadInput("the validation split has no example that fits max_seq_length")
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(math.ceil(len(train) / batch_size) / gradient_accumulation)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _schedule(epochs * steps_per_epoch, warmup_fraction)
    )
    generator = torch.Generator().manual_seed(seed)
    result = FitResult()
    bad_epochs = 0
    optimizer_steps = 0
    model.train()
    for epoch in range(1, epochs + 1):
        started = time.monotonic()
        order = torch.randperm(len(train), generator=generator).tolist()
        loss_sum, scored, tokens = 0.0, 0, 0
        for index, batch in enumerate(examples.batches(train, batch_size, pad_id, order), start=1):
            if device is not None:
                batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss
            value = check_finite("training loss", float(loss.item()), f"epoch {epoch}, batch {index}")
            (loss / gradient_accumulation).backward()
            answer_tokens = int((batch["labels"][:, 1:] != examples.IGNORE).sum())
            loss_sum += value * answer_tokens
            scored += answer_tokens
            tokens += int(batch["attention_mask"].sum())
            if index % gradient_accumulation == 0 or index * batch_size >= len(train):
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                optimizer_steps += 1
                if on_step and optimizer_steps % log_every_steps == 0:
                    on_step(optimizer_steps, value)
        train_seconds = time.monotonic() - started
        result.train_tokens += tokens
        result.train_seconds += train_seconds
        scores = examples.evaluate(model, val, pad_id, device=device)
        val_loss = check_finite("validation loss", scores["loss"], f"epoch {epoch}")
        record = {
            "epoch": float(epoch),
            "train_loss": loss_sum / max(scored, 1),
            "val_loss": val_loss,
            "val_perplexity": scores["perplexity"],
            "epoch_seconds": time.monotonic() - started,
            "train_tokens_per_s": tokens / max(train_seconds, 1e-9),
            "learning_rate": float(scheduler.get_last_lr()[0]),
            **{f"val_{k}": v for k, v in scores.items() if k.startswith("loss_")},
        }
        result.history.append(record)
        improved = val_loss < result.best_val_loss - min_delta
        if improved:
            result.best_epoch, result.best_val_loss = epoch, val_loss
            result.best_state = trainable_state(model)
            bad_epochs = 0
        else:
            bad_epochs += 1
        print(
            f"epoch {epoch}/{epochs}: train_loss={record['train_loss']:.4f} val_loss={val_loss:.4f} "
            f"val_ppl={record['val_perplexity']:.3f} ({record['epoch_seconds']:.1f}s, "
            f"{record['train_tokens_per_s']:.0f} tokens/s){'' if improved else ' no improvement'}",
            flush=True,
        )
        if on_epoch:
            on_epoch(record)
        if patience and bad_epochs >= patience and epoch < epochs:
            result.stopped_early = True
            print(
                f"early stopping: val_loss has not improved for {bad_epochs} epochs (best: epoch {result.best_epoch})",
                flush=True,
            )
            break
    restore_state(model, result.best_state)
    return result
