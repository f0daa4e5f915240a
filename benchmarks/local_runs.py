"""Run a workflow through the local executor against the running stack, as the benchmarks need."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "workflows" / "params" / "local.yaml"


def stack_overrides() -> dict[str, str]:
    """Service addresses from the environment `mlops env` exports (the stack's ports may differ)."""
    overrides = {}
    for key, env in (
        ("mlflow-tracking-uri", "MLFLOW_TRACKING_URI"),
        ("s3-endpoint-url", "AWS_ENDPOINT_URL"),
        ("triton-endpoints", "TRITON_GRPC_URL"),
    ):
        if os.environ.get(env):
            overrides[key] = os.environ[env]
    vllm_url = os.environ.get("VLLM_URL")
    if vllm_url:  # the vLLM workflows take host:port replicas and the OpenAI base URL
        overrides["vllm-endpoints"] = vllm_url.removeprefix("http://").rstrip("/")
        overrides["vllm-url"] = vllm_url
    if os.environ.get("PROMETHEUS_URL"):
        overrides["prometheus-url"] = os.environ["PROMETHEUS_URL"]
    return overrides


def run_local(name: str, params: Mapping[str, str], *, require_success: bool = True) -> Any:
    """`mlops run workflows/<name>.yaml --params local.yaml` with `params` on top; the WorkflowResult."""
    from rich.console import Console

    from mlops.argo.executor import run_workflow
    from mlops.argo.parameters import load_params_file
    from mlops.argo.process import LocalEnvironment
    from mlops.argo.workflow import Library

    workflow = REPO_ROOT / "workflows" / f"{name}.yaml"
    declared = {str(p.get("name")) for p in Library(workflow.parent).load(workflow).parameters}
    merged = {k: v for k, v in {**stack_overrides(), **params}.items() if k in declared}
    result = run_workflow(
        workflow,
        merged,
        workflows_dir=workflow.parent,
        environment=LocalEnvironment(),
        console=Console(stderr=True),
        file_params=load_params_file(PARAMS_FILE),
        quiet=True,
    )
    if require_success and not result.succeeded:
        raise RuntimeError(f"workflow {result.name} {result.phase}: {result.message}")
    return result
