"""Guarded alias moves and the audit trail, on the in-memory backend."""

from __future__ import annotations

import pytest

from mlops.errors import AliasConflict, BadInput
from mlops.registry import InMemoryBackend, Registry


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
