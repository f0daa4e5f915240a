"""Guarded alias moves and the audit trail, on the in-memory backend."""

from __future__ import annotations

from typing import Any

import pytest

from mlops.errors import AliasConflict, BadInput
from mlops.gates import Verdict
from mlops.registry import InMemoryBackend, Registry
from mlops.tracking import TAG_VALUE_LIMIT


@pytest.fixture
def registry() -> Registry:
    return Registry(InMemoryBackend(), actor="test")


def test_first_move_expects_no_alias(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    entry = registry.move_alias("m", "champion", v1, expect_version=None, reason="first")
    assert registry.alias("m", "champion") == v1
    assert (entry.from_version, entry.to_version, entry.actor) == (None, v1, "test")
    assert registry.tags("m", v1)["alias.champion.reason"] == "first"


def test_move_refused_when_someone_else_moved_it(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    v2 = registry.register("m", "s3://b", None)
    registry.move_alias("m", "champion", v1, expect_version=None, reason="first")
    with pytest.raises(AliasConflict, match="expected None"):
        registry.move_alias("m", "champion", v2, expect_version=None, reason="stale view")
    assert registry.alias("m", "champion") == v1
    assert len(registry.history("m")) == 1  # the refused move is not in the audit log


def test_move_to_missing_version_is_bad_input(registry: Registry) -> None:
    with pytest.raises(BadInput, match="no version"):
        registry.move_alias("m", "champion", "9", reason="x")
    assert registry.alias("m", "champion") is None


def test_delete_and_history_order(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    v2 = registry.register("m", "s3://b", None)
    registry.move_alias("m", "live", v1, expect_version=None, reason="deploy v1")
    registry.move_alias("m", "live", v2, expect_version=v1, reason="deploy v2")
    registry.move_alias("m", "live", None, expect_version=v2, reason="retire")
    assert registry.alias("m", "live") is None
    moves = [(e.from_version, e.to_version) for e in registry.history("m")]
    assert moves == [(None, v1), (v1, v2), (v2, None)]


def test_require_alias(registry: Registry) -> None:
    with pytest.raises(BadInput, match="has no alias 'deploy'"):
        registry.require_alias("m", "deploy")


def passing(reason: str = "ok") -> Verdict:
    return Verdict(True, [], reason)


def test_register_if_passed_registers_nothing_on_fail(registry: Registry) -> None:
    common: dict[str, Any] = {"model": "m", "alias": "deploy", "source": "s3://x", "run_id": "r"}
    failed = Verdict(False, [], "diff too large")
    assert (
        registry.register_if_passed(failed, tags={}, gate_tag="gate.x", expect_version=None, **common) == ""
    )
    assert registry.alias("m", "deploy") is None and not registry.backend.version_exists("m", "1")


def test_register_if_passed_tags_the_verdict_and_moves_the_alias(registry: Registry) -> None:
    long_reason = "r" * (TAG_VALUE_LIMIT + 50)
    version = registry.register_if_passed(
        passing(long_reason),
        model="m",
        alias="deploy",
        source="s3://x",
        run_id="r",
        tags={"k": "v"},
        gate_tag="gate.equivalence",
        expect_version=None,
    )
    assert version == "1" and registry.alias("m", "deploy") == "1"
    tags = registry.tags("m", "1")
    assert (tags["k"], tags["gate.equivalence"]) == ("v", "pass")
    assert tags["gate.equivalence.reason"] == "r" * TAG_VALUE_LIMIT
    assert registry.history("m")[-1].reason.startswith("equivalence gate passed (rrr")


def test_register_if_passed_refuses_an_alias_moved_since_it_was_read(registry: Registry) -> None:
    other = registry.register("m", "s3://other", None)
    registry.move_alias("m", "deploy", other, expect_version=None, reason="someone else")
    with pytest.raises(AliasConflict):
        registry.register_if_passed(
            passing(),
            model="m",
            alias="deploy",
            source="s3://x",
            run_id="r",
            tags={},
            gate_tag="gate.quality",
            expect_version=None,
        )
    assert registry.alias("m", "deploy") == other


def test_record_verdict_takes_the_opposite_alias_back_first(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    v2 = registry.register("m", "s3://b", None)
    aliases = {"pass_alias": "ok", "fail_alias": "bad", "gate": "test gate"}
    assert registry.record_verdict(passing(), model="m", version=v1, tags={}, **aliases) == ("ok", None)
    assert registry.record_verdict(passing(), model="m", version=v2, tags={"t": "1"}, **aliases) == ("ok", v1)
    failed = Verdict(False, [], "re-test failed")
    assert registry.record_verdict(failed, model="m", version=v2, tags={}, **aliases) == ("bad", None)
    # `ok` goes back to where it was before v2 took it, and comes off before `bad` goes on
    assert registry.alias("m", "ok") == v1 and registry.alias("m", "bad") == v2
    assert [(e.alias, e.to_version) for e in registry.history("m")][-2:] == [("ok", v1), ("bad", v2)]
    assert registry.tags("m", v2)["t"] == "1"


def test_take_back_unsets_an_alias_whose_previous_version_is_gone(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    registry.move_alias("m", "ok", v1, expect_version=None, reason="first")
    registry.tag_version("m", v1, {"alias.ok.from": "99"})
    assert registry.take_back("m", "ok", v1, reason="gone") is None
    assert registry.alias("m", "ok") is None
    assert registry.take_back("m", "ok", v1, reason="not there") is None
