"""What the Triton steps do to servers: serve an exact set of versions on every replica, check answers.

`serve_versions` writes the model's `config.pbtxt` with a `specific` version policy (one
atomic S3 put), then asks every replica to (re)load the model through the repository API and
waits until each listed version is ready there. Triton keeps the versions that stay in the
set serving while it loads the new ones, so traffic never meets an unloaded model; versions
that leave the set are unloaded by the same call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deployment.triton.repository import Repository, served_versions, with_versions
from mlops.errors import BadInput
from mlops.gates import Verdict, equivalence_gate
from mlops.serving.triton import TritonServer, connect, wait_ready


def config_for(repo: Repository, versions: list[int]) -> str:
    """The model config serving `versions`, built from the newest one's recorded config.pbtxt."""
    committed = set(repo.committed_versions())
    missing = sorted(set(versions) - committed)
    if missing:
        raise BadInput(
            f"{repo.model_url}: version(s) {missing} are not published (committed: {sorted(committed)})"
        )
    base = repo.read_metadata(max(versions)).get("config_pbtxt", "")
    if not base:
        raise BadInput(f"{repo.version_url(max(versions))}/metadata.json records no config_pbtxt")
    return with_versions(str(base), versions, repo.model)


def serve_versions(
    repo: Repository,
    endpoints: Sequence[str],
    versions: list[int],
    timeout_s: float,
    connector: Callable[[str], TritonServer] = connect,
) -> dict[str, float]:
    """Serve exactly `versions` of the model on every replica; seconds to ready per endpoint."""
    repo.write_config(config_for(repo, versions))
    timings = {}
    for endpoint in endpoints:
        server = connector(endpoint)
        server.load(repo.model)
        timings[endpoint] = wait_ready(server, repo.model, versions, timeout_s)
    return timings


def unserve(
    repo: Repository, endpoints: Sequence[str], connector: Callable[[str], TritonServer] = connect
) -> None:
    """Unload the model everywhere and remove its config (nothing of it is live)."""
    for endpoint in endpoints:
        connector(endpoint).unload(repo.model)
    if repo.read_config() is not None:
        repo.store.delete(repo.config_url())


def currently_served(repo: Repository) -> list[int]:
    text = repo.read_config()
    return served_versions(text) if text else []


def softmax(logits: Any) -> Any:
    import numpy as np

    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def check_golden(
    server: TritonServer,
    model: str,
    version: str,
    golden: tuple[Any, Any, dict[str, Any]],
    tolerance: float,
) -> Verdict:
    """Infer the golden inputs on `version` ('' = whatever the server routes to) and compare."""
    import numpy as np

    inputs, expected, labels = golden
    outputs = server.infer(model, version, {labels["input_name"]: inputs})
    if labels["output_name"] not in outputs:
        raise BadInput(
            f"{model} v{version or 'default'} has no output {labels['output_name']!r} (got {sorted(outputs)})"
        )
    probabilities = softmax(np.asarray(outputs[labels["output_name"]]))
    if probabilities.shape != expected.shape:
        raise BadInput(
            f"{model} v{version or 'default'} answered shape {probabilities.shape}, expected {expected.shape}"
        )
    diff = float(np.max(np.abs(probabilities - expected.astype(np.float64))))
    mismatches = int(np.sum(probabilities.argmax(axis=1) != np.asarray(labels["expected_index"])))
    return equivalence_gate(diff, tolerance, mismatches)
