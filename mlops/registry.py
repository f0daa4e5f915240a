"""MLflow model registry: the alias state machine, guarded moves and an audit trail.

Every alias move names the state it expects (`expect_version`), re-reads, refuses on mismatch
(someone else moved it), sets, and re-reads to confirm. Every move is recorded twice: as tags
on the version (`alias.<alias>.set_by`, ...) and as an entry in the model's audit log (model
tags `audit.<time>.<seq>`), which `mlops history MODEL` prints.

`Registry` holds the rules; a `RegistryBackend` (MLflow, or in-memory for unit tests) holds
the state. Backends raise `Transient` when the server cannot be reached.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from mlops.errors import AliasConflict, BadInput
from mlops.gates import Verdict
from mlops.tracking import TAG_VALUE_LIMIT, configure_mlflow_client, mlflow_errors

AUDIT_PREFIX = "audit."
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
    def get_model_tags(self, model: str) -> dict[str, str]: ...
    def set_model_tag(self, model: str, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class AuditEntry:
    """One alias move: who moved which alias of which model from where to where, when and why."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    at: float

    def line(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.at))
        return (
            f"{stamp}Z  {self.alias:<12} {self.from_version or '-':>4} -> {self.to_version or '-':<4} "
            f"by {self.actor}: {self.reason}"
        )


def default_actor() -> str:
    """Who is moving: the Argo workflow if there is one, else user@host."""
    workflow = os.environ.get("ARGO_WORKFLOW_NAME") or os.environ.get("MLOPS_WORKFLOW_NAME")
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
            return self._record(model, alias, current, version, f"{reason} (already there)")
        if version is None:
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
                    f"alias.{alias}.set_at": f"{time.time():.3f}",
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

    def history(self, model: str) -> list[AuditEntry]:
        """The model's audit log, oldest first."""
        entries = []
        for key, value in self.backend.get_model_tags(model).items():
            if key.startswith(AUDIT_PREFIX):
                entries.append(AuditEntry(**json.loads(value)))
        return sorted(entries, key=lambda e: e.at)

    def _record(self, model: str, alias: str, old: str | None, new: str | None, reason: str) -> AuditEntry:
        entry = AuditEntry(model, alias, old, new, self.actor, reason[:2000], time.time())
        key = f"{AUDIT_PREFIX}{entry.at:.6f}.{os.getpid()}"
        self.backend.set_model_tag(model, key, json.dumps(asdict(entry)))
        return entry


class InMemoryBackend:
    """A registry held in a dict: for unit tests and dry runs."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self.aliases: dict[str, dict[str, str]] = {}
        self.model_tags: dict[str, dict[str, str]] = {}

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

    def get_model_tags(self, model: str) -> dict[str, str]:
        return dict(self.model_tags.get(model, {}))

    def set_model_tag(self, model: str, key: str, value: str) -> None:
        self.model_tags.setdefault(model, {})[key] = value


class MlflowBackend:
    """The real registry: MLflow's model registry over its REST API."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

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


def mlflow_registry(tracking_uri: str | None = None) -> Registry:
    """The registry a step uses: MLflow at `tracking_uri` (default: MLFLOW_TRACKING_URI)."""
    configure_mlflow_client()
    return Registry(MlflowBackend(tracking_uri))
