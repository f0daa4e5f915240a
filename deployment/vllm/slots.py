"""The two LoRA slots on every replica, read from the servers themselves and changed all-or-nothing.

What a slot holds is read from vLLM's `/v1/models` (an adapter's `root` is the folder it was
loaded from, `<adapter-dir>/<model>/<version>`), never from a record of our own that could drift.
`fill` changes one slot on every replica: a slot that is already served is replaced in place
(`load_inplace`), so its name never disappears for clients; if any replica refuses, the replicas
already changed get their previous adapter back (or the slot is emptied again) before the error
is raised, so the replicas never stay in disagreement because of us.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlops.errors import BadInput, MlopsError
from mlops.serving.vllm import VllmServer, adapters

LIVE, CANDIDATE = "live", "candidate"


def slot_name(served_name: str, slot: str) -> str:
    return f"{served_name}-{slot}"


@dataclass(frozen=True)
class Fill:
    """What `fill` did on one replica, enough to undo it."""

    server: VllmServer
    name: str
    previous_root: str | None


def roots(servers: Sequence[VllmServer], name: str) -> dict[str, str | None]:
    """endpoint -> the folder served under `name` (None: not loaded)."""
    return {server.endpoint: adapters(server).get(name) for server in servers}


def agreed_root(servers: Sequence[VllmServer], name: str) -> str | None:
    """The folder every replica serves under `name`; BadInput naming each replica if they disagree."""
    seen = roots(servers, name)
    if len(set(seen.values())) > 1:
        detail = ", ".join(f"{endpoint}: {root or 'empty'}" for endpoint, root in seen.items())
        raise BadInput(
            f"replicas disagree on {name} ({detail}); run deployment.vllm.reconcile to converge them first"
        )
    return next(iter(seen.values()), None)


def base_location(uri: str) -> str:
    """`s3://bucket/key/` -> `bucket/key`: how a base is named whatever it is served from."""
    return uri.removeprefix("s3://").strip("/")


def check_base(servers: Sequence[VllmServer], base_uri: str, what: str) -> None:
    """BadInput unless every replica serves the base `what` was trained on.

    A replica's base is the `root` vLLM reports for its non-adapter model: the S3 location on a
    cluster, a local folder ending in `<bucket>/<key>` on the local stack. An adapter loaded onto
    another base of the same shape would load fine and answer nonsense.
    """
    if not base_uri:
        raise BadInput(f"{what} names no base (tag base_uri): refusing to load it onto an unknown base")
    wanted = base_location(base_uri)
    for server in servers:
        bases = [m.root for m in server.models() if not m.is_adapter]
        if not any(base_location(root).endswith(wanted) for root in bases):
            raise BadInput(
                f"{what} was trained on {base_uri}, but {server.endpoint} serves {', '.join(bases) or 'no base'}"
            )


def load(server: VllmServer, name: str, path: str, loaded: bool) -> None:
    """Load `path` under `name`: in place when the name is served, so it never disappears."""
    server.load_adapter(name, path, inplace=loaded)


def restore(fill: Fill) -> None:
    if fill.previous_root is None:
        fill.server.unload_adapter(fill.name)
    else:
        load(fill.server, fill.name, fill.previous_root, loaded=True)


def fill(servers: Sequence[VllmServer], name: str, path: str) -> list[Fill]:
    """Serve `path` under `name` on every replica, or on none: a refusal restores the others."""
    done: list[Fill] = []
    for server in servers:
        try:
            previous = adapters(server).get(name)
            if previous != path:
                load(server, name, path, loaded=previous is not None)
        except MlopsError as exc:
            undone = _undo(done)
            raise type(exc)(f"{exc}; {undone}") from exc
        done.append(Fill(server, name, previous))
    return done


def empty(servers: Sequence[VllmServer], name: str) -> None:
    """Unload `name` from every replica (a replica without it is already empty)."""
    for server in servers:
        server.unload_adapter(name)


def _undo(done: list[Fill]) -> str:
    failed = []
    for item in reversed(done):
        try:
            restore(item)
        except MlopsError as exc:
            failed.append(f"{item.server.endpoint}: {exc}")
    if failed:
        return "restoring the replicas already changed failed too: " + " | ".join(failed)
    if not done:
        return "no replica was changed"
    return f"restored {', '.join(item.server.endpoint for item in done)} to their previous adapter"
