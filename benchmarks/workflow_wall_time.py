"""Wall time of `triton-training` through the local executor on the running local stack.

Runs the workflow twice with the local params and fresh model names: the first run trains,
exports and sets `champion` and `deploy`; the second, identical, is rejected by the quality
gate (no improvement), which skips the export steps. Per-step durations come from the
executor's own node tree, the same figures `mlops run` prints.
"""

from __future__ import annotations

import os
import uuid
from typing import Any


def bench_workflow(runs: int = 2) -> dict[str, Any]:
    """Run triton-training `runs` times; phase, total and per-step seconds of each run."""
    from benchmarks.local_runs import PARAMS_FILE, REPO_ROOT, run_local

    suffix = uuid.uuid4().hex[:6]
    names = {"model-name": f"bench-resnet18-{suffix}", "onnx-model-name": f"bench-resnet18-{suffix}-onnx"}
    records = []
    for index in range(runs):
        result = run_local("triton-training", names)
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
    return {
        "benchmark": "workflow_wall_time",
        "workflow": "triton-training",
        "params": str(PARAMS_FILE.relative_to(REPO_ROOT)),
        "cpus": os.cpu_count(),
        "runs": records,
    }
