"""What a GPU step needs from its machine, checked before any work.

`probe()` looks without importing anything heavy: `nvidia-smi` on PATH and answering with at
least one GPU, `tensorrt_llm` findable (never imported here), and the executables a step runs.
`require()` turns what is missing into one BadInput (exit 2, never retried) that names each
missing piece and says the step needs a GPU node.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlops.errors import BadInput


@dataclass(frozen=True)
class Environment:
    """What this machine offers a GPU step."""

    nvidia_smi: str | None  # path of nvidia-smi, None when absent
    gpus: tuple[str, ...] = ()  # names nvidia-smi lists
    tensorrt_llm: bool = False  # the package is importable
    executables: dict[str, str | None] = field(default_factory=dict)  # name -> path or None
    files: dict[str, bool] = field(default_factory=dict)  # required file -> exists


def list_gpus(nvidia_smi: str, timeout_s: float = 20.0) -> tuple[str, ...]:
    """GPU names from `nvidia-smi --query-gpu=name`; () when it fails (no driver, no device)."""
    try:
        answer = subprocess.run(
            [nvidia_smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if answer.returncode != 0:
        return ()
    return tuple(line.strip() for line in answer.stdout.splitlines() if line.strip())


def probe(executables: Sequence[str] = (), files: Sequence[str] = ()) -> Environment:
    """Look at this machine: nvidia-smi and its GPUs, `tensorrt_llm`, executables and files."""
    smi = shutil.which("nvidia-smi")
    return Environment(
        nvidia_smi=smi,
        gpus=list_gpus(smi) if smi else (),
        tensorrt_llm=importlib.util.find_spec("tensorrt_llm") is not None,
        executables={name: shutil.which(name) for name in executables},
        files={name: Path(name).is_file() for name in files},
    )


def missing(env: Environment) -> list[str]:
    """Each thing a TensorRT-LLM step needs that `env` lacks, in words."""
    problems = []
    if env.nvidia_smi is None:
        problems.append("nvidia-smi is not on PATH (no NVIDIA driver)")
    elif not env.gpus:
        problems.append("nvidia-smi lists no GPU")
    if not env.tensorrt_llm:
        problems.append("the Python package tensorrt_llm is not installed")
    problems += [f"{name} is not on PATH" for name, path in env.executables.items() if path is None]
    problems += [f"{name} does not exist" for name, present in env.files.items() if not present]
    return problems


def require(step: str, env: Environment) -> None:
    """BadInput naming everything missing: this step runs only on a GPU node with TensorRT-LLM."""
    problems = missing(env)
    if problems:
        raise BadInput(
            f"{step} needs a GPU node with TensorRT-LLM (e.g. NVIDIA's TensorRT-LLM release container) and "
            f"this machine has not got one: {'; '.join(problems)}. Nothing was done"
        )
