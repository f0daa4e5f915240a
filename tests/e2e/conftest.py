"""Run whole workflows through `mlops run` as a user would, against the session's local stack."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops.registry import Registry
from tests.conftest import LocalStack, VllmStack, fixture_run, mlops_run

# The LLM release workflows' parts at a smaller size, for the tests that release through them (the
# quality and speed gates have tests of their own): one LoRA epoch, 12 questions (3 of each type),
# a 5 s load test. One LoRA epoch leaves the adapter near the local training gate's bars
# (perplexity 2.50-2.54 against 2.5, by learning rate): they are lifted, that gate has tests too.
SMALL_LLM_RELEASE = {
    "lora-epochs": "1",
    "eval-limit": "12",
    "perf-duration-s": "5",
    "max-eval-loss": "10",
    "max-perplexity": "100",
}

WorkflowRunner = Callable[..., subprocess.CompletedProcess[str]]


def exit_summary(stdout: str) -> str:
    """The exit handler's summary (deployment/release/summary.py) as `mlops run` printed it."""
    return "\n".join(
        line.split(" | ", 1)[1] for line in stdout.splitlines() if line.startswith("  onExit.summary | ")
    )


@pytest.fixture
def run_workflow(local_stack: LocalStack, tmp_path: Path) -> WorkflowRunner:
    """`run_workflow("triton-training", model_name=..., **params)` -> the finished `mlops run` process."""

    def run(
        workflow: str | Path, *, params_file: str | None = "workflows/params/local.yaml", **params: str
    ) -> subprocess.CompletedProcess[str]:
        result = mlops_run(local_stack, workflow, tmp_path / "state", params_file, **params)
        print(result.stdout[-20000:])
        print(result.stderr[-5000:], file=sys.stderr)
        return result

    return run


def resnet_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return {"model-name": f"resnet18-e2e-{suffix}", "onnx-model-name": f"resnet18-e2e-{suffix}-onnx"}


@pytest.fixture
def model_names() -> dict[str, str]:
    """Model names private to one test, so tests sharing the stack never see each other's aliases."""
    return resnet_names()


@dataclass(frozen=True)
class TrainedResnet:
    """A first `triton-training` run under model names of its own: version 1 of the ONNX model
    (`names["onnx-model-name"]`) is a trained, validated package with `deploy` on it."""

    names: dict[str, str]
    first: subprocess.CompletedProcess[str]
    state_dir: Path  # the run's state (Argo's memoize cache): a second run here reuses it

    @property
    def onnx_model(self) -> str:
        return self.names["onnx-model-name"]


def _first_training(local_stack: LocalStack, state_dir: Path, **params: str) -> TrainedResnet:
    names = resnet_names()
    result = fixture_run(local_stack, "triton-training", state_dir, **names, **params)
    return TrainedResnet(names, result, state_dir)


@pytest.fixture(scope="session")
def trained_resnet(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> TrainedResnet:
    """`triton-training` with the local params, once per session: test_train_twice_second_rejected
    checks this first run and makes the second; the deployment tests serve copies of its version
    (`register_copy`) under names of their own."""
    return _first_training(local_stack, tmp_path_factory.mktemp("resnet"))


@pytest.fixture(scope="session")
def other_trained_resnet(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> TrainedResnet:
    """A second, different model, once per session: what a redeployment serves. Another seed and
    one epoch (about 0.5 validation accuracy, so quality gate 1's bar is lifted): deployment checks
    that the served model is the registered one, not how good it is."""
    return _first_training(
        local_stack, tmp_path_factory.mktemp("resnet-seed-7"), seed="7", epochs="1", threshold="0"
    )


def register_copy(
    registry: Registry,
    source: tuple[str, str],
    model: str,
    *,
    artifact: tuple[str, str] | None = None,
) -> str:
    """A new version of ONNX model `model` carrying `source` (model, version)'s package and its
    training tags (not its alias, Triton or rollback records), served under `model`'s own name;
    `artifact`: (source URI, run id) of another package to register instead."""
    name, version = source
    tags = {
        k: v
        for k, v in registry.tags(name, version).items()
        if not k.startswith(("alias.", "triton_", "rollback."))
    }
    uri, run_id = artifact or (registry.source(name, version), registry.run_id(name, version))
    return registry.register(model, uri, run_id, {**tags, "triton_model_name": model})


def release_session_adapter(
    run: WorkflowRunner, vllm_stack: VllmStack, model: str, reason: str, **slot: str
) -> str:
    """The session's trained adapter as a new version of `model`, deployed (vllm-deployment) and
    released (vllm-promote) through the workflows, with both gate verdicts moved by hand (the gates
    have tests of their own); `slot`: the workflows' slot parameters. Returns the version, now live."""
    from mlops.registry import mlflow_registry
    from tests.integration.test_vllm_serving import register_adapter, session_adapter

    registry = mlflow_registry()
    version = register_adapter(vllm_stack, model, session_adapter(vllm_stack))
    registry.move_alias(model, "candidate", version, reason=reason)
    deployed = run("vllm-deployment", **slot)
    assert deployed.returncode == 0, deployed.stdout[-4000:]
    for verdict in ("eval-passed", "perf-passed"):
        registry.move_alias(model, verdict, version, reason=reason)
    promoted = run("vllm-promote", **slot)
    assert promoted.returncode == 0, promoted.stdout[-4000:]
    assert registry.alias(model, "live") == version
    return version
