"""MLflow's basic-auth server: CPU per authenticated request, with the credential cache off and on.

The cluster's basic_auth.ini (infra/base/secrets/mlflow-server.yaml) sets `auth_cache_ttl_seconds`;
MLflow leaves it at 0. This measures why: `mlflow server --app-name basic-auth` from the
`mlflow-server` environment (the image's pins) on a fresh SQLite database, migrated as the pod's
init container does, one worker; a user made through the users API as the `users` sidecar makes
them; then `requests` calls of `experiments/search` as that user. The server's CPU is read from
/proc for its whole process tree, before and after the calls.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

USER, PASSWORD = "mlops-training", "training-pass-0001"
ADMIN, ADMIN_PASSWORD = "mlflow-admin", "admin-pass-0001"


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and every descendant, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending += [int(c) for c in children]
    return total


def _measure(python: str, ttl: int, requests: int, workdir: Path) -> dict[str, Any]:
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, ServiceSpec

    database = f"sqlite:///{workdir / 'mlflow.db'}"
    ini = workdir / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = EDIT\n"
        f"database_uri = {database}\nadmin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {ttl}\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "benchmark",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for command in (
        ["mlflow", "db", "upgrade", database],
        ["mlflow.server.auth", "db", "upgrade", "--url", database],
    ):
        subprocess.run(
            [python, "-m", *command], env={**os.environ, **env}, capture_output=True, check=True, timeout=300
        )
    port = free_port()
    spec = ServiceSpec(
        name="mlflow",
        port=port,
        command=[
            python,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            database,
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        health_path="/health",
        description=f"MLflow basic-auth, credential cache {ttl} s",
        env=env,
    )
    manager = StackManager(workdir / "stack", [spec], Ports(mlflow=port))
    manager.up(progress=lambda line: None)
    try:
        pid = manager.pid(spec)
        assert pid is not None, "mlflow server exited after it answered"
        with httpx.Client(base_url=spec.url, timeout=60) as client:
            client.post(
                "/api/2.0/mlflow/users/create",
                json={"username": USER, "password": PASSWORD},
                auth=(ADMIN, ADMIN_PASSWORD),
            ).raise_for_status()
            time.sleep(2)  # the server settles after its first requests
            cpu, wall = _tree_cpu_s(pid), time.monotonic()
            for _ in range(requests):
                answer = client.get(
                    "/api/2.0/mlflow/experiments/search", params={"max_results": 1}, auth=(USER, PASSWORD)
                )
                answer.raise_for_status()
            cpu, wall = _tree_cpu_s(pid) - cpu, time.monotonic() - wall
    finally:
        manager.down(progress=lambda line: None)
    return {
        "auth_cache_ttl_seconds": ttl,
        "requests": requests,
        "server_cpu_ms_per_request": round(cpu / requests * 1000, 1),
        "wall_ms_per_request": round(wall / requests * 1000, 1),
    }


def bench_mlflow_auth(requests: int = 100) -> dict[str, Any]:
    """Server CPU and wall time per authenticated request, credential cache off (MLflow's default) and on."""
    from mlops.stack.services import mlflow_python

    python = mlflow_python()
    rows = []
    for ttl in (0, 60):
        with tempfile.TemporaryDirectory(prefix="mlflow-auth-bench-") as tmp:
            row = _measure(python, ttl, requests, Path(tmp))
        print(f"  auth_cache_ttl_seconds={ttl}: {row}", flush=True)
        rows.append(row)
    version = subprocess.run(
        [python, "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "benchmark": "mlflow_auth",
        "server": f"mlflow server --app-name basic-auth --workers 1, MLflow {version}, SQLite",
        "request": "GET experiments/search?max_results=1 as a user made through the users API",
        "results": rows,
    }
