"""Guarded alias moves and the audit trail, on the in-memory backend."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from mlops.audit import AuditEntry, epoch_version_tags, iso_utc, legacy_entries, parse_iso_utc
from mlops.errors import AliasConflict, BadInput
from mlops.gates import Verdict
from mlops.registry import InMemoryBackend, Registry
from mlops.tracking import TAG_VALUE_LIMIT
from tests.legacy_audit import write_old_move

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


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


def test_a_retried_move_records_what_the_failed_attempt_did_not(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = registry.register("m", "s3://a", None)
    v2 = registry.register("m", "s3://b", None)
    registry.move_alias("m", "live", v1, expect_version=None, reason="deploy v1")

    def mlflow_times_out(entry: AuditEntry) -> None:
        raise TimeoutError("MLflow did not answer")

    with monkeypatch.context() as attempt_1:  # killed between the move and its record
        attempt_1.setattr(registry.backend, "append_audit", mlflow_times_out)
        with pytest.raises(TimeoutError):
            registry.move_alias("m", "live", v2, expect_version=v1, reason="deploy v2")
    assert registry.alias("m", "live") == v2 and len(registry.history("m")) == 1  # moved, unrecorded
    # the retry reads live at v2 already: the move from v1 goes in the trail, not "v2 -> v2"
    entry = registry.move_alias("m", "live", v2, expect_version=v2, reason="deploy v2")
    assert (entry.from_version, entry.to_version) == (v1, v2)
    assert "without a recorded move" in entry.reason
    assert [(e.from_version, e.to_version) for e in registry.history("m")] == [(None, v1), (v1, v2)]
    # once recorded, a repeat is the no-op it always was
    again = registry.move_alias("m", "live", v2, expect_version=v2, reason="deploy v2")
    assert (again.from_version, again.to_version) == (v2, v2) and "(already there)" in again.reason


def test_a_retried_unset_records_the_unrecorded_removal(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    registry.move_alias("m", "staged", v1, expect_version=None, reason="smoke passed")
    registry.backend.delete_alias("m", "staged")  # an attempt that unset it and died
    entry = registry.move_alias("m", "staged", None, expect_version=None, reason="promoted")
    assert (entry.from_version, entry.to_version) == (v1, None)


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


# --- the audit trail: where it is kept, its times, the old format ----------------------------------


def test_a_move_is_an_audit_entry_not_a_model_tag(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_WORKFLOW_NAME", "vllm-training-x7k2p")
    registry = Registry(registry.backend)  # actor and workflow come from the environment
    v1 = registry.register("m", "s3://a", None)
    registry.move_alias("m", "candidate", v1, expect_version=None, reason="loss gate passed")
    assert registry.backend.get_model_tags("m") == {}
    (entry,) = registry.backend.read_audit("m")
    assert (entry.actor, entry.workflow) == ("workflow/vllm-training-x7k2p", "vllm-training-x7k2p")
    assert entry.title == "m candidate: unset -> v1"


def test_times_are_iso_8601_utc_on_versions_and_in_history(registry: Registry) -> None:
    v1 = registry.register("m", "s3://a", None)
    entry = registry.move_alias("m", "live", v1, expect_version=None, reason="deploy")
    stamp = registry.tags("m", v1)["alias.live.set_at"]
    assert ISO.match(stamp) and ISO.match(entry.when)
    assert abs(parse_iso_utc(stamp) - entry.at) < 1.0
    assert entry.line().startswith(f"{entry.when}  live")


def test_iso_utc_round_trips_and_refuses_other_text() -> None:
    assert iso_utc(1796600467.25) == "2026-12-06T23:41:07Z"
    assert parse_iso_utc("2026-12-06T23:41:07Z") == 1796600467.0
    with pytest.raises(BadInput, match="not an ISO-8601 UTC time"):
        parse_iso_utc("1796600467.250")


def test_quick_moves_keep_their_order(registry: Registry) -> None:
    versions = [registry.register("m", f"s3://{i}", None) for i in range(5)]
    previous = None
    for version in versions:
        registry.move_alias("m", "live", version, expect_version=previous, reason=f"to {version}")
        previous = version
    entries = registry.history("m")
    assert [e.to_version for e in entries] == versions
    assert all(a.at < b.at for a, b in itertools.pairwise(entries))


def _old_registry(registry: Registry) -> tuple[list[str], list[str]]:
    """Two versions moved the old way (model tags + epoch version tags), then one move the new way."""
    backend = registry.backend
    v1, v2 = registry.register("m", "s3://a", None), registry.register("m", "s3://b", None)
    backend.set_alias("m", "live", v2)
    keys = [
        write_old_move(backend, "m", "live", None, v1, at=1796000000.5),
        write_old_move(backend, "m", "live", v1, v2, at=1796000100.25, actor="ana@laptop", reason="hotfix"),
    ]
    backend.set_version_tag("m", v2, "rollback.rolled_back_at", "1796000200.000")
    backend.set_model_tag("m", "owner", "vision team")  # not an audit tag: stays
    return keys, [v1, v2]


def test_history_shows_old_entries_before_they_are_migrated(registry: Registry) -> None:
    keys, (v1, v2) = _old_registry(registry)
    registry.move_alias("m", "live", v1, expect_version=v2, reason="rollback")
    entries = registry.history("m")
    assert [(e.from_version, e.to_version) for e in entries] == [(None, v1), (v1, v2), (v2, v1)]
    assert [e.migrated_from for e in entries] == [*keys, ""]
    assert entries[0].workflow == "vision-training-abc12" and entries[1].workflow == ""
    assert entries[1].when == "2026-11-30T00:55:00Z"


def test_migration_moves_entries_deletes_tags_and_makes_times_iso(registry: Registry) -> None:
    keys, (v1, v2) = _old_registry(registry)
    before = registry.history("m")
    report = registry.migrate_audit("m")
    assert (report.entries_moved, report.tags_deleted, report.version_tags) == (2, 2, 3)
    assert registry.backend.get_model_tags("m") == {"owner": "vision team"}
    assert [e.migrated_from for e in registry.backend.read_audit("m")] == keys
    assert registry.history("m") == before  # same entries, same order, now from the trail
    assert registry.tags("m", v1)["alias.live.set_at"] == "2026-11-30T00:53:20Z"
    assert registry.tags("m", v2)["alias.live.set_at"] == "2026-11-30T00:55:00Z"
    assert registry.tags("m", v2)["rollback.rolled_back_at"] == "2026-11-30T00:56:40Z"
    assert registry.tags("m", v2)["alias.live.set_by"] == "ana@laptop"  # not a time: untouched
    again = registry.migrate_audit("m")
    assert (again.entries_moved, again.tags_deleted, again.version_tags) == (0, 0, 0)
    assert len(registry.backend.read_audit("m")) == 2


def test_an_interrupted_migration_resumes_without_duplicates(registry: Registry) -> None:
    keys, _ = _old_registry(registry)
    (first, _second) = registry.unmigrated("m")
    registry.backend.append_audit(first)  # written, then the process died before deleting its tag
    assert len(registry.history("m")) == 2  # the half-moved entry is shown once
    report = registry.migrate_audit("m")
    assert (report.entries_moved, report.tags_deleted) == (1, 2)
    assert sorted(e.migrated_from for e in registry.backend.read_audit("m")) == sorted(keys)


def test_a_malformed_old_tag_refuses_the_migration_and_changes_nothing(registry: Registry) -> None:
    _old_registry(registry)
    registry.backend.set_model_tag("m", "audit.1796600300.000000.1", "{not json")
    tags_before = registry.backend.get_model_tags("m")
    with pytest.raises(BadInput, match=r"'audit\.1796600300\.000000\.1' is not an audit entry"):
        registry.migrate_audit("m")
    assert registry.backend.get_model_tags("m") == tags_before
    assert registry.backend.read_audit("m") == []
    assert registry.tags("m", "1")["alias.live.set_at"] == "1796000000.500"


def test_only_epoch_time_tags_are_converted() -> None:
    tags = {
        "alias.live.set_at": "1796600467.250",
        "promote.at": "1796600467.000",
        "smoke.at": "2026-12-06T23:41:07Z",  # already ISO
        "eval_loss": "0.7",  # not a time tag
        "format": "1796600467",  # a number, but not a time tag
        "alias.live.reason": "1796600467",
        "chat.at": "12.5",  # a time tag, but no epoch
    }
    assert epoch_version_tags(tags) == {
        "alias.live.set_at": "2026-12-06T23:41:07Z",
        "promote.at": "2026-12-06T23:41:07Z",
    }


def test_legacy_entries_read_only_audit_tags() -> None:
    tags = {
        "audit.1.1": '{"model": "m", "alias": "a", "from_version": null, "to_version": "1", '
        '"actor": "x", "reason": "r", "at": 1.5}',
        "owner": "team",
    }
    assert legacy_entries(tags) == [AuditEntry("m", "a", None, "1", "x", "r", 1.5)]
