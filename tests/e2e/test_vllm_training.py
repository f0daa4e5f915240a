"""`vllm-training` end to end on the local stack with the local params: the first run (the session's,
`vllm_stack`, whose adapter and base the vLLM tests serve) builds the tiny base, fine-tunes and sets
`candidate`; an identical second run reuses the stored dataset and base, trains the same adapter
(same bytes) and registers nothing. Bad data fails fast, moves nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.registry import mlflow_registry
from tests.conftest import LocalStack, VllmStack, mlops_run
from tests.e2e.conftest import WorkflowRunner

pytestmark = pytest.mark.e2e


@pytest.fixture
def lora_model() -> str:
    return f"lora-e2e-{uuid.uuid4().hex[:6]}"


def _versions(client: MlflowClient, model: str) -> list[str]:
    return sorted(v.version for v in client.search_model_versions(f"name='{model}'"))


def test_train_twice_second_changes_nothing(local_stack: LocalStack, vllm_stack: VllmStack) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    client = MlflowClient(local_stack.mlflow_uri)
    lora_model = vllm_stack.model

    first = vllm_stack.training
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Succeeded" in first.stdout
    assert registry.alias(lora_model, "candidate") == "1"
    tags = registry.tags(lora_model, "1")
    eval_loss, perplexity = float(tags["eval_loss"]), float(tags["perplexity"])
    assert eval_loss <= 1.0 and perplexity <= 2.5  # the local bounds (params/local.yaml)
    assert tags["lora_rank"] == "16" and len(tags["target_modules"].split(",")) == 7  # the aggressive preset
    run_id = registry.run_id(lora_model, "1")
    assert run_id
    adapter = {a.path for a in client.list_artifacts(run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= adapter
    config = json.loads(Path(client.download_artifacts(run_id, "adapter/adapter_config.json")).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 16

    second = mlops_run(local_stack, "vllm-training", vllm_stack.training_state, lora_model_name=lora_model)
    print(second.stdout[-20000:])
    assert second.returncode == 0, second.stdout[-3000:]
    assert "memoized (rag-qa-v1-" in second.stdout  # data preparation: Argo's memoize, same key
    assert "base already built for this recipe" in second.stdout
    assert "identical to candidate v1" in second.stdout  # deterministic training: the same adapter bytes
    assert registry.alias(lora_model, "candidate") == "1"
    assert _versions(client, lora_model) == ["1"]
    assert [(e.alias, e.to_version) for e in registry.history(lora_model)] == [("candidate", "1")]


def test_a_dataset_with_missing_fields_fails_fast_and_moves_nothing(
    local_stack: LocalStack, run_workflow: WorkflowRunner, lora_model: str, tmp_path: Path
) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"context": "Some context.", "question": "Q?"}) + "\n")
    result = run_workflow("vllm-training", lora_model_name=lora_model, qa_data_source=str(path))
    assert result.returncode != 0
    assert "exit code 2" in result.stdout
    assert "line 1: missing field 'reference_answer'" in result.stdout
    assert "not retried" in result.stdout and "attempt 2/" not in result.stdout
    client = MlflowClient(local_stack.mlflow_uri)
    assert client.search_registered_models(filter_string=f"name='{lora_model}'") == []
