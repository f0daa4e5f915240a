"""Every ResNet step's Config: strict keys, typed values, fractions never percents."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.config import StepConfig, flag_name, load_config, required_fields
from mlops.errors import EXIT_BAD_INPUT, BadInput
from training.resnet import export_onnx, prepare_data, quality_gate, train, validate_onnx

STEPS = [prepare_data, train, quality_gate, export_onnx, validate_onnx]
CONFIGS = [pytest.param(m.Config, id=m.__name__.rsplit(".", 1)[-1]) for m in STEPS]
MAINS = [pytest.param(m.main, id=m.__name__.rsplit(".", 1)[-1]) for m in STEPS]


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_defaults_load(config_cls: type[StepConfig]) -> None:
    required = {name: "given" for name in required_fields(config_cls)}  # the inputs without a default
    cfg = load_config(config_cls, [f"{flag_name(name)}=given" for name in required], env={})
    assert cfg.model_dump() == config_cls(**required).model_dump()


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_unknown_flag_is_bad_input(config_cls: type[StepConfig]) -> None:
    with pytest.raises(BadInput, match=r"unknown option.*--no-such-flag") as caught:
        load_config(config_cls, ["--no-such-flag=1"], env={})
    assert caught.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_unknown_yaml_key_is_bad_input(config_cls: type[StepConfig], tmp_path: Path) -> None:
    config_file = tmp_path / "step.yaml"
    config_file.write_text("no_such_key: 1\n")
    with pytest.raises(BadInput, match=r"unknown key\(s\) \['no_such_key'\]"):
        load_config(config_cls, ["--config", str(config_file)], env={})


@pytest.mark.parametrize("main", MAINS)
def test_main_exits_2_on_an_unknown_flag_before_any_work(main, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-flag"]) == EXIT_BAD_INPUT
    assert "--no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("threshold", ["90", "93.5", "100"])
def test_quality_gate_threshold_as_percent_is_bad_input_with_hint(threshold: str) -> None:
    with pytest.raises(BadInput, match=r"looks like a percent; give a fraction 0\.\.1"):
        load_config(quality_gate.Config, ["--threshold", threshold], env={})


def test_quality_gate_threshold_from_env_and_yaml_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"--threshold.*looks like a percent"):
        load_config(quality_gate.Config, [], env={"MLOPS_THRESHOLD": "85"})
    config_file = tmp_path / "gate.yaml"
    config_file.write_text("threshold: 90\n")
    with pytest.raises(BadInput, match="looks like a percent"):
        load_config(quality_gate.Config, ["--config", str(config_file)], env={})


def test_quality_gate_threshold_nan_and_negative_are_bad_input() -> None:
    with pytest.raises(BadInput, match="not a finite number"):
        load_config(quality_gate.Config, ["--threshold", "nan"], env={})
    with pytest.raises(BadInput, match=r"outside 0\.\.1"):
        load_config(quality_gate.Config, ["--threshold", "-0.1"], env={})


def test_quality_gate_fraction_threshold_is_kept() -> None:
    assert load_config(quality_gate.Config, ["--run-id=r1", "--threshold", "0.85"], env={}).threshold == 0.85


def test_quality_gate_main_exits_2_on_a_percent(capsys: pytest.CaptureFixture[str]) -> None:
    assert quality_gate.main(["--run-id", "abc", "--threshold=90"]) == EXIT_BAD_INPUT
    assert "looks like a percent" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config_cls", "argv", "flag"),
    [
        (prepare_data.Config, ["--val-fraction", "0"], "--val-fraction"),
        (prepare_data.Config, ["--image-size", "4"], "--image-size"),
        (train.Config, ["--epochs", "three"], "--epochs"),
        (train.Config, ["--label-smoothing", "1.0"], "--label-smoothing"),
        (train.Config, ["--learning-rate", "0"], "--learning-rate"),
        (export_onnx.Config, ["--opset", "11"], "--opset"),
        (export_onnx.Config, ["--dynamic-batching", "maybe"], "--dynamic-batching"),
        (validate_onnx.Config, ["--tolerance=-1e-5"], "--tolerance"),
        (validate_onnx.Config, ["--samples", "0"], "--samples"),
    ],
)
def test_out_of_range_values_name_their_flag(
    config_cls: type[StepConfig], argv: list[str], flag: str
) -> None:
    with pytest.raises(BadInput, match=f"invalid configuration: {flag}:"):
        load_config(config_cls, argv, env={})


def test_flags_beat_env() -> None:
    env = {"MLOPS_EPOCHS": "2", "MLOPS_SEED": "7", "MLOPS_DATASET_URI": "s3://d/dataset.tar.gz"}
    cfg = load_config(train.Config, ["--epochs", "5"], env=env)
    assert (cfg.epochs, cfg.seed) == (5, 7)
