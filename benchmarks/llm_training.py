"""`vllm-training` through the local executor on the running local stack: wall time and training speed.

Runs the workflow twice with the local params, a fresh model name and a fresh base prefix (so run 1
really builds and pre-trains the tiny base): run 1 builds the base, fine-tunes and sets
`candidate`; run 2 is identical, reuses the stored dataset and base, trains the same adapter and
registers nothing. Training speed (tokens/s, padding excluded) and the base's size come from the
runs' own MLflow metrics, the numbers the steps log.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _outputs(result: Any) -> dict[str, dict[str, str]]:
    return {node.name: dict(node.outputs) for node in result.root.children}


def bench_llm_training(params_file: Path | None = None, runs: int = 2) -> dict[str, Any]:
    """Run vllm-training `runs` times; per-run phase and step seconds, plus run 1's training figures."""
    from mlflow import MlflowClient
    from rich.console import Console

    from mlops.argo.executor import run_workflow
    from mlops.argo.parameters import load_params_file
    from mlops.argo.process import LocalEnvironment

    workflow = REPO_ROOT / "workflows" / "vllm-training.yaml"
    params_file = params_file or REPO_ROOT / "workflows" / "params" / "local.yaml"
    suffix = uuid.uuid4().hex[:6]
    overrides = {
        "lora-model-name": f"bench-lora-{suffix}",
        "base-prefix": f"s3://mlops-models/bench-base-{suffix}",
    }
    for key, env in (("mlflow-tracking-uri", "MLFLOW_TRACKING_URI"), ("s3-endpoint-url", "AWS_ENDPOINT_URL")):
        if os.environ.get(env):
            overrides[key] = os.environ[env]
    file_params = load_params_file(params_file)
    load_before = os.getloadavg()[0]  # other work on a shared machine shows up in the wall times
    records, outputs = [], []
    for index in range(runs):
        result = run_workflow(
            workflow,
            overrides,
            workflows_dir=workflow.parent,
            environment=LocalEnvironment(),
            console=Console(stderr=True),
            file_params=file_params,
            quiet=True,
        )
        records.append(
            {
                "run": index + 1,
                "workflow": result.name,
                "phase": result.phase,
                "seconds": round(result.duration, 1),
                "steps": {
                    node.name: {"phase": node.phase, "seconds": round(node.duration or 0.0, 1)}
                    for node in result.root.children
                },
            }
        )
        if not result.succeeded:
            raise RuntimeError(f"workflow {result.name} {result.phase}: {result.message}")
        outputs.append(_outputs(result))
    client = MlflowClient(overrides.get("mlflow-tracking-uri"))
    tuned = client.get_run(outputs[0]["finetune"]["run-id"]).data
    built = client.get_run(outputs[0]["build-base"]["base-run-id"]).data
    pretrain = [
        m.value for m in client.get_metric_history(outputs[0]["build-base"]["base-run-id"], "tokens_per_s")
    ]
    return {
        "benchmark": "llm_training",
        "workflow": "vllm-training",
        "params": str(params_file.relative_to(REPO_ROOT)),
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "settings": {
            k: file_params[k]
            for k in ("synthetic-documents", "pretrain-epochs", "lora-preset", "lora-epochs")
            if k in file_params
        },
        "base": {
            "parameters": int(built.metrics["parameters"]),
            "weights_mb": round(built.metrics["weights_bytes"] / 1e6, 2),
            "hidden_size": int(built.params["hidden_size"]),
            "layers": int(built.params["num_layers"]),
            "vocab_size": int(built.params["vocab_size"]),
            "pretrain_tokens_per_s": round(max(pretrain), 0) if pretrain else None,
            "final_pretrain_loss": round(built.metrics["final_pretrain_loss"], 4),
        },
        "finetune": {
            "preset": tuned.params["lora_preset"],
            "lora_r": int(tuned.params["lora_r"]),
            "trainable_parameters": int(tuned.params["trainable_parameters"]),
            "train_tokens_per_s": round(tuned.metrics["train_tokens_per_s"], 0),
            "train_tokens": int(tuned.metrics["train_tokens"]),
            "train_seconds": round(tuned.metrics["train_seconds"], 1),
            "epochs_run": int(tuned.metrics["epochs_run"]),
            "best_epoch": int(tuned.metrics["best_epoch"]),
            "best_val_loss": round(tuned.metrics["best_val_loss"], 4),
            "eval_loss": round(tuned.metrics["eval_loss"], 4),
            "perplexity": round(tuned.metrics["perplexity"], 3),
        },
        "verdicts": [o["register"].get("verdict") for o in outputs],
        "runs": records,
    }
