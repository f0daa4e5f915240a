"""MLflow model registry: the alias state machine, guarded moves and an audit trail.

Every alias move names the state it expects (`expect_version`), re-reads, refuses on mismatch
(someone else moved it), sets, and re-reads to confirm. Every move is recorded twice: as tags
on the version (`alias.<alias>.set_by`, `set_at` in ISO-8601 UTC, ...) and as an entry in the
audit trail (on MLflow: one run per move in the experiment `registry-audit`, see
`mlops.audit`), which `mlops history MODEL` prints.

`Registry` holds the rules; a `RegistryBackend` (MLflow, or in-memory for unit tests) holds
the state. Backends raise `Transient` when the server cannot be reached.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

from mlops.audit import (
    LEGACY_PREFIX,
    REASON_LIMIT,
    AuditEntry,
    MlflowAuditLog,
    epoch_version_tags,
    iso_utc,
    legacy_entries,
)
from mlops.errors import AliasConflict, BadInput
from mlops.gates import Verdict
from mlops.tracking import TAG_VALUE_LIMIT, configure_mlflow_client, mlflow_errors

AUDIT_PREFIX = LEGACY_PREFIX  # the old format's model tags; read by `history`, removed by `migrate_audit`
UNSET: Any = object()  # sentinel: "do not check the current state"


class RegistryBackend(Protocol):
    """The primitive operations a model registry offers."""

    def get_alias(self, model: str, alias: str) -> str | None: ...
    def set_alias(self, model: str, alias: str, version: str) -> None: ...
    def delete_alias(self, model: str, alias: str) -> None: ...
    def create_version(self, model: str, source: str, run_id: str | None, tags: dict[str, str]) -> str: ...
    def version_exists(self, model: str, version: str) -> bool: ...
    def version_source(self, model: str, version: str) -> str: ...
    def version_run_id(self, model: str, version: str) -> str | None: ...
    def get_version_tags(self, model: str, version: str) -> dict[str, str]: ...
    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None: ...
    def set_version_description(self, model: str, version: str, text: str) -> None: ...
    def get_model_tags(self, model: str) -> dict[str, str]: ...
    def set_model_tag(self, model: str, key: str, value: str) -> None: ...
    # the audit trail, and what converting the old format needs
    def append_audit(self, entry: AuditEntry) -> None: ...
    def read_audit(self, model: str) -> list[AuditEntry]: ...
    def delete_model_tag(self, model: str, key: str) -> None: ...
    def list_versions(self, model: str) -> list[str]: ...


@dataclass(frozen=True)
class Migration:
    """What `Registry.migrate_audit` converted for one model."""

    model: str
    entries_moved: int  # legacy entries written to the audit trail now
    tags_deleted: int  # `audit.*` model tags removed (moved now or before)
    version_tags: int  # epoch-second version tags rewritten in ISO-8601 UTC

    def line(self) -> str:
        return (
            f"{self.model}: {self.entries_moved} audit entries moved, {self.tags_deleted} model tags "
            f"deleted, {self.version_tags} version time tags now ISO-8601"
        )


def workflow_name() -> str:
    """The Argo workflow this process runs in ("" outside one)."""
    return os.environ.get("ARGO_WORKFLOW_NAME") or os.environ.get("MLOPS_WORKFLOW_NAME") or ""


def default_actor() -> str:
    """Who is moving: the Argo workflow if there is one, else user@host."""
    workflow = workflow_name()
    if workflow:
        return f"workflow/{workflow}"
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Registry:
    """Alias state machine over a backend: guarded moves and an audit log."""

    def __init__(self, backend: RegistryBackend, actor: str | None = None) -> None:
        self.backend = backend
        self.actor = actor or default_actor()
        self.workflow = workflow_name()
        self._last_at = 0.0

    # reads -----------------------------------------------------------------
    def alias(self, model: str, alias: str) -> str | None:
        return self.backend.get_alias(model, alias)

    def require_alias(self, model: str, alias: str) -> str:
        """The version behind an alias; BadInput if it is not set."""
        version = self.backend.get_alias(model, alias)
        if version is None:
            raise BadInput(f"model {model!r} has no alias {alias!r}")
        return version

    def tags(self, model: str, version: str) -> dict[str, str]:
        return self.backend.get_version_tags(model, version)

    def model_tags(self, model: str) -> dict[str, str]:
        return self.backend.get_model_tags(model)

    def source(self, model: str, version: str) -> str:
        return self.backend.version_source(model, version)

    def run_id(self, model: str, version: str) -> str | None:
        return self.backend.version_run_id(model, version)

    # writes ----------------------------------------------------------------
    def register(
        self, model: str, source: str, run_id: str | None, tags: dict[str, str] | None = None
    ) -> str:
        """Create a new version (no alias points at it yet)."""
        return self.backend.create_version(model, source, run_id, dict(tags or {}))

    def describe_version(self, model: str, version: str, text: str) -> None:
        """Set the version's description (Markdown in the MLflow UI): its model card."""
        self.backend.set_version_description(model, version, text)

    def tag_version(self, model: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.backend.set_version_tag(model, version, key, str(value))

    def tag_model(self, model: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.backend.set_model_tag(model, key, str(value))

    def move_alias(
        self,
        model: str,
        alias: str,
        version: str | None,
        *,
        expect_version: str | None = UNSET,
        reason: str,
    ) -> AuditEntry:
        """Point `alias` at `version` (None deletes it), only if it currently is at `expect_version`.

        Raises AliasConflict if the alias moved under us, BadInput if `version` does not exist.
        """
        if version is not None and not self.backend.version_exists(model, version):
            raise BadInput(f"model {model!r} has no version {version!r}")
        current = self.backend.get_alias(model, alias)
        if expect_version is not UNSET and current != expect_version:
            raise AliasConflict(
                f"{model}@{alias} is at version {current!r}, expected {expect_version!r}: "
                "someone else moved it; refusing to overwrite"
            )
        if current == version:
            recorded = self.recorded_holder(model, alias)
            if recorded == version:
                return self._record(model, alias, current, version, f"{reason} (already there)")
            # moved with no record of it: an earlier attempt of a retried step stopped between the
            # move and its record. Recorded now, from the holder the trail last knew.
            current, reason = recorded, f"{reason} (found there without a recorded move: recorded now)"
        elif version is None:
            self.backend.delete_alias(model, alias)
        else:
            self.backend.set_alias(model, alias, version)
        confirmed = self.backend.get_alias(model, alias)
        if confirmed != version:
            raise AliasConflict(f"{model}@{alias} reads {confirmed!r} right after being set to {version!r}")
        if version is not None:
            self.tag_version(
                model,
                version,
                {
                    f"alias.{alias}.set_by": self.actor,
                    f"alias.{alias}.set_at": iso_utc(time.time()),
                    f"alias.{alias}.reason": reason[:TAG_VALUE_LIMIT],
                    f"alias.{alias}.from": current or "",
                },
            )
        return self._record(model, alias, current, version, reason)

    def register_if_passed(
        self,
        verdict: Verdict,
        *,
        model: str,
        alias: str,
        source: str,
        run_id: str | None,
        tags: dict[str, str],
        gate_tag: str,
        expect_version: str | None,
    ) -> str:
        """On a passing `verdict`: register a version carrying it and move `alias` there; "" on fail.

        The version gets `tags` plus `<gate_tag>` (pass) and `<gate_tag>.reason`; the alias move is
        guarded by `expect_version` (where the caller read `alias` before deciding).
        """
        if not verdict.passed:
            return ""
        version = self.register(
            model,
            source,
            run_id,
            {**tags, gate_tag: verdict.label, f"{gate_tag}.reason": verdict.reason[:TAG_VALUE_LIMIT]},
        )
        gate = gate_tag.removeprefix("gate.")
        self.move_alias(
            model,
            alias,
            version,
            expect_version=expect_version,
            reason=f"{gate} gate passed ({verdict.reason}); was {expect_version or 'unset'}",
        )
        return version

    def record_verdict(
        self,
        verdict: Verdict,
        *,
        model: str,
        version: str,
        tags: dict[str, str],
        pass_alias: str,
        fail_alias: str,
        gate: str,
    ) -> tuple[str, str | None]:
        """Tag `version`, take the opposite verdict alias off it, then move the verdict alias to it.

        Each move is guarded, and the opposite verdict comes off first, so a version never holds
        both and a re-test that now fails leaves no moment in which it still reads as passed.
        Returns the alias moved and the version it was at before.
        """
        target, opposite = (pass_alias, fail_alias) if verdict.passed else (fail_alias, pass_alias)
        before = self.alias(model, target)
        self.tag_version(model, version, tags)
        self.take_back(model, opposite, version, reason=f"v{version} now {target}: {verdict.reason}")
        self.move_alias(
            model, target, version, expect_version=before, reason=f"{gate} {verdict.label}: {verdict.reason}"
        )
        return target, before

    def take_back(self, model: str, alias: str, version: str, reason: str) -> str | None:
        """If `alias` is at `version`, move it back to where it was before (or unset it); the new holder."""
        if self.alias(model, alias) != version:
            return self.alias(model, alias)
        previous = self.tags(model, version).get(f"alias.{alias}.from") or None
        if previous == version or (previous is not None and not self.backend.version_exists(model, previous)):
            previous = None
        self.move_alias(model, alias, previous, expect_version=version, reason=reason)
        return previous

    def recorded_holder(self, model: str, alias: str) -> str | None:
        """Where the audit trail last moved `alias` (None: unset, or never recorded)."""
        moves = [entry for entry in self.history(model) if entry.alias == alias]
        return moves[-1].to_version if moves else None

    def history(self, model: str) -> list[AuditEntry]:
        """The model's audit trail, oldest first; entries still kept in the old format included."""
        recorded = self.backend.read_audit(model)
        moved = {e.migrated_from for e in recorded if e.migrated_from}
        waiting = [e for e in self.unmigrated(model) if e.migrated_from not in moved]
        return sorted([*recorded, *waiting], key=lambda e: e.at)

    def unmigrated(self, model: str) -> list[AuditEntry]:
        """Entries still kept as `audit.*` model tags (the old format), oldest first."""
        return sorted(legacy_entries(self.backend.get_model_tags(model)), key=lambda e: e.at)

    def migrate_audit(self, model: str) -> Migration:
        """Move the old format's entries into the audit trail, delete their model tags, make time tags ISO.

        Safe to repeat and to resume: an entry already moved (same tag key) is not written again,
        and its tag is deleted only after its entry is in the trail.
        """
        pending = self.unmigrated(model)  # a malformed tag refuses the whole model before any write
        moved = {e.migrated_from for e in self.backend.read_audit(model) if e.migrated_from}
        written = 0
        for entry in pending:
            if entry.migrated_from not in moved:
                self.backend.append_audit(entry)
                written += 1
            self.backend.delete_model_tag(model, entry.migrated_from)
        rewritten = 0
        for version in self.backend.list_versions(model):
            for key, value in epoch_version_tags(self.backend.get_version_tags(model, version)).items():
                self.backend.set_version_tag(model, version, key, value)
                rewritten += 1
        return Migration(model, written, len(pending), rewritten)

    def _record(self, model: str, alias: str, old: str | None, new: str | None, reason: str) -> AuditEntry:
        # strictly increasing within this process, to the millisecond MLflow keeps: the order of two
        # quick moves (take_back then move_alias) survives the round trip
        at = max(time.time(), self._last_at + 0.001)
        self._last_at = at
        entry = AuditEntry(model, alias, old, new, self.actor, reason[:REASON_LIMIT], at, self.workflow)
        self.backend.append_audit(entry)
        return entry


class InMemoryBackend:
    """A registry held in a dict: for unit tests and dry runs."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self.aliases: dict[str, dict[str, str]] = {}
        self.model_tags: dict[str, dict[str, str]] = {}
        self.audit: dict[str, list[AuditEntry]] = {}

    def get_alias(self, model: str, alias: str) -> str | None:
        return self.aliases.get(model, {}).get(alias)

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.aliases.setdefault(model, {})[alias] = version

    def delete_alias(self, model: str, alias: str) -> None:
        self.aliases.get(model, {}).pop(alias, None)

    def create_version(self, model: str, source: str, run_id: str | None, tags: dict[str, str]) -> str:
        versions = self.versions.setdefault(model, {})
        version = str(len(versions) + 1)
        versions[version] = {"source": source, "run_id": run_id, "tags": dict(tags)}
        return version

    def version_exists(self, model: str, version: str) -> bool:
        return version in self.versions.get(model, {})

    def _version(self, model: str, version: str) -> dict[str, Any]:
        try:
            return self.versions[model][version]
        except KeyError as exc:
            raise BadInput(f"model {model!r} has no version {version!r}") from exc

    def version_source(self, model: str, version: str) -> str:
        return str(self._version(model, version)["source"])

    def version_run_id(self, model: str, version: str) -> str | None:
        return self._version(model, version)["run_id"]

    def get_version_tags(self, model: str, version: str) -> dict[str, str]:
        return dict(self._version(model, version)["tags"])

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        self._version(model, version)["tags"][key] = value

    def set_version_description(self, model: str, version: str, text: str) -> None:
        self._version(model, version)["description"] = text

    def get_model_tags(self, model: str) -> dict[str, str]:
        return dict(self.model_tags.get(model, {}))

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self.model_tags.setdefault(model, {})[key] = value

    def delete_model_tag(self, model: str, key: str) -> None:
        self.model_tags.get(model, {}).pop(key, None)

    def list_versions(self, model: str) -> list[str]:
        return sorted(self.versions.get(model, {}), key=int)

    def append_audit(self, entry: AuditEntry) -> None:
        self.audit.setdefault(entry.model, []).append(entry)

    def read_audit(self, model: str) -> list[AuditEntry]:
        return sorted(self.audit.get(model, []), key=lambda e: e.at)


class MlflowBackend:
    """The real registry: MLflow's model registry over its REST API."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.audit = MlflowAuditLog(self.client)

    def get_alias(self, model: str, alias: str) -> str | None:
        """The version behind `model@alias`; None when the alias or the model does not exist."""
        try:
            with mlflow_errors(f"reading {model}@{alias}"):
                return str(self.client.get_model_version_by_alias(model, alias).version)
        except BadInput:  # mlflow_errors' translation of RESOURCE_DOES_NOT_EXIST / INVALID_PARAMETER_VALUE
            return None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        with mlflow_errors(f"setting {model}@{alias}"):
            self.client.set_registered_model_alias(model, alias, version)

    def delete_alias(self, model: str, alias: str) -> None:
        with mlflow_errors(f"deleting {model}@{alias}"):
            self.client.delete_registered_model_alias(model, alias)

    def _ensure_model(self, model: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(model)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise

    def create_version(self, model: str, source: str, run_id: str | None, tags: dict[str, str]) -> str:
        with mlflow_errors(f"registering a version of {model}"):
            self._ensure_model(model)
            mv = self.client.create_model_version(model, source=source, run_id=run_id, tags=tags)
            return str(mv.version)

    def version_exists(self, model: str, version: str) -> bool:
        try:
            with mlflow_errors(f"reading {model} v{version}"):
                self.client.get_model_version(model, version)
            return True
        except BadInput:
            return False

    def version_source(self, model: str, version: str) -> str:
        with mlflow_errors(f"reading {model} v{version}"):
            return str(self.client.get_model_version(model, version).source)

    def version_run_id(self, model: str, version: str) -> str | None:
        with mlflow_errors(f"reading {model} v{version}"):
            return self.client.get_model_version(model, version).run_id or None

    def get_version_tags(self, model: str, version: str) -> dict[str, str]:
        with mlflow_errors(f"reading {model} v{version}"):
            return dict(self.client.get_model_version(model, version).tags)

    def set_version_tag(self, model: str, version: str, key: str, value: str) -> None:
        with mlflow_errors(f"tagging {model} v{version}"):
            self.client.set_model_version_tag(model, version, key, value)

    def set_version_description(self, model: str, version: str, text: str) -> None:
        with mlflow_errors(f"describing {model} v{version}"):
            self.client.update_model_version(model, version, description=text)

    def get_model_tags(self, model: str) -> dict[str, str]:
        try:
            with mlflow_errors(f"reading model {model}"):
                return dict(self.client.get_registered_model(model).tags)
        except BadInput:
            return {}

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        with mlflow_errors(f"tagging model {model}"):
            self._ensure_model(model)
            self.client.set_registered_model_tag(model, key, value)

    def delete_model_tag(self, model: str, key: str) -> None:
        with mlflow_errors(f"deleting tag {key} of model {model}"):
            self.client.delete_registered_model_tag(model, key)

    def list_versions(self, model: str) -> list[str]:
        with mlflow_errors(f"listing the versions of {model}"):
            found = self.client.search_model_versions(f"name = '{model}'", max_results=10000)
        return sorted((str(v.version) for v in found), key=int)

    def list_models(self) -> list[str]:
        """Every registered model's name (not part of `RegistryBackend`: `mlops migrate-audit` uses it)."""
        names, token = [], None
        with mlflow_errors("listing registered models"):
            while True:
                page = self.client.search_registered_models(max_results=1000, page_token=token)
                names += [m.name for m in page]
                token = page.token
                if not token:
                    return sorted(names)

    def append_audit(self, entry: AuditEntry) -> None:
        self.audit.append(entry)

    def read_audit(self, model: str) -> list[AuditEntry]:
        return self.audit.read(model)


def mlflow_registry(tracking_uri: str | None = None) -> Registry:
    """The registry a step uses: MLflow at `tracking_uri` (default: MLFLOW_TRACKING_URI)."""
    configure_mlflow_client()
    return Registry(MlflowBackend(tracking_uri))
