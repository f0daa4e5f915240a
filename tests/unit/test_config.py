"""Config resolution: defaults < YAML < env < flags, and every kind of unknown key is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from mlops.config import StepConfig, build_parser, cli_flags, load_config, required_flags
from mlops.errors import BadInput


class Example(StepConfig):
    model_name: str = Field("resnet", description="model")
    threshold: float = Field(0.9, description="fraction")
    epochs: int = Field(3, description="epochs")
    enabled: bool = Field(True, description="flag")


def test_defaults_only() -> None:
    cfg = load_config(Example, [], env={})
    assert (cfg.model_name, cfg.threshold, cfg.epochs, cfg.enabled) == ("resnet", 0.9, 3, True)


def test_precedence_yaml_then_env_then_flags(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("threshold: 0.5\nepochs: 7\nmodel-name: from-yaml\n")
    env = {"MLOPS_EPOCHS": "9", "MLOPS_MODEL_NAME": "from-env"}
    cfg = load_config(Example, ["--config", str(config_file), "--model-name=from-flag"], env=env)
    assert cfg.threshold == 0.5  # yaml beats default
    assert cfg.epochs == 9  # env beats yaml
    assert cfg.model_name == "from-flag"  # flag beats env


def test_bool_and_numbers_are_coerced_from_strings() -> None:
    cfg = load_config(Example, ["--enabled=false", "--epochs", "4"], env={})
    assert cfg.enabled is False and cfg.epochs == 4


def test_unknown_flag_is_an_error() -> None:
    with pytest.raises(BadInput, match=r"unknown option.*--treshold"):
        load_config(Example, ["--treshold=0.5"], env={})


def test_unknown_yaml_key_is_an_error(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("treshold: 0.5\n")
    with pytest.raises(BadInput, match=r"unknown key.*treshold"):
        load_config(Example, ["--config", str(config_file)], env={})


def test_wrong_type_names_the_flag() -> None:
    with pytest.raises(BadInput, match="--epochs"):
        load_config(Example, ["--epochs=three"], env={})


def test_missing_config_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        load_config(Example, ["--config", str(tmp_path / "nope.yaml")], env={})


def test_unrelated_env_is_ignored() -> None:
    cfg = load_config(Example, [], env={"MLOPS_OUTPUTS_DIR": "/x", "MLOPS_UNKNOWN": "1"})
    assert cfg.epochs == 3


def test_cli_flags_lists_every_field() -> None:
    assert cli_flags(Example) == {"--model-name", "--threshold", "--epochs", "--enabled", "--config"}


def test_malformed_command_line_is_bad_input_not_a_process_exit() -> None:
    with pytest.raises(BadInput, match=r"--threshold: expected one argument.*--flag=-1"):
        load_config(Example, ["--threshold", "-1e-5"], env={})


class Deploy(StepConfig):
    model_uri: str = Field(description="the model to serve (export's model-uri output)")
    version: int = Field(ge=1, description="the release to serve")
    replicas: int = Field(2, description="replicas")


def test_a_missing_required_field_names_its_flag_and_says_what_it_is() -> None:
    with pytest.raises(BadInput) as caught:
        load_config(Deploy, ["--version=3"], env={})
    assert str(caught.value) == "--model-uri is required: the model to serve (export's model-uri output)"
    assert caught.value.exit_code == 2


def test_every_missing_required_field_is_named_at_once() -> None:
    with pytest.raises(BadInput, match=r"--model-uri is required: .*; --version is required: the release"):
        load_config(Deploy, [], env={})


@pytest.mark.parametrize("empty", ["", "   "])
def test_a_required_field_given_empty_is_missing(empty: str) -> None:
    """An Argo parameter that resolved to "" passes the flag with no value: still not given."""
    with pytest.raises(BadInput, match=r"^--model-uri is required"):
        load_config(Deploy, [f"--model-uri={empty}", "--version=3"], env={})
    with pytest.raises(BadInput, match=r"^--version is required"):
        load_config(Deploy, ["--model-uri=s3://m/1"], env={"MLOPS_VERSION": empty})


def test_required_fields_come_from_any_source(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model-uri: s3://m/from-yaml\n")
    cfg = load_config(Deploy, ["--config", str(config_file)], env={"MLOPS_VERSION": "4"})
    assert (cfg.model_uri, cfg.version, cfg.replicas) == ("s3://m/from-yaml", 4, 2)


def test_a_required_field_is_still_validated() -> None:
    with pytest.raises(BadInput, match="--version: Input should be greater than or equal to 1"):
        load_config(Deploy, ["--model-uri=s3://m/1", "--version=0"], env={})


def test_required_flags_are_flags_lint_accepts() -> None:
    assert required_flags(Deploy) == {"--model-uri", "--version"}
    assert required_flags(Deploy) < cli_flags(Deploy)
    assert required_flags(Example) == set()


def test_help_lists_the_required_flags_apart() -> None:
    shown = " ".join(build_parser(Deploy, "python -m x", None).format_help().split())  # unwrapped
    required, optional = shown.split("required (as a flag, in the env or in --config):")[1].split("optional:")
    assert "--model-uri MODEL_URI" in required and "(required; env MLOPS_MODEL_URI)" in required
    assert "--version VERSION" in required
    assert "--replicas REPLICAS" in optional and "(default: 2; env MLOPS_REPLICAS)" in optional


def test_missing_and_invalid_values_are_reported_together() -> None:
    with pytest.raises(BadInput) as caught:
        load_config(Deploy, ["--replicas=many"], env={})
    assert str(caught.value).startswith("--model-uri is required: the model to serve")
    assert "; --version is required: the release to serve; invalid configuration: --replicas:" in str(
        caught.value
    )
    assert str(caught.value).count("--model-uri") == 1  # once, as missing: not again as a validation error
