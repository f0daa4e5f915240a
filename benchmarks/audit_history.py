"""How long recording a move and reading `mlops history` take with hundreds of moves on MLflow.

Registers a model with two versions on the MLflow at MLFLOW_TRACKING_URI, moves `live` back and
forth `moves` times through `Registry.move_alias` (each move: guarded alias set, version tags,
one `registry-audit` run), then reads the whole history `reads` times with `Registry.history`.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from typing import Any


def bench_audit_history(moves: int = 300, reads: int = 5) -> dict[str, Any]:
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise RuntimeError('MLFLOW_TRACKING_URI is not set: start the stack and eval "$(bin/mlops env)"')
    from mlops.registry import mlflow_registry

    load_before = os.getloadavg()[0]
    registry = mlflow_registry()
    model = f"bench-audit-{uuid.uuid4().hex[:8]}"
    versions = [registry.register(model, f"s3://bench/{i}", None) for i in range(2)]
    move_seconds = []
    current = None
    for index in range(moves):
        target = versions[index % 2]
        started = time.perf_counter()
        registry.move_alias(model, "live", target, expect_version=current, reason=f"bench move {index}")
        move_seconds.append(time.perf_counter() - started)
        current = target
    read_seconds = []
    for _ in range(reads):
        started = time.perf_counter()
        entries = registry.history(model)
        read_seconds.append(time.perf_counter() - started)
    if len(entries) != moves or [e.reason for e in entries] != [f"bench move {i}" for i in range(moves)]:
        raise RuntimeError(f"history returned {len(entries)} entries out of order or incomplete")
    return {
        "benchmark": "audit_history",
        "moves": moves,
        "reads": reads,
        "move_ms_median": round(statistics.median(move_seconds) * 1000, 1),
        "move_ms_p95": round(sorted(move_seconds)[int(0.95 * (moves - 1))] * 1000, 1),
        "history_s_median": round(statistics.median(read_seconds), 3),
        "history_s_max": round(max(read_seconds), 3),
        "backend": "mlflow server (SQLite) of the local stack",
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
