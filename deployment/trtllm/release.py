"""A release: one version number N of all four ensemble models, published by one workflow run.

The repository on S3 holds `<root>/<model>/<N>/` per model (the layout and publishing of
`deployment.triton.repository`, reused), and `<root>/_releases.json`, the log of what was
served when: deploy and rollback append to it (under the workflow's mutex), rollback reads the
version served before the current one from it. What a server loads is decided by each model's
`config.pbtxt`, written with a `specific` version list of exactly [N] and then loaded through
Triton's repository API, the ensemble last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from deployment.triton.repository import Repository
from deployment.triton.serving import config_for
from deployment.trtllm.triton_models import ENSEMBLE, MODELS
from mlops.errors import BadInput
from mlops.serving.triton import TritonServer, connect, wait_ready
from mlops.storage import ObjectStore, S3Url

RELEASE_LOG = "_releases.json"


def repositories(store: ObjectStore, root: S3Url) -> dict[str, Repository]:
    """The four models' places in the repository."""
    return {name: Repository(store, root, name) for name in MODELS}


def committed_releases(repos: dict[str, Repository]) -> list[int]:
    """Versions committed for every model of the ensemble (a release is all four or nothing)."""
    sets = [set(repo.committed_versions()) for repo in repos.values()]
    return sorted(set.intersection(*sets)) if sets else []


def release_of_workflow(repos: dict[str, Repository], workflow: str) -> int | None:
    """The release a workflow run already published completely (a retry publishes nothing twice)."""
    for version in reversed(committed_releases(repos)):
        if repos[ENSEMBLE].read_metadata(version).get("workflow") == workflow:
            return version
    return None


def next_release(repos: dict[str, Repository]) -> int:
    """One above every number any of the four models ever used."""
    return max(repo.next_version() for repo in repos.values())


def read_log(store: ObjectStore, root: S3Url) -> list[dict[str, Any]]:
    url = root.join(RELEASE_LOG)
    if not store.exists(url):
        return []
    entries = json.loads(store.get_bytes(url))
    if not isinstance(entries, list):
        raise BadInput(f"{url} is not a list of releases")
    return entries


def append_log(store: ObjectStore, root: S3Url, entry: dict[str, Any]) -> None:
    entries = [*read_log(store, root), {**entry, "at": round(time.time(), 3)}]
    store.put_bytes(root.join(RELEASE_LOG), json.dumps(entries, indent=2).encode())


def current(store: ObjectStore, root: S3Url) -> dict[str, Any] | None:
    """The last entry of the log: what is served now (None before the first deployment)."""
    entries = read_log(store, root)
    return entries[-1] if entries else None


def require_endpoints(endpoints: str, step: str) -> None:
    if not endpoints.strip():
        raise BadInput(
            f"{step} needs a Triton server with the TensorRT-LLM backend (a GPU node running NVIDIA's "
            "tritonserver <yy.mm>-trtllm-python-py3 image with --model-control-mode=explicit) and none is "
            "configured: --endpoints is empty. The local stack has no such server. Nothing was done"
        )


def require_trtllm_server(server: TritonServer, root: S3Url) -> None:
    """BadInput unless the server's repository index lists the four ensemble models of `root`."""
    names = {entry.name for entry in server.repository_index()}
    missing = [name for name in MODELS if name not in names]
    if missing:
        raise BadInput(
            f"Triton {server.endpoint} does not serve the TensorRT-LLM repository {root}: its repository index "
            f"lacks {', '.join(missing)} (it lists {', '.join(sorted(names)) or 'nothing'}). Start a Triton with "
            f"the TensorRT-LLM backend on a GPU node with --model-repository={root}. Nothing was done"
        )


def connect_checked(
    endpoints: Sequence[str], root: S3Url, connector: Callable[[str], TritonServer] = connect
) -> list[TritonServer]:
    """A client per replica, each checked to be a TensorRT-LLM Triton reading `root`."""
    if not endpoints:
        raise BadInput("no Triton replica found for the configured endpoints")
    servers = [connector(endpoint) for endpoint in endpoints]
    for server in servers:
        require_trtllm_server(server, root)
    return servers


def serve_release(
    repos: dict[str, Repository], servers: Sequence[TritonServer], version: int, timeout_s: float
) -> dict[str, float]:
    """Serve exactly release `version` on every replica; seconds until the ensemble was ready, per replica."""
    missing = [name for name, repo in repos.items() if version not in repo.committed_versions()]
    if missing:
        raise BadInput(f"release {version} is not committed for {', '.join(missing)}")
    for repo in repos.values():
        repo.write_config(config_for(repo, [version]))
    timings = {}
    for server in servers:
        started = time.monotonic()
        for name in MODELS:  # the composing models first, the ensemble that calls them last
            server.load(name)
        for name in MODELS:
            wait_ready(server, name, [version], timeout_s)
        timings[server.endpoint] = time.monotonic() - started
    return timings
