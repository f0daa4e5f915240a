"""The LLM step modules, run as `python -m training.llm.<step>` against the local stack.

One module fixture runs the chain once, cheaply (40 synthetic documents, a 1-layer base, one
epoch of minimal LoRA, the gate set wide), so `candidate` exists and "unchanged" means
something. Then each bad input the issue names: exit 2 (never retried) with a message that says
what is wrong, no outputs, no version registered, `candidate` where it was.
"""

from __future__ import annotations

import importlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.registry import mlflow_registry
from mlops.storage import S3Store, S3Url
from tests.conftest import LocalStack
from tests.integration.steps import StepRun, assert_bad_input, run_module

pytestmark = pytest.mark.integration

TINY_BASE = [
    "--vocab-size=320",
    "--hidden-size=64",
    "--intermediate-size=128",
    "--num-layers=1",
    "--num-heads=2",
    "--num-kv-heads=1",
    "--max-position-embeddings=512",
    "--pretrain-epochs=1",
    "--pretrain-window=64",
]


def run_step(
    stack: LocalStack, step: str, *args: str, workdir: Path, env: dict[str, str] | None = None
) -> StepRun:
    """`python -m training.llm.<step> ARGS` with the stack's env and a fresh outputs folder."""
    return run_module(stack, f"training.llm.{step}", *args, workdir=workdir, env=env)


def versions(client: MlflowClient, model: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{model}'"))


@dataclass(frozen=True)
class Chain:
    model: str
    bucket: str
    dataset_uri: str
    data_run_id: str
    base_uri: str
    finetune_run_id: str
    candidate: str


@pytest.fixture(scope="module")
def chain(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """prepare_data -> build_base -> token_stats -> finetune -> register, as the workflow chains them.

    The good path runs in this process (each step's own `main`, outputs to a folder of its own): the
    subprocess path and its exit codes are what the bad-input tests below and the e2e tests exercise.
    """
    import torch

    workdir = tmp_path_factory.mktemp("llm-chain")
    suffix = uuid.uuid4().hex[:8]
    model, bucket = f"it-lora-{suffix}", f"it-llm-{suffix}"
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()

    def step(name: str, *args: str) -> dict[str, str]:
        outputs_dir = workdir / f"outputs-{name}"
        saved = os.environ.get("MLOPS_OUTPUTS_DIR")
        os.environ["MLOPS_OUTPUTS_DIR"] = str(outputs_dir)
        try:
            code = importlib.import_module(f"training.llm.{name}").main(list(args))
        finally:  # leave the process as found: steps set torch's threads and deterministic kernels
            if saved is None:
                os.environ.pop("MLOPS_OUTPUTS_DIR", None)
            else:
                os.environ["MLOPS_OUTPUTS_DIR"] = saved
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
        assert code == 0, f"training.llm.{name} {' '.join(args)} -> {code}"
        return {p.name: p.read_text() for p in outputs_dir.iterdir()}

    data = step(
        "prepare_data",
        "--synthetic-documents=40",
        f"--dataset-prefix=s3://{bucket}/datasets",
        f"--experiment={model}",
    )
    base = step(
        "build_base",
        f"--dataset-uri={data['dataset-uri']}",
        f"--base-prefix=s3://{bucket}/base",
        f"--experiment={model}",
        *TINY_BASE,
    )
    step(
        "token_stats",
        f"--dataset-uri={data['dataset-uri']}",
        f"--base-uri={base['base-uri']}",
        f"--data-run-id={data['data-run-id']}",
    )
    tuned = step(
        "finetune",
        f"--dataset-uri={data['dataset-uri']}",
        f"--base-uri={base['base-uri']}",
        "--preset=minimal",
        "--epochs=1",
        "--learning-rate=1e-2",
        f"--experiment={model}",
    )
    # One epoch on a 1-layer base is far from the real bounds; the gate itself is tested elsewhere.
    gate = step(
        "register",
        f"--run-id={tuned['run-id']}",
        f"--model-name={model}",
        "--max-eval-loss=50",
        "--max-perplexity=1e20",
    )
    assert gate["verdict"] == "pass" and gate["registered"] == "true", gate
    yield Chain(
        model,
        bucket,
        data["dataset-uri"],
        data["data-run-id"],
        base["base-uri"],
        tuned["run-id"],
        gate["version"],
    )


def test_the_chain_leaves_candidate_a_peft_adapter_and_a_data_card(
    local_stack: LocalStack, chain: Chain
) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    client = MlflowClient(local_stack.mlflow_uri)
    assert registry.alias(chain.model, "candidate") == chain.candidate == "1"
    tags = registry.tags(chain.model, chain.candidate)
    assert tags["lora_rank"] == "4" and tags["target_modules"] == "q_proj,v_proj"
    assert tags["dataset_uri"] == chain.dataset_uri and tags["base_uri"] == chain.base_uri
    assert len(tags["adapter_sha256"]) == 64 and tags["gate.loss"] == "pass"
    assert registry.source(chain.model, "1").endswith("/adapter")
    adapter = {a.path for a in client.list_artifacts(chain.finetune_run_id, "adapter")}
    assert {
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/README.md",
    } <= adapter
    finetune = client.get_run(chain.finetune_run_id)
    assert {"eval_loss", "perplexity", "val_loss", "train_tokens_per_s"} <= set(finetune.data.metrics)
    assert [m.step for m in client.get_metric_history(chain.finetune_run_id, "val_loss")] == [1]
    card = {a.path for a in client.list_artifacts(chain.data_run_id, "data_card")}
    assert {
        "data_card/data_card.json",
        "data_card/data_card.md",
        "data_card/length_histogram.png",
        "data_card/token_stats.json",
        "data_card/token_length_histogram.png",
    } <= card
    store = S3Store(local_stack.s3_endpoint)
    assert store.is_committed(S3Url.parse(chain.dataset_uri.rstrip("/")))
    assert store.is_committed(S3Url.parse(chain.base_uri.rstrip("/")))
    config = json.loads(store.get_bytes(S3Url.parse(chain.base_uri.rstrip("/")).join("config.json")))
    assert config["architectures"] == ["MistralForCausalLM"]


def test_the_model_card_replaces_peft_template_and_describes_the_version(
    local_stack: LocalStack, chain: Chain, tmp_path: Path
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    readme = Path(client.download_artifacts(chain.finetune_run_id, "adapter/README.md", str(tmp_path)))
    card = readme.read_text()
    description = client.get_model_version(chain.model, chain.candidate).description
    assert card == description  # one card, in the artifact and on the version
    assert "[More Information Needed]" not in card and "not recorded" not in card
    tags = client.get_run(chain.finetune_run_id).data.tags
    assert len(tags["base_weights_sha256"]) == 64 and tags["base_run_id"]
    for fact in (
        f"# {chain.model} v{chain.candidate}: LoRA adapter",
        chain.base_uri,
        tags["base_weights_sha256"],
        tags["base_run_id"],
        chain.dataset_uri,
        tags["dataset_sha256"],
        "| LoRA preset | minimal |",
        "| rank r / alpha / dropout | 4 / 8 / 0.05 |",
        "learning rate (AdamW, warm-up share, cosine) | 0.01 (0.05) |",
        "Verdict: **pass**",
        f"registered as {chain.model} v{chain.candidate}",
        "| eval_loss |",
    ):
        assert fact in card, fact


# --- bad input: exit 2, a clear message, nothing registered ------------------------------------------


def test_prepare_data_names_the_lines_of_missing_fields(
    local_stack: LocalStack, chain: Chain, tmp_path: Path
) -> None:
    path = tmp_path / "qa.jsonl"
    good = {
        "context": "C.",
        "question": "Q?",
        "reference_answer": "A.",
        "metadata": {"question_type": "factual"},
    }
    path.write_text(
        "\n".join(json.dumps(r) for r in [good, {"context": "C."}, {**good, "metadata": {}}]) + "\n"
    )
    prefix = f"s3://{chain.bucket}/bad-{uuid.uuid4().hex[:6]}"
    run = run_step(
        local_stack, "prepare_data", f"--source={path}", f"--dataset-prefix={prefix}", workdir=tmp_path
    )
    assert_bad_input(
        run, "line 2: missing field 'question'", "line 3: missing field 'metadata.question_type'"
    )
    assert S3Store(local_stack.s3_endpoint).list(S3Url.parse(prefix)) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--method=qlora"], ["QLoRA needs a CUDA GPU", "bitsandbytes"], id="qlora-on-cpu"),
        pytest.param(
            ["--preset=high_capacity", "--max-lora-rank=16"],
            ["LoRA rank 32 is above the serving limit"],
            id="rank",
        ),
    ],
)
def test_finetune_refuses_before_any_work(
    local_stack: LocalStack, chain: Chain, tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    experiment = f"{chain.model}-refused"
    run = run_step(
        local_stack,
        "finetune",
        f"--dataset-uri={chain.dataset_uri}",
        f"--base-uri={chain.base_uri}",
        f"--experiment={experiment}",
        *args,
        workdir=tmp_path,
    )
    assert_bad_input(run, *expected)
    assert client.get_experiment_by_name(experiment) is None  # not even an MLflow run was started


def test_finetune_nan_loss_fails_the_run_and_registers_nothing(
    local_stack: LocalStack, chain: Chain, tmp_path: Path
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    experiment = f"{chain.model}-nan"
    # An absurd learning rate: the first update blows the LoRA weights up, the next loss is not finite.
    run = run_step(
        local_stack,
        "finetune",
        f"--dataset-uri={chain.dataset_uri}",
        f"--base-uri={chain.base_uri}",
        "--preset=minimal",
        "--epochs=1",
        "--learning-rate=1e30",
        "--warmup-fraction=0",
        f"--experiment={experiment}",
        workdir=tmp_path,
    )
    assert_bad_input(run, "training loss became", "training diverged")
    (failed,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert failed.info.status == "FAILED" and "became" in failed.data.tags["failure_reason"]
    assert versions(client, chain.model) == [chain.candidate]


def test_register_refuses_a_rank_above_the_serving_limit(
    local_stack: LocalStack, chain: Chain, tmp_path: Path
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    run = run_step(
        local_stack,
        "register",
        f"--run-id={chain.finetune_run_id}",
        f"--model-name={chain.model}",
        "--max-lora-rank=2",
        "--max-eval-loss=50",
        "--max-perplexity=1e20",
        workdir=tmp_path,
    )
    assert_bad_input(run, "LoRA rank 4 is above the serving limit max_lora_rank=2")
    assert versions(client, chain.model) == [chain.candidate]
    assert mlflow_registry(local_stack.mlflow_uri).alias(chain.model, "candidate") == chain.candidate


def test_register_refuses_a_nan_loss(local_stack: LocalStack, chain: Chain, tmp_path: Path) -> None:
    """A run whose adapter is real but whose logged eval_loss is NaN: bad input, never compared."""
    client = MlflowClient(local_stack.mlflow_uri)
    adapter = Path(client.download_artifacts(chain.finetune_run_id, "adapter", str(tmp_path)))
    experiment_id = client.get_run(chain.finetune_run_id).info.experiment_id
    nan_run = client.create_run(experiment_id, run_name="nan-metrics")
    client.log_artifacts(nan_run.info.run_id, str(adapter), "adapter")
    client.log_metric(nan_run.info.run_id, "eval_loss", float("nan"))
    client.log_metric(nan_run.info.run_id, "perplexity", float("nan"))
    client.set_terminated(nan_run.info.run_id)
    run = run_step(
        local_stack,
        "register",
        f"--run-id={nan_run.info.run_id}",
        f"--model-name={chain.model}",
        workdir=tmp_path,
    )
    assert_bad_input(run, "eval_loss is nan: not a finite number")
    assert versions(client, chain.model) == [chain.candidate]


def test_register_rejects_above_the_bounds_and_moves_nothing(
    local_stack: LocalStack, chain: Chain, tmp_path: Path
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    run = run_step(
        local_stack,
        "register",
        f"--run-id={chain.finetune_run_id}",
        f"--model-name={chain.model}",
        "--max-eval-loss=0.01",
        "--max-perplexity=1.01",
        workdir=tmp_path,
    )
    assert run.returncode == 0, run.explain()
    assert (
        run.outputs["verdict"] == "fail"
        and "FAILED" in run.outputs["reason"]
        and run.outputs["version"] == ""
    )
    assert versions(client, chain.model) == [chain.candidate]
    assert client.get_run(chain.finetune_run_id).data.tags["gate.loss"] == "fail"
