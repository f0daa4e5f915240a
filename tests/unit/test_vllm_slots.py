"""Slot logic of deployment/vllm over in-memory replicas.

`MemoryReplica` is a fake of one vLLM replica's LoRA admin API (the unit tier has no server);
the real server's behaviour is covered by tests/integration/test_vllm_serving.py.
"""

from __future__ import annotations

import httpx
import pytest

from deployment.vllm.promote import check_verdicts
from deployment.vllm.reconcile import converge
from deployment.vllm.slots import agreed_root, fill
from deployment.vllm.smoke_test import answer_checks, pick_questions
from mlops.datasets.ragqa import EvalItem
from mlops.errors import BadInput, Transient
from mlops.registry import InMemoryBackend, Registry
from mlops.serving.vllm import Completion, HttpVllmServer, ServedModel, adapter_version


class MemoryReplica:
    """Fake replica: adapters by name; `refuse` makes loads fail like an unreachable server."""

    def __init__(self, endpoint: str, loaded: dict[str, str] | None = None, refuse: bool = False) -> None:
        self.endpoint = endpoint
        self.loaded = dict(loaded or {})
        self.refuse = refuse
        self.calls: list[tuple[str, str, bool]] = []

    def healthy(self) -> bool:
        return True

    def models(self) -> list[ServedModel]:
        return [ServedModel("base", "/base")] + [ServedModel(n, r, "base") for n, r in self.loaded.items()]

    def load_adapter(self, name: str, path: str, inplace: bool = False) -> None:
        self.calls.append((name, path, inplace))
        if self.refuse:
            raise Transient(f"vLLM {self.endpoint} unreachable")
        if name in self.loaded and not inplace:
            raise BadInput("already loaded")
        self.loaded[name] = path

    def unload_adapter(self, name: str) -> None:
        self.loaded.pop(name, None)

    def complete(self, model: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0) -> Completion:
        return Completion("ok", "stop", 1, 1, 0.01)


def test_fill_replaces_in_place_on_every_replica() -> None:
    replicas = [MemoryReplica("a", {"s-live": "/ad/m/1"}), MemoryReplica("b", {"s-live": "/ad/m/1"})]
    fill(replicas, "s-live", "/ad/m/2")
    assert [r.loaded["s-live"] for r in replicas] == ["/ad/m/2", "/ad/m/2"]
    assert all(call[2] for r in replicas for call in r.calls)  # in place: the name never disappears


def test_fill_restores_the_replicas_already_changed_when_one_refuses() -> None:
    first = MemoryReplica("a", {"s-live": "/ad/m/1"})
    empty = MemoryReplica("b")
    broken = MemoryReplica("c", {"s-live": "/ad/m/1"}, refuse=True)
    with pytest.raises(Transient, match="restored a, b to their previous adapter"):
        fill([first, empty, broken], "s-live", "/ad/m/2")
    assert first.loaded == {"s-live": "/ad/m/1"}
    assert empty.loaded == {}  # was empty, emptied again


def test_replicas_that_disagree_block_with_each_named() -> None:
    replicas = [MemoryReplica("a", {"s-live": "/ad/m/1"}), MemoryReplica("b", {"s-live": "/ad/m/2"})]
    with pytest.raises(BadInput, match="a: /ad/m/1, b: /ad/m/2"):
        agreed_root(replicas, "s-live")
    assert agreed_root([MemoryReplica("a"), MemoryReplica("b")], "s-live") is None


def test_converge_loads_replaces_and_empties() -> None:
    replica = MemoryReplica("a", {"s-live": "/ad/m/1", "s-candidate": "/ad/m/3"})
    changes = converge(replica, {"s-live": "/ad/m/2", "s-candidate": None})
    assert replica.loaded == {"s-live": "/ad/m/2"}
    assert len(changes) == 2
    assert converge(replica, {"s-live": "/ad/m/2", "s-candidate": None}) == []


def test_the_periodic_pass_refills_empty_slots_and_leaves_served_ones_alone() -> None:
    """`--empty-slots-only` (the vLLM pod's periodic pass): a workflow between loading the candidate
    slot and moving `staged`, or a canary serving the candidate slot after `staged` is cleared,
    keeps its slot; a slot a restarted vLLM lost is loaded again."""
    loading = MemoryReplica("a", {"s-live": "/ad/m/1", "s-candidate": "/ad/m/4"})  # staged still v3
    assert converge(loading, {"s-live": "/ad/m/1", "s-candidate": "/ad/m/3"}, empty_slots_only=True) == []
    canary = MemoryReplica("b", {"s-live": "/ad/m/1", "s-candidate": "/ad/m/4"})  # staged cleared
    assert converge(canary, {"s-live": "/ad/m/1", "s-candidate": None}, empty_slots_only=True) == []
    assert loading.loaded["s-candidate"] == canary.loaded["s-candidate"] == "/ad/m/4"
    restarted = MemoryReplica("c")
    changes = converge(restarted, {"s-live": "/ad/m/1", "s-candidate": "/ad/m/3"}, empty_slots_only=True)
    assert restarted.loaded == {"s-live": "/ad/m/1", "s-candidate": "/ad/m/3"} and len(changes) == 2
    # the full pass (pod start, exit handlers) would have undone the first two
    assert converge(loading, {"s-live": "/ad/m/1", "s-candidate": "/ad/m/3"}) != []


def test_adapter_version_reads_the_version_from_the_adapter_folder() -> None:
    assert adapter_version("/adapters/mistral-7b-lora/12", "mistral-7b-lora") == "12"
    assert adapter_version("/adapters/mistral-7b-lora/12/", "mistral-7b-lora") == "12"
    assert adapter_version("/adapters/other/12", "mistral-7b-lora") is None
    assert adapter_version("/adapters/mistral-7b-lora/latest", "mistral-7b-lora") is None


def test_promote_needs_both_verdicts_on_the_version() -> None:
    registry = Registry(InMemoryBackend(), actor="test")
    version = registry.register("m", "s3://x", None)
    registry.move_alias("m", "eval-passed", version, reason="t")
    with pytest.raises(BadInput, match="perf-passed is at no version"):
        check_verdicts(registry, "m", version)
    other = registry.register("m", "s3://y", None)
    registry.move_alias("m", "perf-passed", other, reason="t")
    with pytest.raises(BadInput, match=f"perf-passed is at v{other}"):
        check_verdicts(registry, "m", version)
    registry.move_alias("m", "perf-passed", version, reason="t")
    check_verdicts(registry, "m", version)


@pytest.mark.parametrize(
    ("completion", "failed"),
    [
        (Completion("Thirty days.", "stop", 5, 3, 0.2), set()),
        (Completion("   ", "stop", 5, 0, 0.2), {"non_empty"}),
        (Completion("broken \ufffd bytes", "stop", 5, 3, 0.2), {"well_formed"}),
        (Completion("fine", "abort", 5, 1, 0.2), {"well_formed"}),
        (Completion("slow", "length", 5, 1, 12.0), {"latency_s"}),
    ],
)
def test_smoke_answer_checks(completion: Completion, failed: set[str]) -> None:
    checks = answer_checks("r.q0", completion, max_latency_s=10.0)
    assert {c.name.rsplit(".", 1)[1] for c in checks if not c.passed} == failed


def test_smoke_questions_cover_answerable_and_unanswerable() -> None:
    def item(i: int, kind: str) -> EvalItem:
        return EvalItem(str(i), f"q{i}", "ctx", "ref", kind, f"p{i}")

    items = [item(0, "unanswerable"), item(1, "factual"), item(2, "numeric"), item(3, "factual")]
    assert [i.id for i in pick_questions(items, 2, 1)] == ["1", "2", "0"]
    with pytest.raises(BadInput, match="no questions"):
        pick_questions([], 2, 1)


def test_worker_refusals_are_bad_input_and_server_errors_transient() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        message = (
            "Call to add_lora method failed: Worker failed with error 'LoRA rank 32 is greater than max_lora_rank 16.'"
            if b"big" in request.content
            else "engine dead"
        )
        return httpx.Response(500, json={"error": {"message": message, "code": 500}})

    server = HttpVllmServer("fake:1")
    server._http = httpx.Client(base_url="http://fake:1", transport=httpx.MockTransport(answer))
    with pytest.raises(BadInput, match="greater than max_lora_rank"):
        server.load_adapter("s", "/big")
    with pytest.raises(Transient, match="engine dead"):
        server.load_adapter("s", "/small")
