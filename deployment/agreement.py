"""Do the servers serve what the registry says? One row per model and alias, for `mlops status`.

Triton: for every model a deployment published to the repository, `live`'s Triton version
against the versions the server reports READY. vLLM: `live` and `staged` against the adapter
version in the live and candidate slots. A row whose server serves something else (or cannot
be asked) is a disagreement; `mlops up` (and the workflows' exit handlers) converge them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deployment.triton.reconcile import published_models
from deployment.triton.serve import live_triton_version
from deployment.vllm.reconcile import SLOT_ALIASES
from deployment.vllm.slots import slot_name
from mlops.errors import MlopsError
from mlops.registry import Registry
from mlops.serving import triton, vllm
from mlops.storage import S3Store, S3Url


@dataclass(frozen=True)
class Agreement:
    server: str
    model: str  # the registered model
    alias: str
    registry: str  # the version behind the alias, '-' when unset
    expected: str  # what the server should serve for it ('' = nothing)
    serves: str  # what it serves ('' = nothing)

    @property
    def agrees(self) -> bool:
        return self.expected == self.serves


def triton_rows(registry: Registry, store: S3Store, repository: str, endpoint: str) -> list[Agreement]:
    """One row per published model: `live` against the READY versions of its Triton name."""
    try:
        models = published_models(store, S3Url.parse(repository))
    except MlopsError:
        return []
    ready: dict[str, list[str]] | None
    try:
        index = triton.connect(endpoint).repository_index()
    except MlopsError:
        ready = None
    else:
        ready = {}
        for entry in index:
            if entry.version and entry.state == "READY":
                ready.setdefault(entry.name, []).append(entry.version)
    rows = []
    for name, registered in models.items():
        live = registry.alias(registered, "live")
        try:
            expected = str(live_triton_version(registry, registered) or "")
        except MlopsError as exc:
            expected = f"? ({exc})"
        serves = "unreachable" if ready is None else ",".join(sorted(ready.get(name, []), key=int))
        rows.append(Agreement(f"triton {name}", registered, "live", live or "-", expected, serves))
    return rows


def vllm_rows(
    registry: Registry,
    model: str,
    served_name: str,
    endpoint: str,
    connector: Callable[[str], vllm.VllmServer] = lambda endpoint: vllm.connect(endpoint, timeout_s=5),
) -> list[Agreement]:
    """The live and candidate slots against `live` and `staged`."""
    try:
        loaded: dict[str, str] | None = vllm.adapters(connector(endpoint))
    except MlopsError:
        loaded = None
    rows = []
    for slot, alias in SLOT_ALIASES.items():
        version = registry.alias(model, alias)
        name = slot_name(served_name, slot)
        if loaded is None:
            serves = "unreachable"
        else:
            root = loaded.get(name)
            serves = (vllm.adapter_version(root, model) or root) if root else ""
        rows.append(Agreement(f"vllm {name}", model, alias, version or "-", version or "", serves))
    return rows
