"""Settings shared by the vLLM deployment steps (each step's Config derives from these)."""

from __future__ import annotations

from pydantic import Field

from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.models.names import LLM_MODEL
from mlops.serving.discovery import resolve
from mlops.serving.vllm import HttpVllmServer, connect
from mlops.step import workflow_name as workflow_name  # re-exported for the steps


class VllmSettings(StepConfig):
    model_name: str = Field(LLM_MODEL, description="registered model of the LoRA adapters")
    served_name: str = Field(
        "aws-rag-qa",
        description="vLLM's --served-model-name of the base; slots are <name>-live / <name>-candidate",
    )
    endpoints: str = Field(
        "127.0.0.1:8010",
        description="vLLM replicas: host:port[,host:port...] or k8s://<namespace>/<selector>:<port>",
    )
    adapter_dir: str = Field(
        "/adapters",
        description="folder the servers load adapters from (shared volume on a cluster): <dir>/<model>/<version>/",
    )
    request_timeout_s: float = Field(120.0, gt=0.0, description="timeout of one request to a replica")


def connect_all(cfg: VllmSettings) -> list[HttpVllmServer]:
    """A client per replica (endpoints resolved now: a static list or the pods behind a selector)."""
    endpoints = resolve(cfg.endpoints)
    if not endpoints:
        raise BadInput(f"no vLLM replica found for {cfg.endpoints!r}")
    return [connect(endpoint, timeout_s=cfg.request_timeout_s) for endpoint in endpoints]
