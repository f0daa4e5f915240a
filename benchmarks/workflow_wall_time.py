"""Wall time of `triton-training` through the local executor on the running local stack.

Runs the workflow twice with the local params and fresh model names: the first run trains,
exports and sets `champion` and `deploy`; the second, identical, is rejected by the quality
gate (no improvement), which skips the export steps. Per-step durations come from the
executor's own node tree, the same figures `mlops run` prints.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def bench_workflow(params_file: Path | None = None, runs: int = 2) -> dict[str, Any]:
    """Run triton-training `runs` times; phase, total and per-step seconds of each run."""
    from rich.console import Console

    from mlops.argo.executor import run_workflow
    from mlops.argo.parameters import load_params_file
    from mlops.argo.process import LocalEnvironment

    workflow = REPO_ROOT / "workflows" / "triton-training.yaml"
    params_file = params_file or REPO_ROOT / "workflows" / "params" / "local.yaml"
    suffix = uuid.uuid4().hex[:6]
    overrides = {
        "model-name": f"bench-resnet18-{suffix}",
        "onnx-model-name": f"bench-resnet18-{suffix}-onnx",
    }
    for key, env in (("mlflow-tracking-uri", "MLFLOW_TRACKING_URI"), ("s3-endpoint-url", "AWS_ENDPOINT_URL")):
        if os.environ.get(env):
            overrides[key] = os.environ[env]
    records = []
    for index in range(runs):
        result = run_workflow(
            workflow,
            overrides,
            workflows_dir=workflow.parent,
            environment=LocalEnvironment(),
            console=Console(stderr=True),
            file_params=load_params_file(params_file),
            quiet=True,
        )
        steps = {
            node.name: {"phase": node.phase, "seconds": round(node.duration or 0.0, 1)}
            for node in result.root.children
        }
        records.append(
            {
                "run": index + 1,
                "workflow": result.name,
                "phase": result.phase,
                "seconds": round(result.duration, 1),
                "steps": steps,
            }
        )
        if not result.succeeded:
            raise RuntimeError(f"workflow {result.name} {result.phase}: {result.message}")
    return {
        "benchmark": "workflow_wall_time",
        "workflow": "triton-training",
        "params": str(params_file.relative_to(REPO_ROOT)),
        "cpus": os.cpu_count(),
        "runs": records,
    }
