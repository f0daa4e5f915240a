"""TensorRT-LLM path, convert and build: the command lines, the engine check, and the refusal on a
machine without a GPU (exit 2, naming what is missing, before anything is read or written)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from deployment.trtllm import build, convert, gpu
from deployment.trtllm.commands import (
    BuildSettings,
    build_command,
    convert_command,
    engine_config,
)
from mlops.errors import BadInput
from tests.unit.moto_s3 import moto_store


def flags(argv: Sequence[str]) -> dict[str, str]:
    """--flag value pairs of a command line (multi-value flags keep their first value)."""
    found = {}
    for index, item in enumerate(argv):
        if item.startswith("--"):
            found[item] = argv[index + 1] if index + 1 < len(argv) else ""
    return found


def test_convert_command_of_the_llama_example() -> None:
    argv = convert_command(
        "/opt/trtllm/examples/llama/convert_checkpoint.py",
        Path("/w/merged"),
        Path("/w/ckpt"),
        dtype="float16",
        tp_size=2,
        python="python3",
    )
    assert argv[:2] == ["python3", "/opt/trtllm/examples/llama/convert_checkpoint.py"]
    assert flags(argv) == {
        "--model_dir": "/w/merged",
        "--output_dir": "/w/ckpt",
        "--dtype": "float16",
        "--tp_size": "2",
        "--pp_size": "1",
    }
    with pytest.raises(BadInput, match="dtype"):
        convert_command("c.py", Path("a"), Path("b"), dtype="auto")
    with pytest.raises(BadInput, match="tp_size"):
        convert_command("c.py", Path("a"), Path("b"), tp_size=0)


def test_build_command_with_the_default_settings() -> None:
    argv = build_command(Path("/w/ckpt"), Path("/w/engine"), BuildSettings())
    assert argv[0] == "trtllm-build"
    assert flags(argv) == {
        "--checkpoint_dir": "/w/ckpt",
        "--output_dir": "/w/engine",
        "--gemm_plugin": "auto",
        "--gpt_attention_plugin": "auto",
        "--max_batch_size": "8",
        "--max_input_len": "1024",
        "--max_seq_len": "2048",
        "--paged_kv_cache": "enable",
        "--remove_input_padding": "enable",
        "--context_fmha": "enable",
        "--workers": "1",
    }
    assert (
        "--lora_plugin" not in argv and "--max_num_tokens" not in argv
    )  # merged weights need no LoRA plugin


def test_build_command_from_the_step_config_with_a_lora_plugin() -> None:
    cfg = build.Config(
        checkpoint_uri="s3://w/ckpt",
        max_batch_size=16,
        max_input_len=512,
        max_seq_len=562,
        max_num_tokens=4096,
        gemm_plugin="float16",
        lora_plugin="float16",
        max_lora_rank=8,
        lora_target_modules="q_proj,k_proj,v_proj,o_proj,up_proj",
    )
    argv = build_command(Path("c"), Path("e"), build.settings(cfg))
    found = flags(argv)
    assert (found["--max_batch_size"], found["--max_input_len"], found["--max_seq_len"]) == (
        "16",
        "512",
        "562",
    )
    assert (found["--max_num_tokens"], found["--gemm_plugin"], found["--lora_plugin"]) == (
        "4096",
        "float16",
        "float16",
    )
    assert found["--max_lora_rank"] == "8"
    modules = argv[argv.index("--lora_target_modules") + 1 :]
    assert modules == ["attn_q", "attn_k", "attn_v", "attn_dense", "mlp_h_to_4h"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_seq_len": 1024}, "max_seq_len 1024 must exceed max_input_len 1024"),
        ({"gemm_plugin": "fp64"}, "gemm_plugin 'fp64'"),
        ({"paged_kv_cache": "on"}, "paged_kv_cache 'on' must be enable or disable"),
        ({"lora_plugin": "auto"}, "max_lora_rank >= 1"),
        (
            {"lora_plugin": "auto", "max_lora_rank": 8, "lora_target_modules": ("lm_head",)},
            "lora_target_modules",
        ),
        ({"max_batch_size": 0}, "max_batch_size must be >= 1"),
    ],
)
def test_contradictory_build_settings_are_bad_input(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        build_command(Path("c"), Path("e"), BuildSettings(**change))


def write_engine(folder: Path, **build_config: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    limits = {
        "max_batch_size": 8,
        "max_input_len": 1024,
        "max_seq_len": 2048,
        "max_beam_width": 1,
        **build_config,
    }
    (folder / "config.json").write_text(json.dumps({"version": "0.x", "build_config": limits}))
    (folder / "rank0.engine").write_bytes(b"\x00engine")
    return folder


def test_engine_config_reads_a_built_engine(tmp_path: Path) -> None:
    config = engine_config(write_engine(tmp_path / "engine", max_batch_size=4))
    assert config["build_config"]["max_batch_size"] == 4
    (tmp_path / "engine" / "rank0.engine").unlink()
    with pytest.raises(BadInput, match=r"no rank\*\.engine"):
        engine_config(tmp_path / "engine")
    with pytest.raises(BadInput, match="not a trtllm-build output"):
        engine_config(tmp_path / "nothing")
    bad = write_engine(tmp_path / "bad")
    (bad / "config.json").write_text(json.dumps({"build_config": {"max_batch_size": 0}}))
    with pytest.raises(BadInput, match=r"build_config\.max_batch_size"):
        engine_config(bad)


# --- the GPU preflight -----------------------------------------------------------------------------

NO_GPU = gpu.Environment(nvidia_smi=None, tensorrt_llm=False, executables={"trtllm-build": None})
GPU = gpu.Environment(
    nvidia_smi="/usr/bin/nvidia-smi",
    gpus=("NVIDIA H100 80GB HBM3",),
    tensorrt_llm=True,
    executables={"trtllm-build": "/usr/local/bin/trtllm-build"},
    files={"/app/convert_checkpoint.py": True},
)


def test_require_names_everything_missing() -> None:
    with pytest.raises(BadInput) as caught:
        gpu.require("deployment.trtllm.build", NO_GPU)
    message = str(caught.value)
    for part in (
        "needs a GPU node",
        "nvidia-smi is not on PATH",
        "tensorrt_llm is not installed",
        "trtllm-build is not on PATH",
    ):
        assert part in message
    gpu.require("deployment.trtllm.build", GPU)
    no_device = gpu.Environment(nvidia_smi="/usr/bin/nvidia-smi", gpus=(), tensorrt_llm=True)
    assert gpu.missing(no_device) == ["nvidia-smi lists no GPU"]


class NoStore:
    """An object store that must not be touched."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the store was used ({name}) before the GPU preflight refused")


def refusing_runner(argv: Sequence[str], what: str) -> None:
    raise AssertionError(f"{what} ran on a machine without a GPU")


@pytest.mark.parametrize(
    ("module", "config"),
    [
        (convert, convert.Config(merged_uri="s3://w/merged")),
        (build, build.Config(checkpoint_uri="s3://w/ckpt")),
    ],
    ids=["convert", "build"],
)
def test_gpu_steps_refuse_without_a_gpu_before_any_work(module: Any, config: Any) -> None:
    with pytest.raises(BadInput, match="needs a GPU node with TensorRT-LLM") as caught:
        module.run(config, NoStore(), probe=lambda **_: NO_GPU, runner=refusing_runner)
    assert "nvidia-smi" in str(caught.value) and "Nothing was done" in str(caught.value)


def test_on_this_machine_convert_and_build_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    # The real probe: this test machine has no NVIDIA GPU and no tensorrt_llm.
    environment = gpu.probe(executables=["trtllm-build"])
    if not gpu.missing(environment):
        pytest.skip("this machine has a GPU with TensorRT-LLM")
    assert convert.main(["--merged-uri=s3://w/merged"]) == 2
    assert build.main(["--checkpoint-uri=s3://w/ckpt"]) == 2
    err = capsys.readouterr().err
    assert err.count("needs a GPU node with TensorRT-LLM") == 2 and "tensorrt_llm is not installed" in err


def test_gpu_steps_run_the_commands_they_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With a GPU environment faked at the probe, the steps download, run and publish; the runner stands in.
    from mlops.storage import S3Url

    ran: list[list[str]] = []

    def fake_tool(argv: Sequence[str], what: str) -> None:
        ran.append(list(argv))
        found = flags(argv)
        if what == "convert_checkpoint.py":
            out = Path(found["--output_dir"])
            out.mkdir(parents=True)
            (out / "config.json").write_text("{}")
            (out / "rank0.safetensors").write_bytes(b"w")
        else:
            write_engine(Path(found["--output_dir"]), max_batch_size=int(found["--max_batch_size"]))

    with moto_store(monkeypatch, "run-1", "work") as store:
        merged_dir = tmp_path / "merged"
        merged_dir.mkdir()
        (merged_dir / "config.json").write_text("{}")
        store.publish_directory(merged_dir, S3Url.parse("s3://work/merged"))
        converted = convert.run(
            convert.Config(
                merged_uri="s3://work/merged", work_prefix="s3://work/t", convert_script="/app/c.py"
            ),
            store,
            probe=lambda **_: GPU,
            runner=fake_tool,
        )
        assert converted.outputs == {"checkpoint-uri": "s3://work/t/run-1/checkpoint"}
        built = build.run(
            build.Config(
                checkpoint_uri="s3://work/t/run-1/checkpoint", work_prefix="s3://work/t", max_batch_size=4
            ),
            store,
            probe=lambda **_: GPU,
            runner=fake_tool,
        )
        assert built.outputs["engine-uri"] == "s3://work/t/run-1/engine"
        assert built.outputs["max-batch-size"] == "4"
        assert store.is_committed(S3Url.parse("s3://work/t/run-1/engine"))
    assert [argv[1] if argv[0] != "trtllm-build" else argv[0] for argv in ran] == [
        "/app/c.py",
        "trtllm-build",
    ]
