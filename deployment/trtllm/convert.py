"""Step (GPU): convert the merged HF checkpoint into a TensorRT-LLM checkpoint.

Runs TensorRT-LLM's `convert_checkpoint.py` of the llama example (Mistral is converted by it)
as `python convert_checkpoint.py --model_dir <merged> --output_dir <ckpt> --dtype D --tp_size T
--pp_size P` and publishes the result to `<work-prefix>/<workflow>/checkpoint/`.

Needs nvidia-smi with a GPU, the `tensorrt_llm` package and the script: without any of them it
stops with exit 2 before downloading anything, naming what is missing.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from deployment.trtllm import gpu
from deployment.trtllm.commands import convert_command, run_command
from deployment.trtllm.settings import TrtllmSettings, work_url
from mlops import step
from mlops.errors import BadInput
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url


class Config(TrtllmSettings):
    merged_uri: str = Field(description="the merged HF checkpoint (merge's merged-uri output)")
    convert_script: str = Field(
        "/app/tensorrt_llm/examples/models/core/llama/convert_checkpoint.py",
        description="TensorRT-LLM's llama/mistral convert_checkpoint.py (examples/llama/ in older releases)",
    )
    dtype: Literal["bfloat16", "float16", "float32"] = Field(
        "bfloat16", description="dtype of the TensorRT-LLM checkpoint"
    )
    tp_size: int = Field(1, ge=1, description="tensor parallelism: GPUs one engine spans")
    pp_size: int = Field(1, ge=1, description="pipeline parallelism")


def command(cfg: Config, model_dir: Path, output_dir: Path) -> list[str]:
    return convert_command(
        cfg.convert_script, model_dir, output_dir, dtype=cfg.dtype, tp_size=cfg.tp_size, pp_size=cfg.pp_size
    )


def run(
    cfg: Config,
    store: S3Store | None = None,
    probe: Callable[..., gpu.Environment] = gpu.probe,
    runner: Callable[[Sequence[str], str], None] = run_command,
) -> StepResult:
    gpu.require("deployment.trtllm.convert", probe(files=[cfg.convert_script]))
    store = store or S3Store()
    target = work_url(cfg, "checkpoint")
    with tempfile.TemporaryDirectory(prefix="trtllm-convert-") as tmp:
        workdir = Path(tmp)
        merged = workdir / "merged"
        store.download_committed(S3Url.parse(cfg.merged_uri), merged, what="merged checkpoint")
        output = workdir / "checkpoint"
        runner(command(cfg, merged, output), "convert_checkpoint.py")
        if not (output / "config.json").is_file():
            raise BadInput(f"convert_checkpoint.py wrote no config.json to {output}")
        manifest = store.publish_directory(output, target)
    return StepResult(
        outputs={"checkpoint-uri": str(target)},
        summary=f"{cfg.merged_uri} converted ({cfg.dtype}, tp {cfg.tp_size}, pp {cfg.pp_size}): "
        f"{len(manifest)} files at {target}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
