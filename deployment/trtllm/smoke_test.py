"""Step: smoke-test the served TensorRT-LLM ensemble against a latency SLA.

On every replica, sends `--requests` prompts to the ensemble's release N (`text_input` bytes
[1, 1], `max_tokens` int32 [1, 1], `temperature` 0 for a repeatable answer) and checks that each
answer is non-empty text and that the p95 of the request latencies is within
`--max-p95-latency-s`. A failed check is exit 2 (never retried; the workflow's exit handler
rolls back). On pass the adapter version is tagged with the release and the figures. Refuses
(exit 2, nothing sent) without a TensorRT-LLM Triton, as deploy does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from deployment.trtllm import release
from deployment.trtllm.settings import ServerSettings, workflow_name
from deployment.trtllm.triton_models import ENSEMBLE
from mlops import step
from mlops.errors import BadInput
from mlops.gates import Verdict, check, verdict
from mlops.models.names import LLM_MODEL
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.serving.triton import TritonServer, connect
from mlops.step import StepResult
from mlops.storage import S3Url

STEP = "deployment.trtllm.smoke_test"
TRITON_VERSION_TAG = "trtllm.triton_version"


class Config(ServerSettings):
    model_name: str = Field(LLM_MODEL, description="registered model of the LoRA adapters")
    version: str = Field("", description="the adapter version in the release (tagged on pass; '' = no tag)")
    triton_version: int = Field(0, ge=0, description="the release expected to serve (deploy's input)")
    prompt: str = Field(
        "[INST] What is the capital of France? [/INST]", description="the prompt sent in every request"
    )
    requests: int = Field(5, ge=1, le=1000, description="requests per replica")
    max_tokens: int = Field(32, ge=1, description="answer length asked for")
    max_p95_latency_s: float = Field(5.0, gt=0.0, description="the SLA: p95 request latency in seconds")


def generation_inputs(prompt: str, max_tokens: int) -> dict[str, np.ndarray]:
    """The ensemble's request: one prompt, batch of one (dims exclude the batch dim in the config)."""
    if not prompt.strip():
        raise BadInput("the smoke-test prompt is empty")
    return {
        "text_input": np.array([[prompt.encode("utf-8")]], dtype=np.object_),
        "max_tokens": np.array([[max_tokens]], dtype=np.int32),
        "temperature": np.array([[0.0]], dtype=np.float32),
    }


def answer_text(outputs: dict[str, Any]) -> str:
    """The first answer of `text_output` as text ('' when absent or empty)."""
    value = outputs.get("text_output")
    if value is None:
        return ""
    flat = np.asarray(value).reshape(-1)
    if flat.size == 0:
        return ""
    first = flat[0]
    return first.decode("utf-8", errors="replace") if isinstance(first, bytes) else str(first)


def p95(values: list[float]) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), 95))


def latency_gate(latencies: list[float], empty_answers: int, max_p95_s: float) -> Verdict:
    """Pass when every answer has text and the p95 latency is within the SLA."""
    checks = [
        check("p95_latency_s", p95(latencies), "<=", max_p95_s),
        check("empty_answers", float(empty_answers), "==", 0.0),
    ]
    return verdict(checks)


def probe_replica(
    server: TritonServer, version: int, inputs: dict[str, np.ndarray], requests: int
) -> tuple[list[float], int, str]:
    """(latencies, empty answers, one answer) of `requests` sequential requests to the ensemble."""
    latencies, empty, sample = [], 0, ""
    for _ in range(requests):
        started = time.perf_counter()
        outputs = server.infer(ENSEMBLE, str(version) if version else "", inputs)
        latencies.append(time.perf_counter() - started)
        text = answer_text(outputs)
        empty += 0 if text.strip() else 1
        sample = sample or text
    return latencies, empty, sample


def run(
    cfg: Config,
    registry: Registry | None = None,
    connector: Callable[[str], TritonServer] = connect,
) -> StepResult:
    release.require_endpoints(cfg.endpoints, STEP)
    inputs = generation_inputs(cfg.prompt, cfg.max_tokens)
    root = S3Url.parse(cfg.model_repository)
    servers = release.connect_checked(resolve(cfg.endpoints), root, connector)
    latencies: list[float] = []
    empty, sample = 0, ""
    for server in servers:
        if cfg.triton_version and not server.is_model_ready(ENSEMBLE, cfg.triton_version):
            raise BadInput(f"Triton {server.endpoint} does not serve {ENSEMBLE} release {cfg.triton_version}")
        seen, missing, text = probe_replica(server, cfg.triton_version, inputs, cfg.requests)
        latencies += seen
        empty += missing
        sample = sample or text
    result = latency_gate(latencies, empty, cfg.max_p95_latency_s)
    figures = f"p95 {p95(latencies):.3f}s, max {max(latencies):.3f}s over {len(latencies)} request(s)"
    if not result.passed:
        raise BadInput(f"smoke test failed ({figures}): {result.reason}")
    if cfg.version:
        (registry or mlflow_registry()).tag_version(
            cfg.model_name,
            cfg.version,
            {
                TRITON_VERSION_TAG: str(cfg.triton_version),
                "trtllm.workflow": workflow_name(),
                "trtllm.smoke_p95_latency_s": f"{p95(latencies):.4f}",
            },
        )
    return StepResult(
        outputs={"verdict": "pass", "p95-latency-s": f"{p95(latencies):.4f}"},
        summary=f"{ENSEMBLE} release {cfg.triton_version or 'default'} on {len(servers)} replica(s): {figures}, "
        f"SLA {cfg.max_p95_latency_s:g}s met; e.g. {sample[:60]!r}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
