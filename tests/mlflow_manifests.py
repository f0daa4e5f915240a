"""The cluster's MLflow as its manifests declare it (infra/base): the server container of the
Deployment, and the templates of the ExternalSecrets the pods read. Shared by the unit checks of
those manifests and the integration test that starts the server as the pod does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

INFRA_BASE = Path(__file__).resolve().parents[1] / "infra" / "base"


def external_secret(name: str) -> dict[str, str]:
    """The template data (file name -> text) of ExternalSecret `name` in secrets/mlflow-server.yaml."""
    docs = yaml.safe_load_all((INFRA_BASE / "secrets" / "mlflow-server.yaml").read_text())
    found = next(d for d in docs if d and d["metadata"]["name"] == name)
    data: dict[str, str] = found["spec"]["target"]["template"]["data"]
    return data


def server_container() -> dict[str, Any]:
    """The `mlflow` container of the MLflow Deployment (mlflow/mlflow.yaml)."""
    docs = yaml.safe_load_all((INFRA_BASE / "mlflow" / "mlflow.yaml").read_text())
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    container: dict[str, Any] = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "mlflow"
    )
    return container
