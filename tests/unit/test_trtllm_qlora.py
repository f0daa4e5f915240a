"""The GPU path's QLoRA half (issue 10): fine-tuning with --method=qlora refuses on a CUDA-less
machine through the step's command line (exit 2, CUDA named, nothing fetched), and the workflow
passes the method through a parameter whose values the step accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops.errors import BadInput
from training.llm import finetune, lora

REPO = Path(__file__).resolve().parents[2]


def test_qlora_command_line_exits_2_naming_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    if lora.cuda_available():
        pytest.skip("this machine has CUDA")
    # URIs that point nowhere: the CUDA check must come before any fetch, so they are never read.
    argv = ["--method=qlora", "--dataset-uri=s3://nowhere/data", "--base-uri=s3://nowhere/base"]
    assert finetune.main(argv) == 2
    err = capsys.readouterr().err
    assert "QLoRA needs a CUDA GPU" in err and "--method=lora" in err


def test_qlora_refusal_comes_from_the_env_as_well() -> None:
    from mlops.config import load_config

    env = {"MLOPS_METHOD": "qlora", "MLOPS_DATASET_URI": "d", "MLOPS_BASE_URI": "b"}
    cfg = load_config(finetune.Config, [], env=env)
    assert cfg.method == "qlora"
    with pytest.raises(BadInput, match="QLoRA needs a CUDA GPU"):
        finetune.preflight(cfg, has_cuda=lambda: False)


def test_the_training_workflow_passes_a_method_the_step_accepts() -> None:
    doc = yaml.safe_load((REPO / "workflows" / "vllm-training.yaml").read_text())
    params = {p["name"]: p for p in doc["spec"]["arguments"]["parameters"]}
    assert params["lora-method"]["value"] in lora.METHODS
    args = [
        arg
        for template in doc["spec"]["templates"]
        for arg in (template.get("container") or {}).get("args", [])
        if arg.startswith("--method=")
    ]
    assert args == ["--method={{workflow.parameters.lora-method}}"]
    assert set(lora.METHODS) == {"lora", "qlora"}
