"""Shared fixtures: a real local stack (MLflow + S3, and the Triton stand-in on demand) on free ports,
private to the test session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LocalStack:
    state_dir: Path
    env: dict[str, str]

    @property
    def mlflow_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def s3_endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Start real `mlflow server` and moto S3 servers once per test session, on free ports."""
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, client_env, default_services

    state_dir = tmp_path_factory.mktemp("stack")
    ports = Ports(mlflow=free_port(), s3=free_port())
    services = [s for s in default_services(state_dir, ports, sys.executable) if s.name in ("mlflow", "s3")]
    manager = StackManager(state_dir, services, ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    env = {k: v for k, v in client_env(ports).items() if not k.startswith("TRITON_")}  # see triton_stack
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield LocalStack(state_dir, env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        manager.down(progress=lambda line: print(f"[stack] {line}"))


@dataclass(frozen=True)
class TritonStack:
    """The Triton stand-in of the session, reading `repository` on the session's S3."""

    grpc_url: str
    http_url: str
    metrics_url: str
    repository: str
    state_dir: Path


@pytest.fixture(scope="session")
def triton_stack(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonStack]:
    """Start the Triton stand-in (in the serving environment, as `mlops up` does) next to `local_stack`.

    Exports TRITON_GRPC_URL / TRITON_HTTP_URL while it runs; models go to `repository` (tests use
    model names of their own)."""
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, client_env, default_services, serving_python
    from mlops.stack.triton.server import DEFAULT_REPOSITORY, REPOSITORY_ENV

    state_dir = tmp_path_factory.mktemp("triton-stack")
    s3_port = int(local_stack.s3_endpoint.rsplit(":", 1)[1])
    mlflow_port = int(local_stack.mlflow_uri.rsplit(":", 1)[1])
    ports = Ports(
        mlflow=mlflow_port,
        s3=s3_port,
        triton_http=free_port(),
        triton_grpc=free_port(),
        triton_metrics=free_port(),
    )
    # the stack's default repository (the deployment steps' default too); the session's S3 is private
    repository = os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY
    services = default_services(
        state_dir, ports, sys.executable, serving_python=serving_python(), model_repository=repository
    )
    manager = StackManager(state_dir, [s for s in services if s.name == "triton"], ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    env = {k: v for k, v in client_env(ports).items() if k.startswith("TRITON_")}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield TritonStack(
            grpc_url=env["TRITON_GRPC_URL"],
            http_url=env["TRITON_HTTP_URL"],
            metrics_url=f"http://127.0.0.1:{ports.triton_metrics}/metrics",
            repository=repository,
            state_dir=state_dir,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        manager.down(progress=lambda line: print(f"[stack] {line}"))
