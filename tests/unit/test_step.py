"""The step shape: outputs written where Argo reads them, errors mapped to exit codes 0/2/3/1.

This second paragraph is not part of `--help`: a step's description is its docstring's first one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import EXIT_TRANSIENT, AliasConflict, BadInput, MlopsError, Transient
from mlops.step import StepResult


class Cfg(StepConfig):
    mode: str = Field("ok", description="what run does")


def run(cfg: Cfg) -> StepResult:
    if cfg.mode == "bad":
        raise BadInput("accuracy 93.0 is a percent")
    if cfg.mode == "transient":
        raise Transient("S3 answered 503")
    if cfg.mode == "refused":
        raise ConnectionRefusedError("connection refused")
    if cfg.mode == "bug":
        raise ZeroDivisionError("oops")
    return StepResult(outputs={"verdict": "pass", "version": "7"}, summary="champion -> v7")


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(step.OUTPUTS_ENV, str(tmp_path / "out"))
    return tmp_path / "out"


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failing_with(raise_it: Callable[[], object]) -> Callable[[Cfg], StepResult]:
    def failing_run(cfg: Cfg) -> StepResult:
        raise_it()
        raise AssertionError("expected the call to raise")

    return failing_run


def test_success_writes_each_output_file(outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert step.main(Cfg, run, ["--mode=ok"]) == 0
    assert (outputs / "verdict").read_text() == "pass"
    assert (outputs / "version").read_text() == "7"
    said = capsys.readouterr().out
    assert "[tests.unit.test_step] done" in said and "champion -> v7" in said


@pytest.mark.parametrize(
    ("mode", "code", "message"),
    [
        ("bad", 2, "bad input: accuracy 93.0"),
        ("transient", 3, "503"),
        ("refused", 3, "refused"),
        ("bug", 1, "oops"),
    ],
)
def test_errors_map_to_exit_codes_and_write_no_outputs(
    outputs: Path, capsys: pytest.CaptureFixture[str], mode: str, code: int, message: str
) -> None:
    assert step.main(Cfg, run, [f"--mode={mode}"]) == code
    assert message in capsys.readouterr().err
    assert not outputs.exists()


def test_unknown_flag_is_exit_2(outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert step.main(Cfg, run, ["--mood=ok"]) == 2
    assert "--mood" in capsys.readouterr().err


# --- what --help shows: derived from the module that defines `run` -------------------------------


def test_prog_and_description_come_from_the_run_functions_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert step.main(Cfg, run, ["--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m tests.unit.test_step ")
    flat = " ".join(shown.split())
    assert "The step shape: outputs written where Argo reads them, errors mapped to exit codes" in flat
    assert "This second paragraph" not in flat
    assert "--mode MODE" in flat


def test_prog_and_description_can_still_be_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert step.main(Cfg, run, ["--help"], prog="python -m other.step", description="Another step.") == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m other.step ")
    assert "Another step." in shown and "The step shape" not in shown


def test_a_module_run_as_main_is_named_by_its_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m pkg.mod` runs the module as `__main__`; its spec still knows the real name."""
    import sys
    import types
    from importlib.machinery import ModuleSpec

    module = types.ModuleType("__main__", "Step: do a thing.\n\nDetails.")
    module.__spec__ = ModuleSpec("training.example.thing", None)
    monkeypatch.setitem(sys.modules, "__main__", module)

    def main_run(cfg: Cfg) -> StepResult:
        return StepResult()

    main_run.__module__ = "__main__"
    assert step._step_module(main_run) == ("training.example.thing", "Step: do a thing.\n\nDetails.")
    assert step.first_paragraph(module.__doc__) == "Step: do a thing."


# --- the exit code is the error's own -------------------------------------------------------------


class Overloaded(MlopsError):
    """Not a Transient, yet says exit 3: the code comes from the error, not from its class tree."""

    exit_code = EXIT_TRANSIENT


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (AliasConflict("live moved to v9 meanwhile"), 2, "bad input: live moved"),
        (Overloaded("queue full"), 3, "transient failure (retryable): queue full"),
        (MlopsError("a contract broken"), 1, "failed: a contract broken"),
    ],
)
def test_exit_code_is_the_errors_own(
    outputs: Path, capsys: pytest.CaptureFixture[str], error: MlopsError, code: int, said: str
) -> None:
    def raise_error() -> None:
        raise error

    assert step.main(Cfg, failing_with(raise_error), []) == code
    assert said in capsys.readouterr().err


# --- a required input ------------------------------------------------------------------------------


class NeedsModel(StepConfig):
    model_uri: str = Field(description="the model to serve (the export step's model-uri output)")
    replicas: int = Field(1, description="how many")


def serve(cfg: NeedsModel) -> StepResult:
    return StepResult(outputs={"served": cfg.model_uri})


@pytest.mark.parametrize(
    "argv", [[], ["--model-uri="], ["--model-uri", "  "]], ids=["absent", "empty", "blank"]
)
def test_a_missing_required_flag_is_exit_2_naming_it_and_nothing_runs(
    outputs: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert step.main(NeedsModel, serve, argv) == 2
    said = capsys.readouterr()
    assert "bad input: --model-uri is required: the model to serve" in said.err
    assert "config:" not in said.out  # stopped before run
    assert not outputs.exists()


def test_a_required_field_given_by_env_runs(outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_MODEL_URI", "s3://models/m/1")
    assert step.main(NeedsModel, serve, []) == 0
    assert (outputs / "served").read_text() == "s3://models/m/1"


def test_help_marks_the_required_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert step.main(NeedsModel, serve, ["--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # as one line, however argparse wrapped it
    required, optional = shown.split("required (as a flag, in the env or in --config):")[1].split("optional:")
    assert "--model-uri MODEL_URI" in required and "(required; env MLOPS_MODEL_URI)" in required
    assert "--replicas" in optional and "default: 1" in optional


# --- transport faults of the real client libraries are transient (exit 3) --------------------------


def httpx_refused() -> None:
    import httpx

    httpx.get(f"http://127.0.0.1:{closed_port()}/health", timeout=5)


def requests_refused() -> None:
    import requests

    requests.get(f"http://127.0.0.1:{closed_port()}/health", timeout=5)


def botocore_refused() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5),
    )
    client.list_buckets()


def botocore_read_timeout() -> None:
    from botocore.exceptions import ReadTimeoutError

    raise ReadTimeoutError(endpoint_url="http://s3:9000/bucket/key")


def httpx_read_timeout() -> None:
    import httpx

    raise httpx.ReadTimeout("timed out reading the answer")


@pytest.mark.parametrize(
    ("fault", "name"),
    [
        (httpx_refused, "ConnectError"),
        (httpx_read_timeout, "ReadTimeout"),
        (requests_refused, "ConnectionError"),
        (botocore_refused, "EndpointConnectionError"),
        (botocore_read_timeout, "ReadTimeoutError"),
    ],
)
def test_transport_faults_of_real_clients_are_exit_3(
    outputs: Path, capsys: pytest.CaptureFixture[str], fault: Callable[[], None], name: str
) -> None:
    assert step.main(Cfg, failing_with(fault), []) == 3
    assert f"transient failure (retryable): {name}" in capsys.readouterr().err


def test_mlflow_client_with_its_server_down_is_exit_3(
    outputs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside `mlops.tracking.mlflow_errors` too: the client wraps the refusal in an MlflowException."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

    def read_a_run() -> None:
        from mlflow import MlflowClient

        MlflowClient(f"http://127.0.0.1:{closed_port()}").get_run("0123456789abcdef")

    assert step.main(Cfg, failing_with(read_a_run), []) == 3
    assert "MLflow unreachable" in capsys.readouterr().err


def test_an_error_merely_named_like_a_transport_fault_is_a_failure(
    outputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Classification is by class, not by name: a step's own `EndpointConnectionError` is a bug (exit 1)."""

    class EndpointConnectionError(Exception):
        pass

    def raise_it() -> None:
        raise EndpointConnectionError("not botocore's")

    assert step.main(Cfg, failing_with(raise_it), []) == 1
    assert "failed: EndpointConnectionError: not botocore's" in capsys.readouterr().err
    assert not isinstance(step.classify(ValueError("x")), Transient)
