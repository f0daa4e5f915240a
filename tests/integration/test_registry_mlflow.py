"""The registry's guarded moves and audit trail against a real MLflow server."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from mlops.errors import AliasConflict, Transient
from mlops.registry import MlflowBackend, Registry, mlflow_registry
from tests.conftest import REPO_ROOT, LocalStack

pytestmark = pytest.mark.integration


def _model() -> str:
    return f"it-model-{uuid.uuid4().hex[:8]}"


def test_guarded_moves_and_audit(local_stack: LocalStack) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = _model()
    v1 = registry.register(model, "s3://bucket/one", None, {"best_val_accuracy": "0.9"})
    v2 = registry.register(model, "s3://bucket/two", None)
    assert registry.alias(model, "champion") is None

    registry.move_alias(model, "champion", v1, expect_version=None, reason="first model")
    with pytest.raises(AliasConflict):
        registry.move_alias(model, "champion", v2, expect_version=None, reason="stale")
    assert registry.alias(model, "champion") == v1

    registry.move_alias(model, "champion", v2, expect_version=v1, reason="better")
    assert registry.alias(model, "champion") == v2
    assert registry.tags(model, v2)["alias.champion.from"] == v1
    assert registry.tags(model, v1)["best_val_accuracy"] == "0.9"
    assert [(e.from_version, e.to_version) for e in registry.history(model)] == [(None, v1), (v1, v2)]


def test_history_command_prints_the_moves(local_stack: LocalStack) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = _model()
    version = registry.register(model, "s3://bucket/x", None)
    registry.move_alias(model, "deploy", version, expect_version=None, reason="equivalence gate passed")
    result = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "history", model],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**local_stack.env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "deploy" in result.stdout and "equivalence gate passed" in result.stdout


def test_unreachable_mlflow_is_transient(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    registry = Registry(MlflowBackend("http://127.0.0.1:9"))
    with pytest.raises(Transient, match="MLflow"):
        registry.alias("any", "champion")
