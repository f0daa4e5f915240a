"""The TensorRT-LLM command lines, built from settings, and the one place that runs them.

Flags follow TensorRT-LLM's documentation: `convert_checkpoint.py` of the llama example (which
also converts Mistral) takes `--model_dir --output_dir --dtype --tp_size --pp_size`;
`trtllm-build` (https://nvidia.github.io/TensorRT-LLM/commands/trtllm-build.html) takes
`--checkpoint_dir --output_dir --max_batch_size --max_input_len --max_seq_len --max_num_tokens`,
the plugins `--gemm_plugin --gpt_attention_plugin` ("auto" = the checkpoint's dtype, a dtype, or
"disable"), `--paged_kv_cache --remove_input_padding --context_fmha` (enable/disable), and for
serving unmerged adapters `--lora_plugin --max_lora_rank --lora_target_modules` (the module
names of the LoRA guide, https://nvidia.github.io/TensorRT-LLM/advanced/lora.html).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import BadInput, MlopsError

DTYPES = ("auto", "float16", "bfloat16", "float32")
PLUGIN_VALUES = ("auto", "float16", "bfloat16", "float32", "disable")
SWITCH = ("enable", "disable")
# peft's projection names -> TensorRT-LLM's LoRA module names (attention dense = o_proj; in the
# gated MLP, h_to_4h is the up projection and 4h_to_h the down projection)
LORA_MODULES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_dense",
    "gate_proj": "mlp_gate",
    "up_proj": "mlp_h_to_4h",
    "down_proj": "mlp_4h_to_h",
}


def convert_command(
    script: str,
    model_dir: Path,
    output_dir: Path,
    *,
    dtype: str = "bfloat16",
    tp_size: int = 1,
    pp_size: int = 1,
    python: str = sys.executable,
) -> list[str]:
    """`python convert_checkpoint.py`: a HF checkpoint -> a TensorRT-LLM checkpoint (one rank per GPU)."""
    if dtype not in DTYPES[1:]:
        raise BadInput(f"convert dtype {dtype!r} must be one of {', '.join(DTYPES[1:])}")
    if tp_size < 1 or pp_size < 1:
        raise BadInput(f"tp_size {tp_size} and pp_size {pp_size} must be >= 1")
    return [
        python,
        script,
        "--model_dir",
        str(model_dir),
        "--output_dir",
        str(output_dir),
        "--dtype",
        dtype,
        "--tp_size",
        str(tp_size),
        "--pp_size",
        str(pp_size),
    ]


@dataclass(frozen=True)
class BuildSettings:
    """What `trtllm-build` is asked for; the limits end up in the engine's config.json."""

    max_batch_size: int = 8
    max_input_len: int = 1024
    max_seq_len: int = 2048
    max_num_tokens: int = 0  # 0: trtllm-build's default
    gemm_plugin: str = "auto"
    gpt_attention_plugin: str = "auto"
    paged_kv_cache: str = "enable"
    remove_input_padding: str = "enable"
    context_fmha: str = "enable"
    lora_plugin: str = "disable"  # the adapter is merged into the weights: no LoRA plugin needed
    max_lora_rank: int = 0
    lora_target_modules: tuple[str, ...] = ()
    workers: int = 1

    def check(self) -> None:
        problems = []
        for name in ("max_batch_size", "max_input_len", "max_seq_len", "workers"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.max_seq_len <= self.max_input_len:
            problems.append(
                f"max_seq_len {self.max_seq_len} must exceed max_input_len {self.max_input_len} "
                "(it counts the prompt and the generated tokens)"
            )
        if self.max_num_tokens < 0:
            problems.append("max_num_tokens must be >= 0 (0 = trtllm-build's default)")
        for name in ("gemm_plugin", "gpt_attention_plugin", "lora_plugin"):
            if getattr(self, name) not in PLUGIN_VALUES:
                problems.append(f"{name} {getattr(self, name)!r} must be one of {', '.join(PLUGIN_VALUES)}")
        for name in ("paged_kv_cache", "remove_input_padding", "context_fmha"):
            if getattr(self, name) not in SWITCH:
                problems.append(f"{name} {getattr(self, name)!r} must be enable or disable")
        if self.lora_plugin != "disable":
            if self.max_lora_rank < 1:
                problems.append("a LoRA plugin needs max_lora_rank >= 1")
            unknown = sorted(set(self.lora_target_modules) - set(LORA_MODULES))
            if unknown or not self.lora_target_modules:
                problems.append(
                    f"a LoRA plugin needs lora_target_modules from {', '.join(LORA_MODULES)} (got {unknown or 'none'})"
                )
        if problems:
            raise BadInput("invalid engine build settings: " + "; ".join(problems))


def build_command(
    checkpoint_dir: Path, output_dir: Path, settings: BuildSettings, executable: str = "trtllm-build"
) -> list[str]:
    """`trtllm-build`: a TensorRT-LLM checkpoint -> serialized engine(s) + config.json."""
    settings.check()
    argv = [
        executable,
        "--checkpoint_dir",
        str(checkpoint_dir),
        "--output_dir",
        str(output_dir),
        "--gemm_plugin",
        settings.gemm_plugin,
        "--gpt_attention_plugin",
        settings.gpt_attention_plugin,
        "--max_batch_size",
        str(settings.max_batch_size),
        "--max_input_len",
        str(settings.max_input_len),
        "--max_seq_len",
        str(settings.max_seq_len),
        "--paged_kv_cache",
        settings.paged_kv_cache,
        "--remove_input_padding",
        settings.remove_input_padding,
        "--context_fmha",
        settings.context_fmha,
        "--workers",
        str(settings.workers),
    ]
    if settings.max_num_tokens:
        argv += ["--max_num_tokens", str(settings.max_num_tokens)]
    if settings.lora_plugin != "disable":
        argv += [
            "--lora_plugin",
            settings.lora_plugin,
            "--max_lora_rank",
            str(settings.max_lora_rank),
            "--lora_target_modules",
            *(LORA_MODULES[m] for m in settings.lora_target_modules),
        ]
    return argv


def run_command(argv: Sequence[str], what: str, cwd: Path | None = None) -> None:
    """Run a tool with its output streaming to the log; a non-zero exit fails the step (exit 1)."""
    print(f"running: {' '.join(argv)}", flush=True)
    try:
        done = subprocess.run(list(argv), cwd=cwd, check=False)
    except OSError as exc:
        raise BadInput(f"{what}: cannot start {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise MlopsError(f"{what} failed with exit code {done.returncode} (see the log above)")


def engine_config(engine_dir: Path) -> dict[str, Any]:
    """The engine's config.json, checked to describe a built engine with its rank files present."""
    path = engine_dir / "config.json"
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is missing or unreadable: not a trtllm-build output ({exc})") from exc
    build = config.get("build_config")
    if not isinstance(build, dict):
        raise BadInput(f"{path} has no build_config: not a trtllm-build output")
    for name in ("max_batch_size", "max_input_len", "max_seq_len"):
        if not isinstance(build.get(name), int) or build[name] < 1:
            raise BadInput(f"{path}: build_config.{name} is {build.get(name)!r}, expected a positive integer")
    if not any(engine_dir.glob("rank*.engine")):
        raise BadInput(f"{engine_dir} holds no rank*.engine file: the build produced no engine")
    return config
