"""Shared fixtures: a real local stack (MLflow + S3) on free ports, private to the test session."""

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
    manager = StackManager(state_dir, default_services(state_dir, ports, sys.executable), ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    env = client_env(ports)
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
