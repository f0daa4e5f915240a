"""The registry's guarded moves and audit trail against a real MLflow server."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid

import pytest
from mlflow import MlflowClient

from mlops.audit import AUDIT_EXPERIMENT, AuditEntry, MlflowAuditLog
from mlops.errors import AliasConflict, BadInput, Transient
from mlops.registry import MlflowBackend, Registry, mlflow_registry
from tests.conftest import REPO_ROOT, LocalStack
from tests.legacy_audit import write_old_move

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

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
    assert ISO.match(registry.tags(model, v2)["alias.champion.set_at"])


def test_each_move_is_a_run_of_the_audit_experiment_and_no_model_tag(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_WORKFLOW_NAME", "vision-training-q8m2z")
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = _model()
    v1 = registry.register(model, "s3://bucket/one", None)
    v2 = registry.register(model, "s3://bucket/two", None)
    registry.move_alias(model, "live", v1, expect_version=None, reason="first deploy")
    registry.move_alias(model, "live", v2, expect_version=v1, reason="verified on every replica")
    client = MlflowClient(local_stack.mlflow_uri)
    assert client.get_registered_model(model).tags == {}
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"params.model = '{model}'",
        order_by=["attributes.start_time ASC"],
    )
    assert [r.info.run_name for r in runs] == [f"{model} live: unset -> v1", f"{model} live: v1 -> v2"]
    last = runs[1]
    assert last.data.params == {
        "model": model,
        "alias": "live",
        "from": v1,
        "to": v2,
        "actor": "workflow/vision-training-q8m2z",
        "reason": "verified on every replica",
        "workflow": "vision-training-q8m2z",
    }
    assert (
        last.info.status == "FINISHED" and last.data.tags["mlflow.user"] == "workflow/vision-training-q8m2z"
    )
    assert last.data.tags["mlflow.note.content"] == "verified on every replica"
    entry = registry.history(model)[-1]
    assert (
        last.data.tags["mlops.audit.at"] == entry.when and abs(last.info.start_time / 1000 - entry.at) < 0.002
    )


def test_history_command_prints_the_moves(local_stack: LocalStack) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = _model()
    version = registry.register(model, "s3://bucket/x", None)
    entry = registry.move_alias(
        model, "deploy", version, expect_version=None, reason="equivalence gate passed"
    )
    result = _cli(local_stack, "history", model)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{entry.when}  deploy") and "equivalence gate passed" in result.stdout


def _cli(local_stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**local_stack.env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


def test_migrate_audit_moves_old_model_tags_into_the_audit_experiment(local_stack: LocalStack) -> None:
    """A model written by the old format (JSON model tags, epoch version tags) on the real MLflow."""
    registry = mlflow_registry(local_stack.mlflow_uri)
    client = MlflowClient(local_stack.mlflow_uri)
    model = _model()
    v1 = registry.register(model, "s3://bucket/one", None)
    v2 = registry.register(model, "s3://bucket/two", None)
    backend = registry.backend
    backend.set_alias(model, "champion", v2)
    keys = [
        write_old_move(backend, model, "champion", None, v1, at=1796000000.5),
        write_old_move(
            backend, model, "champion", v1, v2, at=1796000100.25, actor="ana@laptop", reason="hotfix"
        ),
    ]
    backend.set_model_tag(model, "owner", "vision team")
    registry.move_alias(model, "champion", v1, expect_version=v2, reason="rolled back")  # a new-format move

    before = _cli(local_stack, "history", model)
    assert before.returncode == 0, before.stderr
    lines = before.stdout.splitlines()
    assert [line[:20] for line in lines[:2]] == ["2026-11-30T00:53:20Z", "2026-11-30T00:55:00Z"]
    assert "hotfix" in lines[1] and "rolled back" in lines[2]
    assert f"`mlops migrate-audit {model}`" in before.stderr

    migrated = _cli(local_stack, "migrate-audit", model)
    assert migrated.returncode == 0, migrated.stderr
    assert (
        migrated.stdout
        == f"{model}: 2 audit entries moved, 2 model tags deleted, 1 version time tags now ISO-8601\n"
    )
    assert client.get_registered_model(model).tags == {"owner": "vision team"}
    assert registry.tags(model, v2)["alias.champion.set_at"] == "2026-11-30T00:55:00Z"
    assert ISO.match(registry.tags(model, v1)["alias.champion.set_at"])
    trail = registry.backend.read_audit(model)
    assert [e.migrated_from for e in trail] == [*keys, ""]
    assert [e.workflow for e in trail][:2] == ["vision-training-abc12", ""]

    after = _cli(local_stack, "history", model)
    assert after.stdout == before.stdout and after.stderr == ""
    again = _cli(local_stack, "migrate-audit", model)
    assert f"{model}: 0 audit entries moved, 0 model tags deleted, 0 version time tags" in again.stdout
    assert len(registry.backend.read_audit(model)) == 3


def test_migrate_audit_refuses_a_malformed_tag_and_changes_nothing(local_stack: LocalStack) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    model = _model()
    v1 = registry.register(model, "s3://bucket/one", None)
    write_old_move(registry.backend, model, "champion", None, v1, at=1796000000.5)
    registry.backend.set_model_tag(model, "audit.1796600300.000000.1", "{not json")
    tags = registry.backend.get_model_tags(model)
    result = _cli(local_stack, "migrate-audit", model)
    assert result.returncode == 2 and "is not an audit entry" in result.stderr
    assert registry.backend.get_model_tags(model) == tags and registry.backend.read_audit(model) == []


def test_unreachable_mlflow_is_transient(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    registry = Registry(MlflowBackend("http://127.0.0.1:9"))
    with pytest.raises(Transient, match="MLflow"):
        registry.alias("any", "champion")


def test_a_deleted_audit_experiment_is_refused_with_the_way_out(local_stack: LocalStack) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    name = f"it-audit-{uuid.uuid4().hex[:8]}"
    client.delete_experiment(client.create_experiment(name))
    log = MlflowAuditLog(client, name)
    entry = AuditEntry("m", "live", None, "1", "test", "first", 1796000000.0)
    with pytest.raises(BadInput, match="is deleted: restore it"):
        log.append(entry)
    assert log.read("m") == []
