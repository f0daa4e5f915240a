"""Step: LoRA (or, on CUDA, QLoRA) fine-tuning of the base on the prepared RAG-QA splits.

The loss counts answer tokens only. After each epoch the adapter is scored on `val`; the best
epoch's adapter is kept, and training stops early after `early_stopping_patience` epochs
without improvement. The kept adapter is then scored once on `eval` (never used to choose
anything): that `eval_loss` and its `perplexity` are what the loss gate reads. Everything goes
to one MLflow run: per-epoch and per-step curves, `plots/learning_curves.png`, and `adapter/`
in PEFT format (adapter_config.json + adapter_model.safetensors) that vLLM loads.

Checked before any heavy work (bad input, exit 2): QLoRA without CUDA, a LoRA rank above the
serving `max_lora_rank`, an unknown preset or target module. A NaN/inf loss stops the run as
FAILED with exit 2. The same seed, data and threads give the same adapter.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.datasets import ragqa
from mlops.errors import BadInput
from mlops.models import hf_base
from mlops.models.names import LLM_MODEL
from mlops.step import StepResult
from mlops.storage import S3Store, sha256_file
from mlops.tracking import TAG_VALUE_LIMIT, configure_mlflow_client, mlflow_errors
from training.llm import base_model, examples, lora, model_card, plots
from training.llm.base_model import check_finite
from training.llm.loop import fit


class Config(StepConfig):
    dataset_uri: str = Field(description="prepared dataset (dataset-uri of prepare_data)")
    base_uri: str = Field(description="base model folder or s3:// prefix (base-uri of build_base)")
    method: Literal["lora", "qlora"] = Field(
        "lora", description="lora, or qlora (4-bit base through bitsandbytes; CUDA only)"
    )
    preset: Literal["minimal", "standard", "aggressive", "high_capacity"] = Field(
        "standard",
        description="LoRA preset: minimal r4 q,v; standard r8 q,k,v,o; aggressive r16 all 7; high_capacity r32 all 7",
    )
    lora_r: int = Field(0, ge=0, description="rank override (0 = the preset's)")
    lora_alpha: int = Field(
        0, ge=0, description="alpha override (0 = the preset's, or 2 x an overridden rank)"
    )
    lora_dropout: float = Field(-1.0, description="dropout override in [0, 1) (-1 = the preset's)")
    target_modules: str = Field(
        "", description="comma-separated projections override, e.g. q_proj,v_proj ('' = preset)"
    )
    max_lora_rank: int = Field(
        16, ge=1, description="the serving vLLM's --max-lora-rank: a larger rank is refused"
    )
    epochs: int = Field(3, ge=1, le=1000, description="maximum epochs")
    batch_size: int = Field(16, ge=1, description="examples per optimiser step (before accumulation)")
    gradient_accumulation: int = Field(1, ge=1, description="batches per optimiser step")
    learning_rate: float = Field(
        2e-4, gt=0.0, description="peak AdamW learning rate (linear warm-up, cosine decay)"
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay of the LoRA weights")
    warmup_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="share of steps spent warming up")
    max_seq_length: int = Field(
        512, ge=16, description="longer examples are left out (token_stats bounds how many)"
    )
    early_stopping_patience: int = Field(
        2, ge=0, description="epochs without val improvement before stopping (0 = never)"
    )
    min_delta: float = Field(
        0.0, ge=0.0, description="smallest val_loss decrease that counts as an improvement"
    )
    gradient_checkpointing: bool = Field(False, description="trade compute for memory (large bases on GPU)")
    seed: int = Field(42, description="seed of initialisation, dropout and shuffling")
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="torch CPU threads. 1 suits the tiny local model: on a busy 2-core machine two threads "
        "spin-wait on each other (measured 5-10x slower per step); raise it for a big base on a quiet CPU node",
    )
    log_every_steps: int = Field(10, ge=1, description="log train_loss every N optimiser steps")
    experiment: str = Field(LLM_MODEL, description="MLflow experiment of the fine-tuning run")


def preflight(cfg: Config, has_cuda: Callable[[], bool] = lora.cuda_available) -> lora.LoraSettings:
    """Every check that needs no data and no model: QLoRA's CUDA, the preset, the serving rank limit."""
    lora.require_cuda_for_qlora(cfg.method, has_cuda)
    settings = lora.resolve(cfg.preset, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules)
    lora.check_serving_rank(settings.r, cfg.max_lora_rank)
    return settings


def load_for_training(cfg: Config, settings: lora.LoraSettings, base_dir: Path) -> tuple[Any, Any, Any]:
    """(peft model, tokenizer, device): the base loaded for the method, LoRA attached."""
    import warnings

    import torch
    from peft import get_peft_model

    # peft asks transformers a deprecated question on every wrap; the answer is right, the warning noise.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    tokenizer = hf_base.load_tokenizer(base_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = hf_base.load_model(
            base_dir, quantization_config=lora.qlora_quantization_config(), device_map={"": 0}
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    else:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        model = hf_base.load_model(base_dir, dtype=dtype).to(device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    return get_peft_model(model, settings.peft_config()), tokenizer, device


def save_adapter(model: Any, folder: Path, base_uri: str) -> Path:
    """PEFT format: adapter_config.json + adapter_model.safetensors, naming the base by its URI."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = base_uri
    model.save_pretrained(str(folder), safe_serialization=True)
    missing = [n for n in ("adapter_config.json", "adapter_model.safetensors") if not (folder / n).is_file()]
    if missing:
        raise RuntimeError(f"peft did not write {', '.join(missing)}")
    return folder


def training_splits(
    dataset_uri: str, workdir: Path, store: S3Store | None = None
) -> dict[str, list[ragqa.QARecord]]:
    """train / val / eval of the prepared dataset; the probe split is neither fetched nor read."""
    folder = ragqa.fetch(dataset_uri, workdir, store, files=ragqa.TRAINING_FILES)
    return {s: ragqa.read_split(folder, s) for s in ragqa.TRAINING_SPLITS}


def run(cfg: Config) -> StepResult:
    settings = preflight(cfg)
    import mlflow
    import peft
    import torch
    import transformers

    base_model.seed_everything(cfg.seed, cfg.threads)
    configure_mlflow_client()
    with tempfile.TemporaryDirectory(prefix="llm-finetune-") as tmp:
        workdir = Path(tmp)
        splits = training_splits(cfg.dataset_uri, workdir)
        base_dir = hf_base.fetch_base(cfg.base_uri, workdir)
        model, tokenizer, device = load_for_training(cfg, settings, base_dir)
        encoded = {
            s: examples.encode_all(tokenizer, records, cfg.max_seq_length) for s, records in splits.items()
        }
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        dataset_sha = ragqa.dataset_sha256(cfg.dataset_uri)
        run_tags = {
            "mlops.step": "finetune",
            "dataset_uri": cfg.dataset_uri,
            "dataset_sha256": dataset_sha,
            "base_uri": cfg.base_uri,
            **model_card.base_facts(base_dir),
            "method": cfg.method,
            "lora_rank": str(settings.r),
            "lora_preset": settings.preset,
        }
        with mlflow_errors(f"starting a run in experiment {cfg.experiment}"):
            mlflow.set_experiment(cfg.experiment)
            active = mlflow.start_run(run_name=f"finetune-{settings.preset}-r{settings.r}", tags=run_tags)
        # Leaving `active` with an exception (NaN loss: BadInput) marks the run FAILED.
        with mlflow_errors("logging the fine-tuning run"), active as mlflow_run:
            run_id = mlflow_run.info.run_id
            print(f"MLflow run {run_id} in experiment {cfg.experiment}; device {device}", flush=True)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            params = {
                k: str(v)
                for k, v in {
                    **cfg.model_dump(),
                    **settings.as_params(),
                    "trainable_parameters": trainable,
                    "total_parameters": sum(p.numel() for p in model.parameters()),
                    **{f"{s}_examples": len(e[0]) for s, e in encoded.items()},
                    **{f"{s}_over_max_seq_length": e[1] for s, e in encoded.items()},
                    "device": str(device),
                    "torch_version": torch.__version__,
                    "transformers_version": transformers.__version__,
                    "peft_version": peft.__version__,
                }.items()
            }
            mlflow.log_params(params)

            def log_epoch(record: dict[str, float]) -> None:
                mlflow.log_metrics(
                    {k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"])
                )

            def log_step(step_index: int, loss: float) -> None:
                mlflow.log_metric("train_loss_step", loss, step=step_index)

            try:
                result = fit(
                    model,
                    encoded["train"][0],
                    encoded["val"][0],
                    pad_id=pad_id,
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    learning_rate=cfg.learning_rate,
                    gradient_accumulation=cfg.gradient_accumulation,
                    weight_decay=cfg.weight_decay,
                    warmup_fraction=cfg.warmup_fraction,
                    patience=cfg.early_stopping_patience,
                    min_delta=cfg.min_delta,
                    seed=cfg.seed,
                    device=device,
                    log_every_steps=cfg.log_every_steps,
                    on_epoch=log_epoch,
                    on_step=log_step,
                )
                if not encoded["eval"][0]:
                    raise BadInput("the eval split has no example that fits max_seq_length")
                scores = examples.evaluate(model, encoded["eval"][0], pad_id, device=device)
                eval_loss = check_finite("eval loss", scores["loss"], "the final evaluation")
            except BadInput as exc:
                mlflow.set_tag("failure_reason", str(exc)[:TAG_VALUE_LIMIT])
                raise
            final = {
                "eval_loss": eval_loss,
                "perplexity": scores["perplexity"],
                "eval_tokens": scores["tokens"],
                "best_epoch": float(result.best_epoch),
                "best_val_loss": result.best_val_loss,
                "epochs_run": float(len(result.history)),
                "stopped_early": float(result.stopped_early),
                "train_tokens": float(result.train_tokens),
                "train_seconds": result.train_seconds,
                "train_tokens_per_s": result.tokens_per_s,
                **{f"eval_{k}": v for k, v in scores.items() if k.startswith("loss_")},
            }
            mlflow.log_metrics(final)
            adapter = save_adapter(model, workdir / "adapter", cfg.base_uri)
            adapter_sha = sha256_file(adapter / "adapter_model.safetensors")
            mlflow.set_tag("adapter_sha256", adapter_sha)
            # PEFT wrote its unfilled template as README.md: the card replaces it (register adds the gate)
            card = model_card.render(
                params,
                final,
                {**run_tags, "adapter_sha256": adapter_sha},
                run_id=run_id,
                model=cfg.experiment,
            )
            (adapter / "README.md").write_text(card)
            figures = workdir / "plots"
            figures.mkdir()
            plots.learning_curves_png(
                result.history,
                figures / "learning_curves.png",
                f"{settings.preset} r{settings.r}: best epoch {result.best_epoch}, eval_loss {eval_loss:.3f}",
            )
            metrics_dir = workdir / "metrics"
            metrics_dir.mkdir()
            (metrics_dir / "history.json").write_text(json.dumps(result.history, indent=2) + "\n")
            (metrics_dir / "eval.json").write_text(json.dumps(final, indent=2, sort_keys=True) + "\n")
            mlflow.log_artifacts(str(adapter), "adapter")
            mlflow.log_artifacts(str(figures), "plots")
            mlflow.log_artifacts(str(metrics_dir), "metrics")
    return StepResult(
        outputs={
            "run-id": run_id,
            "eval-loss": repr(eval_loss),
            "perplexity": repr(scores["perplexity"]),
            "lora-rank": str(settings.r),
            "adapter-sha256": adapter_sha,
            "train-tokens-per-s": f"{result.tokens_per_s:.1f}",
        },
        summary=(
            f"{settings.preset} r{settings.r} ({trainable:,} trainable): eval_loss {eval_loss:.4f}, perplexity "
            f"{scores['perplexity']:.3f}, best epoch {result.best_epoch}/{len(result.history)}"
            f"{' (stopped early)' if result.stopped_early else ''}, {result.tokens_per_s:.0f} tokens/s, run {run_id}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
