"""Requests to Triton throughout a deployment and a rollback: every one must succeed.

On the running local stack (with the Triton stand-in): trains two different ResNet-18 versions
(the second with another seed and `min-improvement=-1`), deploys the first, then starts a
client that sends batch-1 requests to the model's default route without pause, deploys the
second version and rolls back, and stops the client. Records every request's outcome,
latency and the version that answered, and each workflow's wall time.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any


class Traffic:
    """A background client calling the default route of `model` until stopped."""

    def __init__(self, endpoint: str, model: str, image_size: int) -> None:
        self.endpoint, self.model, self.image_size = endpoint, model, image_size
        self.records: list[tuple[float, float, str, str]] = []  # (t, latency_s, version, error)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import numpy as np
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(url=self.endpoint)
        batch = np.zeros((1, 3, self.image_size, self.image_size), dtype=np.float32)
        tensor = grpcclient.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                answer = client.infer(self.model, [tensor], client_timeout=10)
                version, error = str(answer.get_response().model_version), ""
            except InferenceServerException as exc:
                version, error = "", (exc.message() or str(exc))[:200]
            self.records.append((time.time(), time.perf_counter() - started, version, error))

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _summary(records: list[tuple[float, float, str, str]]) -> dict[str, Any]:
    import numpy as np

    latencies = np.asarray([r[1] for r in records if not r[3]]) * 1000.0
    switches = []
    for before, after in itertools.pairwise(records):
        if after[2] and before[2] and after[2] != before[2]:
            switches.append(f"{before[2]}->{after[2]}")
    errors = sorted({r[3] for r in records if r[3]})
    return {
        "requests": len(records),
        "failed": sum(1 for r in records if r[3]),
        "errors": errors[:5],
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if len(latencies) else None,
        "max_ms": round(float(latencies.max()), 2) if len(latencies) else None,
        "version_switches": switches,
    }


def bench_triton_traffic() -> dict[str, Any]:
    import os

    from benchmarks.local_runs import run_local

    endpoint = os.environ.get("TRITON_GRPC_URL")
    if not endpoint:
        raise RuntimeError('TRITON_GRPC_URL is not set: `bin/mlops up` and eval "$(bin/mlops env)"')
    suffix = uuid.uuid4().hex[:6]
    names = {"model-name": f"bench-traffic-{suffix}", "onnx-model-name": f"bench-traffic-{suffix}-onnx"}
    deploy = {"onnx-model-name": names["onnx-model-name"]}
    run_local("triton-training", names)
    first = run_local("triton-deployment", deploy)
    run_local("triton-training", {**names, "seed": "7", "min-improvement": "-1"})
    with Traffic(endpoint, names["onnx-model-name"], image_size=32) as traffic:
        time.sleep(2.0)
        second = run_local("triton-deployment", deploy)
        rollback = run_local("triton-rollback", deploy)
        time.sleep(2.0)
    return {
        "benchmark": "triton_traffic",
        "model": names["onnx-model-name"],
        "first_deployment_s": round(first.duration, 1),
        "deployment_s": round(second.duration, 1),
        "rollback_s": round(rollback.duration, 1),
        "deployment_steps_s": {n.name: round(n.duration or 0.0, 1) for n in second.nodes if n.kind == "Pod"},
        "traffic": _summary(traffic.records),
    }
