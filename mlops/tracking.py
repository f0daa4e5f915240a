"""MLflow tracking for steps: error mapping, run reads, artifact transfers.

Artifacts travel through the MLflow server (proxied artifact store), so a step needs only
MLFLOW_TRACKING_URI. An unreachable server is `Transient` (exit 3, retried); an unknown
run or a run in the wrong state is `BadInput` (exit 2).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops.errors import BadInput, MlopsError, Transient

TAG_VALUE_LIMIT = 4000  # longest tag value written (MLflow refuses longer ones); texts are cut to it
_MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
_UNAVAILABLE = (
    "TEMPORARILY_UNAVAILABLE",
    "INTERNAL_ERROR",
    "SERVICE_UNDER_MAINTENANCE",
    "REQUEST_LIMIT_EXCEEDED",
)


def mlflow_error(exc: Exception, what: str) -> MlopsError | None:
    """BadInput for a missing object, Transient for an unreachable or failing server, else None."""
    code = str(getattr(exc, "error_code", ""))
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if code in _MISSING:
        return BadInput(f"{what}: {text}")
    # the client wraps a refused connection or exhausted retries into "API request to ... failed"
    if code in _UNAVAILABLE or "API request to" in text or "Max retries" in text:
        return Transient(f"{what}: MLflow unreachable or failing: {text}")
    return None


@contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Translate MLflow client errors into BadInput / Transient with what was being done."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        error = mlflow_error(exc, what)
        if error is None:
            raise
        raise error from exc


def tracking_client() -> Any:
    """An MlflowClient for MLFLOW_TRACKING_URI, set to fail fast when the server is down."""
    configure_mlflow_client()
    from mlflow import MlflowClient

    return MlflowClient()


def get_run(client: Any, run_id: str, *, require_finished: bool = True) -> Any:
    """Read a run; BadInput if it does not exist or (by default) did not finish."""
    if not run_id:
        raise BadInput("--run-id is required")
    with mlflow_errors(f"reading run {run_id}"):
        run = client.get_run(run_id)
    if require_finished and run.info.status != "FINISHED":
        raise BadInput(f"run {run_id} has status {run.info.status}, not FINISHED")
    return run


def download_artifacts(uri: str, destination: Path) -> Path:
    """Download an artifact folder or file (`mlflow-artifacts:/...`, `runs:/...`) into `destination`."""
    import mlflow

    destination.mkdir(parents=True, exist_ok=True)
    with mlflow_errors(f"downloading {uri}"):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))


def log_json(client: Any, run_id: str, data: Any, artifact_path: str, filename: str) -> None:
    """Log `data` as `<artifact_path>/<filename>` on an existing run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        with mlflow_errors(f"logging {artifact_path}/{filename} to run {run_id}"):
            client.log_artifact(run_id, str(path), artifact_path)


def tag_verdict(
    client: Any, run_id: str, gate_tag: str, label: str, reason: str, registered: str = ""
) -> None:
    """Record a gate's verdict on the run it judged: `<gate_tag>`, `<gate_tag>.reason` (cut to the
    tag limit) and, when the gate registered a version, `registered_version` (`<model>/<version>`)."""
    with mlflow_errors(f"tagging run {run_id}"):
        client.set_tag(run_id, gate_tag, label)
        client.set_tag(run_id, f"{gate_tag}.reason", reason[:TAG_VALUE_LIMIT])
        if registered:
            client.set_tag(run_id, "registered_version", registered)


def artifact_uri(run: Any, path: str) -> str:
    """The URI of one artifact folder of a run, used as a registered version's source."""
    return f"{run.info.artifact_uri.rstrip('/')}/{path.strip('/')}"


def configure_mlflow_client() -> None:
    """Fail fast when MLflow is down: a step exits 3 and Argo retries, instead of MLflow's own long backoff."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
