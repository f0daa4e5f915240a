"""Step: the base model to fine-tune, stored on S3 (and, when built here, in MLflow).

`--source=local-tiny` builds the local profile's base: a byte-level BPE tokenizer trained on the
prepared training split, a small `MistralForCausalLM`, and a short pre-training on the training
split's documents, each followed by its questions and answers in plain `Question: / Answer:`
form (never the `[INST]` format: teaching that is the fine-tune's job, and nothing from val or
eval is seen). The result goes to `<prefix>/<name>/<recipe>/`, where the recipe is a hash of the
dataset and every setting: an identical request reuses the stored base instead of rebuilding.

Any other source is an existing Mistral base (cluster profile: Mistral-7B) in a folder or under an
s3:// prefix; it is checked (model_type, tokenizer, safetensors) and passed on, not copied.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.datasets import ragqa
from mlops.datasets.ragqa import QARecord
from mlops.errors import BadInput
from mlops.models import hf_base
from mlops.models.names import LLM_MODEL
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url, sha256_file
from mlops.tracking import configure_mlflow_client, mlflow_errors
from training.llm import base_model
from training.llm.tokenizer import to_transformers, train_bpe

LOCAL_TINY = "local-tiny"
BUILD_INFO = "build.json"


class Config(StepConfig):
    source: str = Field(
        LOCAL_TINY,
        description="'local-tiny' (build and pre-train here) or an existing Mistral base: a folder or s3:// prefix",
    )
    dataset_uri: str = Field(
        "", description="prepared dataset (dataset-uri of prepare_data); needed for local-tiny"
    )
    base_prefix: str = Field(
        "s3://mlops-models/base", description="S3 prefix of built bases: <prefix>/<name>/<recipe>/"
    )
    base_name: str = Field(
        "skyloom-tiny-mistral", description="name of the built base (a folder under --base-prefix)"
    )
    vocab_size: int = Field(512, ge=300, le=65536, description="BPE vocabulary size of the trained tokenizer")
    hidden_size: int = Field(128, ge=32, description="hidden size of the tiny Mistral")
    intermediate_size: int = Field(384, ge=32, description="MLP size of the tiny Mistral")
    num_layers: int = Field(2, ge=1, le=64, description="decoder layers")
    num_heads: int = Field(
        4, ge=1, description="attention heads (head size = hidden / heads: 32, 64, ... for vLLM CPU)"
    )
    num_kv_heads: int = Field(2, ge=1, description="key/value heads (grouped-query attention, as Mistral)")
    max_position_embeddings: int = Field(
        1024, ge=64, description="longest sequence the base (and vLLM) accepts"
    )
    pretrain_epochs: int = Field(8, ge=1, le=1000, description="pre-training passes over the training split")
    pretrain_window: int = Field(
        128, ge=16, description="tokens per pre-training window (documents are packed)"
    )
    batch_size: int = Field(16, ge=1, description="pre-training windows per step")
    learning_rate: float = Field(3e-3, gt=0.0, description="peak AdamW learning rate (one-cycle)")
    seed: int = Field(42, description="seed of initialisation and shuffling")
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="torch CPU threads. 1 suits the tiny local model: on a busy 2-core machine two threads "
        "spin-wait on each other (measured 5-10x slower per step); raise it for a big base on a quiet CPU node",
    )
    experiment: str = Field(LLM_MODEL, description="MLflow experiment of the build run")

    @property
    def spec(self) -> base_model.TinyMistralSpec:
        return base_model.TinyMistralSpec(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=self.max_position_embeddings,
        )


def recipe_key(cfg: Config, dataset_sha256: str, versions: dict[str, str]) -> str:
    """Hash of everything that decides the built base: data, shape, training settings, library versions."""
    recipe = {
        "dataset_sha256": dataset_sha256,
        "settings": cfg.model_dump(
            exclude={"source", "dataset_uri", "base_prefix", "base_name", "experiment", "threads"}
        ),
        "versions": versions,
        "threads": cfg.threads,  # float summation order depends on it
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def pretraining_texts(records: list[QARecord]) -> list[str]:
    """Each training document once, followed by its questions and answers in plain form."""
    by_context: dict[str, list[QARecord]] = defaultdict(list)
    for record in records:
        by_context[record.context].append(record)
    return [
        context + "".join(f"\nQuestion: {r.question}\nAnswer: {r.reference_answer}" for r in rows)
        for context, rows in sorted(by_context.items())
    ]


def build_tiny(cfg: Config, train: list[QARecord], target: Path, on_epoch: Any = None) -> dict[str, Any]:
    """Train the tokenizer, build and pre-train the model, save both to `target`; returns build facts."""
    from transformers import MistralForCausalLM

    if not train:
        raise BadInput("the training split is empty: nothing to train a tokenizer or pre-train on")
    base_model.seed_everything(cfg.seed, cfg.threads)
    texts = pretraining_texts(train)
    tokenizer = to_transformers(
        train_bpe([*texts, *(r.prompt_training for r in train)], cfg.vocab_size), cfg.max_position_embeddings
    )
    model = MistralForCausalLM(cfg.spec.config(tokenizer.bos_token_id, tokenizer.eos_token_id))
    documents = [tokenizer(text, add_special_tokens=True)["input_ids"] for text in texts]
    windows = base_model.pack_windows(documents, cfg.pretrain_window, tokenizer.eos_token_id)
    history = base_model.pretrain(
        model,
        windows,
        epochs=cfg.pretrain_epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        on_epoch=on_epoch,
    )
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))  # config.json, generation_config.json, model.safetensors
    tokenizer.save_pretrained(str(target))
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "pretrain_documents": len(texts),
        "pretrain_windows": len(windows),
        "pretrain_tokens_per_epoch": len(windows) * cfg.pretrain_window,
        "history": history,
    }


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def _existing_base(cfg: Config, store: S3Store | None) -> StepResult:
    with tempfile.TemporaryDirectory(prefix="llm-base-") as tmp:
        folder = hf_base.fetch_base(cfg.source, Path(tmp), tokenizer_only=True, store=store)
        config = json.loads((folder / "config.json").read_text())
    uri = cfg.source if cfg.source.startswith("s3://") else str(Path(cfg.source).resolve())
    uri = uri.rstrip("/") + "/"
    return StepResult(
        outputs={"base-uri": uri, "base-run-id": "", "reused": "true"},
        summary=f"existing {config.get('model_type')} base at {uri} (hidden {config.get('hidden_size')}, {config.get('num_hidden_layers')} layers)",
    )


def run(cfg: Config, store: S3Store | None = None) -> StepResult:
    if cfg.source != LOCAL_TINY:
        return _existing_base(cfg, store)
    if not cfg.dataset_uri:
        raise BadInput(
            "--dataset-uri is required to build the local-tiny base (the dataset-uri output of prepare_data)"
        )
    cfg.spec.check()
    store = store or S3Store()
    with tempfile.TemporaryDirectory(prefix="llm-base-") as tmp:
        workdir = Path(tmp)
        folder = ragqa.fetch(cfg.dataset_uri, workdir, store, files=(ragqa.split_file("train"),))
        dataset_sha = ragqa.dataset_sha256(cfg.dataset_uri) or sha256_file(folder / ragqa.split_file("train"))
        key = recipe_key(cfg, dataset_sha, _versions())
        target = S3Url.parse(cfg.base_prefix.rstrip("/")).join(cfg.base_name, key)
        uri = f"{target}/"
        if store.is_committed(target):
            info = json.loads(store.get_bytes(target.join(BUILD_INFO)))
            return StepResult(
                outputs={"base-uri": uri, "base-run-id": str(info.get("run_id", "")), "reused": "true"},
                summary=f"base already built for this recipe: {uri} (run {info.get('run_id')})",
            )
        train = ragqa.read_split(folder, "train")
        base_dir = workdir / "base"
        run_id, facts = _build_and_log(cfg, train, base_dir, uri, dataset_sha)
        (base_dir / BUILD_INFO).write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "dataset_uri": cfg.dataset_uri,
                    "recipe": key,
                    **{k: v for k, v in facts.items() if k != "history"},
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
        store.ensure_bucket(target.bucket)
        manifest = store.publish_directory(base_dir, target)
    size_mb = facts["weights_bytes"] / 1e6
    return StepResult(
        outputs={"base-uri": uri, "base-run-id": run_id, "reused": "false"},
        summary=(
            f"built {facts['parameters']:,}-parameter Mistral ({size_mb:.1f} MB safetensors, vocab {facts['vocab_size']}), "
            f"pre-train loss {facts['history'][-1]['pretrain_loss']:.3f} -> {uri} ({len(manifest)} files)"
        ),
    )


def _build_and_log(
    cfg: Config, train: list[QARecord], base_dir: Path, uri: str, dataset_sha: str
) -> tuple[str, dict[str, Any]]:
    import mlflow

    configure_mlflow_client()
    with mlflow_errors(f"starting a run in experiment {cfg.experiment}"):
        mlflow.set_experiment(cfg.experiment)
        active = mlflow.start_run(
            run_name=f"build-base-{cfg.base_name}",
            tags={
                "mlops.step": "build_base",
                "base_uri": uri,
                "dataset_uri": cfg.dataset_uri,
                "dataset_sha256": dataset_sha,
            },
        )
    # Leaving `active` with an exception marks the run FAILED (a NaN pre-training loss, say).
    with mlflow_errors("logging the base build"), active as mlflow_run:
        mlflow.log_params({k: str(v) for k, v in cfg.model_dump(exclude={"source"}).items()})

        def log_epoch(record: dict[str, float]) -> None:
            mlflow.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))

        facts = build_tiny(cfg, train, base_dir, on_epoch=log_epoch)
        facts["weights_bytes"] = sum(p.stat().st_size for p in base_dir.glob("*.safetensors"))
        mlflow.log_metrics(
            {
                "parameters": float(facts["parameters"]),
                "weights_bytes": float(facts["weights_bytes"]),
                "pretrain_tokens_per_epoch": float(facts["pretrain_tokens_per_epoch"]),
                "final_pretrain_loss": facts["history"][-1]["pretrain_loss"],
            }
        )
        mlflow.log_artifacts(str(base_dir), "base")
        return str(mlflow_run.info.run_id), facts


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
