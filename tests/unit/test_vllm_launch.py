"""The vLLM launcher's fix: after an in-place load, the request stored for the name no longer
says `load_inplace`, so the worker does not reload the adapter from disk on every engine step.

The serving-models class here stands in for vLLM's `OpenAIServingModels` (its `lora_requests`
and its async `load_lora_adapter`, which stores the request it was given); the launcher wraps
the real one the same way. tests/integration/test_vllm_serving.py runs the real server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mlops.stack.vllm_launch import store_inplace_loads_plain


@dataclass
class LoraRequest:
    lora_name: str
    lora_int_id: int
    lora_path: str
    load_inplace: bool = False


@dataclass
class LoadRequest:
    lora_name: str
    lora_path: str
    load_inplace: bool = False


class ServingModels:
    """vLLM's behaviour: the load request's `load_inplace` is kept on the stored LoRA request."""

    def __init__(self) -> None:
        self.lora_requests: dict[str, LoraRequest] = {}

    async def load_lora_adapter(self, request: LoadRequest, base_model_name: str | None = None) -> Any:
        if request.lora_name in self.lora_requests and not request.load_inplace:
            return "refused: already loaded"
        self.lora_requests[request.lora_name] = LoraRequest(
            request.lora_name, len(self.lora_requests) + 1, request.lora_path, request.load_inplace
        )
        return "loaded"


def load(models: ServingModels, name: str, path: str, inplace: bool) -> Any:
    return asyncio.run(models.load_lora_adapter(LoadRequest(name, path, inplace)))


def test_unwrapped_an_inplace_load_stays_marked_inplace() -> None:
    models = ServingModels()
    load(models, "live", "/a", inplace=False)
    load(models, "live", "/b", inplace=True)
    assert models.lora_requests["live"].load_inplace  # what makes the worker reload every step


def test_wrapped_an_inplace_load_is_stored_as_plain_with_the_new_path() -> None:
    wrapped = type("Wrapped", (ServingModels,), {})
    store_inplace_loads_plain(wrapped)
    models = wrapped()
    assert load(models, "live", "/a", inplace=False) == "loaded"
    assert load(models, "live", "/b", inplace=True) == "loaded"
    stored = models.lora_requests["live"]
    assert (stored.lora_path, stored.load_inplace) == ("/b", False)


def test_wrapped_a_refused_load_changes_nothing() -> None:
    wrapped = type("Wrapped", (ServingModels,), {})
    store_inplace_loads_plain(wrapped)
    models = wrapped()
    load(models, "live", "/a", inplace=False)
    before = dict(models.lora_requests)
    assert load(models, "live", "/b", inplace=False) == "refused: already loaded"
    assert models.lora_requests == before
