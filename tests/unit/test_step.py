"""The step shape: outputs written where Argo reads them, errors mapped to exit codes 0/2/3/1."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import BadInput, Transient
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


def test_success_writes_each_output_file(outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert step.main(Cfg, run, ["--mode=ok"]) == 0
    assert (outputs / "verdict").read_text() == "pass"
    assert (outputs / "version").read_text() == "7"
    assert "champion -> v7" in capsys.readouterr().out


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


def test_library_transport_errors_are_transient() -> None:
    class EndpointConnectionError(Exception):
        pass

    assert isinstance(step.classify(EndpointConnectionError("x")), Transient)
    assert not isinstance(step.classify(ValueError("x")), Transient)
