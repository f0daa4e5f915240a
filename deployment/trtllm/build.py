"""Step (GPU): build the TensorRT engine from the TensorRT-LLM checkpoint with `trtllm-build`.

`trtllm-build --checkpoint_dir <ckpt> --output_dir <engine> --gemm_plugin auto
--gpt_attention_plugin auto --max_batch_size B --max_input_len I --max_seq_len S
--paged_kv_cache enable --remove_input_padding enable --context_fmha enable --workers W`
(+ `--max_num_tokens`, and `--lora_plugin --max_lora_rank --lora_target_modules` only when
asked for: the adapter is already merged into the weights). The engine (rank*.engine +
config.json) is published to `<work-prefix>/<workflow>/engine/`; its limits are outputs.

Needs nvidia-smi with a GPU, `tensorrt_llm` and `trtllm-build`: without any of them it stops
with exit 2 before downloading anything, naming what is missing.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import Field

from deployment.trtllm import gpu
from deployment.trtllm.commands import BuildSettings, build_command, engine_config, run_command
from deployment.trtllm.settings import TrtllmSettings, work_url
from mlops import step
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url

TRTLLM_BUILD = "trtllm-build"


class Config(TrtllmSettings):
    checkpoint_uri: str = Field(description="the TensorRT-LLM checkpoint (convert's checkpoint-uri output)")
    max_batch_size: int = Field(8, ge=1, description="most requests the engine schedules at once")
    max_input_len: int = Field(1024, ge=1, description="longest prompt in tokens")
    max_seq_len: int = Field(2048, ge=2, description="longest prompt + answer in tokens")
    max_num_tokens: int = Field(
        0, ge=0, description="batched tokens after padding removal (0 = trtllm-build's)"
    )
    gemm_plugin: str = Field("auto", description="GEMM plugin: auto (checkpoint dtype), a dtype, or disable")
    gpt_attention_plugin: str = Field("auto", description="attention plugin: auto, a dtype, or disable")
    lora_plugin: str = Field(
        "disable", description="LoRA plugin for unmerged adapters: disable (merged weights), auto or a dtype"
    )
    max_lora_rank: int = Field(0, ge=0, description="largest adapter rank (with a LoRA plugin)")
    lora_target_modules: str = Field(
        "", description="comma-separated peft projections (q_proj,...) the LoRA plugin serves"
    )
    workers: int = Field(1, ge=1, description="parallel builds (one per rank; GPUs on this node)")


def settings(cfg: Config) -> BuildSettings:
    return BuildSettings(
        max_batch_size=cfg.max_batch_size,
        max_input_len=cfg.max_input_len,
        max_seq_len=cfg.max_seq_len,
        max_num_tokens=cfg.max_num_tokens,
        gemm_plugin=cfg.gemm_plugin,
        gpt_attention_plugin=cfg.gpt_attention_plugin,
        lora_plugin=cfg.lora_plugin,
        max_lora_rank=cfg.max_lora_rank,
        lora_target_modules=tuple(m.strip() for m in cfg.lora_target_modules.split(",") if m.strip()),
        workers=cfg.workers,
    )


def run(
    cfg: Config,
    store: S3Store | None = None,
    probe: Callable[..., gpu.Environment] = gpu.probe,
    runner: Callable[[Sequence[str], str], None] = run_command,
) -> StepResult:
    build = settings(cfg)
    build.check()  # a contradictory shape is bad input on any machine
    gpu.require("deployment.trtllm.build", probe(executables=[TRTLLM_BUILD]))
    store = store or S3Store()
    target = work_url(cfg, "engine")
    with tempfile.TemporaryDirectory(prefix="trtllm-build-") as tmp:
        workdir = Path(tmp)
        checkpoint = workdir / "checkpoint"
        store.download_committed(S3Url.parse(cfg.checkpoint_uri), checkpoint, what="checkpoint")
        output = workdir / "engine"
        runner(build_command(checkpoint, output, build, TRTLLM_BUILD), TRTLLM_BUILD)
        limits = engine_config(output)["build_config"]
        manifest = store.publish_directory(output, target)
    return StepResult(
        outputs={
            "engine-uri": str(target),
            "max-batch-size": str(limits["max_batch_size"]),
            "max-input-len": str(limits["max_input_len"]),
            "max-seq-len": str(limits["max_seq_len"]),
        },
        summary=f"engine built from {cfg.checkpoint_uri}: {len(manifest)} files at {target} "
        f"(batch {limits['max_batch_size']}, input {limits['max_input_len']}, seq {limits['max_seq_len']})",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
