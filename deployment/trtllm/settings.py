"""Settings shared by the TensorRT-LLM steps, and where their intermediate artifacts live on S3."""

from __future__ import annotations

from pydantic import Field

from mlops.config import StepConfig
from mlops.models.names import LLM_MODEL
from mlops.step import workflow_name as workflow_name  # re-exported for the steps
from mlops.storage import S3Url


class TrtllmSettings(StepConfig):
    model_name: str = Field(LLM_MODEL, description="registered model of the LoRA adapters")
    work_prefix: str = Field(
        "s3://mlops-models/trtllm-work",
        description="S3 prefix for the merged checkpoint, the TensorRT-LLM checkpoint and the engine, "
        "one folder per workflow run",
    )


def work_url(cfg: TrtllmSettings, *parts: str) -> S3Url:
    """`<work-prefix>/<workflow>/<parts...>`: a run's artifacts never mix with another run's."""
    return S3Url.parse(cfg.work_prefix.rstrip("/")).join(workflow_name(), *parts)


class ServerSettings(StepConfig):
    model_repository: str = Field(
        "s3://mlops-models/trtllm",
        description="the TensorRT-LLM Triton model repository root on S3 (s3://bucket/prefix)",
    )
    endpoints: str = Field(
        "",
        description="gRPC endpoints of the Triton replicas with the TensorRT-LLM backend: host:port[,...] "
        "or k8s://<namespace>/<selector>:<port> ('' = none: the step refuses)",
    )
    ready_timeout_s: float = Field(
        900.0, gt=0, description="how long to wait for the ensemble to become ready (engines load slowly)"
    )
