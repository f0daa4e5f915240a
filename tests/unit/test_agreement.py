"""`mlops status`'s comparison of registry aliases with what vLLM's slots serve."""

from __future__ import annotations

from deployment.agreement import vllm_rows
from mlops.errors import Transient
from mlops.registry import InMemoryBackend, Registry
from mlops.serving.vllm import ServedModel

MODEL = "mistral-7b-lora"


class Slots:
    """In-memory vLLM replica: the adapters its /v1/models lists."""

    def __init__(self, slots: dict[str, str]) -> None:
        self.slots = slots

    def models(self) -> list[ServedModel]:
        return [ServedModel("aws-rag-qa", "/base")] + [
            ServedModel(name, root, parent="aws-rag-qa") for name, root in self.slots.items()
        ]


def registry_with(live: str, staged: str) -> Registry:
    registry = Registry(InMemoryBackend(), actor="test")
    for _ in range(3):
        registry.register(MODEL, "s3://x", None, {})
    registry.move_alias(MODEL, "live", live, expect_version=None, reason="test")
    registry.move_alias(MODEL, "staged", staged, expect_version=None, reason="test")
    return registry


def test_slots_serving_the_aliases_agree() -> None:
    server = Slots({"aws-rag-qa-live": f"/a/{MODEL}/2", "aws-rag-qa-candidate": f"/a/{MODEL}/3"})
    rows = vllm_rows(registry_with("2", "3"), MODEL, "aws-rag-qa", "x", connector=lambda _: server)  # type: ignore[arg-type,return-value]
    assert [(r.alias, r.registry, r.serves, r.agrees) for r in rows] == [
        ("live", "2", "2", True),
        ("staged", "3", "3", True),
    ]


def test_a_slot_serving_another_version_or_nothing_disagrees() -> None:
    server = Slots({"aws-rag-qa-live": f"/a/{MODEL}/1"})
    rows = vllm_rows(registry_with("2", "3"), MODEL, "aws-rag-qa", "x", connector=lambda _: server)  # type: ignore[arg-type,return-value]
    assert [(r.alias, r.expected, r.serves, r.agrees) for r in rows] == [
        ("live", "2", "1", False),
        ("staged", "3", "", False),
    ]


def test_an_unreachable_server_disagrees() -> None:
    def unreachable(_: str) -> Slots:
        raise Transient("connection refused")

    rows = vllm_rows(registry_with("2", "3"), MODEL, "aws-rag-qa", "x", connector=unreachable)  # type: ignore[arg-type]
    assert {r.serves for r in rows} == {"unreachable"} and not any(r.agrees for r in rows)
