"""mlops.tracking: MLflow errors mapped to exit codes, run reads, JSON artifacts (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlops import tracking
from mlops.errors import BadInput, Transient


def mlflow_exception(message: str, code: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException(message, error_code=getattr(databricks_pb2, code))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("RESOURCE_DOES_NOT_EXIST", BadInput),
        ("INVALID_PARAMETER_VALUE", BadInput),
        ("TEMPORARILY_UNAVAILABLE", Transient),
        ("INTERNAL_ERROR", Transient),
    ],
)
def test_mlflow_errors_map_to_exit_codes(code: str, expected: type[Exception]) -> None:
    with (
        pytest.raises(expected, match=r"reading run r1: .*boom") as caught,
        tracking.mlflow_errors("reading run r1"),
    ):
        raise mlflow_exception("boom\nsecond line", code)
    assert "second line" not in str(caught.value)


def test_unreachable_server_is_transient_and_other_errors_pass_through() -> None:
    with pytest.raises(Transient, match="MLflow unreachable"), tracking.mlflow_errors("x"):
        raise mlflow_exception("API request to http://mlflow failed", "BAD_REQUEST")
    with pytest.raises(ValueError, match="not mlflow"), tracking.mlflow_errors("x"):
        raise ValueError("not mlflow")


class Runs:
    """`get_run` of an MlflowClient over a dict of run statuses."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses

    def get_run(self, run_id: str) -> Any:
        if run_id not in self.statuses:
            raise mlflow_exception(f"Run '{run_id}' not found", "RESOURCE_DOES_NOT_EXIST")
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=self.statuses[run_id]))


def test_get_run_requires_an_id_an_existing_run_and_a_finished_one() -> None:
    client = Runs({"done": "FINISHED", "broken": "FAILED"})
    assert tracking.get_run(client, "done").info.run_id == "done"
    with pytest.raises(BadInput, match="--run-id is required"):
        tracking.get_run(client, "")
    with pytest.raises(BadInput, match="reading run nope: Run 'nope' not found"):
        tracking.get_run(client, "nope")
    with pytest.raises(BadInput, match="run broken has status FAILED, not FINISHED"):
        tracking.get_run(client, "broken")
    assert tracking.get_run(client, "broken", require_finished=False).info.status == "FAILED"


def test_log_json_logs_the_data_under_its_name() -> None:
    logged: list[tuple[str, str, str]] = []

    class Client:
        def log_artifact(self, run_id: str, local_path: str, artifact_path: str) -> None:
            logged.append((run_id, Path(local_path).name, Path(local_path).read_text()))
            assert artifact_path == "gates"

    tracking.log_json(Client(), "r1", {"passed": True, "b": [1]}, "gates", "quality.json")
    ((run_id, name, text),) = logged
    assert (run_id, name) == ("r1", "quality.json")
    assert json.loads(text) == {"passed": True, "b": [1]}


def test_artifact_uri_joins_cleanly() -> None:
    run = SimpleNamespace(info=SimpleNamespace(artifact_uri="mlflow-artifacts:/1/abc/artifacts/"))
    assert tracking.artifact_uri(run, "/checkpoint/") == "mlflow-artifacts:/1/abc/artifacts/checkpoint"


class TagRecorder:
    """FAKE (unit tests only): the `set_tag` of an MLflow client, kept in a dict."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.tags: dict[str, str] = {}
        self.fail_with = fail_with

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.tags[f"{run_id}:{key}"] = value


def test_tag_verdict_records_the_verdict_cut_to_the_limit_and_the_registered_version() -> None:
    client = TagRecorder()
    tracking.tag_verdict(client, "r1", "gate.loss", "fail", "x" * (tracking.TAG_VALUE_LIMIT + 1))
    assert client.tags == {"r1:gate.loss": "fail", "r1:gate.loss.reason": "x" * tracking.TAG_VALUE_LIMIT}
    tracking.tag_verdict(client, "r2", "gate.quality", "pass", "ok", registered="m/3")
    assert client.tags["r2:registered_version"] == "m/3" and client.tags["r2:gate.quality"] == "pass"


def test_tag_verdict_on_an_unreachable_server_is_transient() -> None:
    client = TagRecorder(fail_with=mlflow_exception("down", "TEMPORARILY_UNAVAILABLE"))
    with pytest.raises(Transient):
        tracking.tag_verdict(client, "r1", "gate.loss", "pass", "ok")
