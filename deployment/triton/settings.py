"""Settings shared by the Triton deployment steps (each step's Config derives from these)."""

from __future__ import annotations

from pydantic import Field

from deployment.triton.repository import Repository
from mlops.config import StepConfig
from mlops.step import workflow_name as workflow_name  # re-exported for the steps
from mlops.storage import S3Store, S3Url


class ModelSettings(StepConfig):
    model_name: str = Field("resnet18-imagenette-onnx", description="registered ONNX model")
    model_repository: str = Field(
        "s3://mlops-models/triton", description="Triton model repository root on S3 (s3://bucket/prefix)"
    )


def repository(cfg: ModelSettings, triton_model: str) -> Repository:
    """The model's place in the repository; the bucket is created when missing (local stack)."""
    store = S3Store()
    root = S3Url.parse(cfg.model_repository)
    store.ensure_bucket(root.bucket)
    return Repository(store, root, triton_model)


class ServerSettings(ModelSettings):
    triton_model_name: str = Field(
        "", description="the model's name in the Triton repository ('' = from the registry)"
    )
    endpoints: str = Field(
        "127.0.0.1:8001",
        description="Triton gRPC replicas: host:port[,host:port...] or k8s://<namespace>/<selector>:<port>",
    )
    ready_timeout_s: float = Field(120.0, gt=0, description="how long to wait for a version to become ready")
