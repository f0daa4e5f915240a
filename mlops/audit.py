"""The registry's audit trail: one entry per alias move, ISO-8601 UTC times, and the old tag format.

On MLflow each move is one run in the experiment `registry-audit` (`MlflowAuditLog`): the run is
named `<model> <alias>: v1 -> v2`, its params are the move (model, alias, from, to, actor,
reason, workflow; params are write-once, so an entry cannot be edited afterwards), its start
time is the move's time and its description the reason. The experiment's table in the MLflow UI
is the readable log (filter `params.model = '...'`), and `mlops history MODEL` reads it with one
search per 1000 moves.

Before that, moves were kept as registered-model tags `audit.<epoch>.<pid>` holding JSON, and
version tags held epoch seconds (`alias.<alias>.set_at`). `legacy_entries` and
`epoch_version_tags` read those; `Registry.migrate_audit` converts them.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.errors import BadInput
from mlops.tracking import mlflow_errors

AUDIT_EXPERIMENT = "registry-audit"
LEGACY_PREFIX = "audit."  # model tags of the old format: `audit.<epoch>.<pid>` -> JSON entry
REASON_LIMIT = 2000
MIGRATED_FROM_TAG = "mlops.audit.migrated_from"  # on a run converted from a legacy tag: that tag's key
AT_TAG = "mlops.audit.at"
EXPERIMENT_TAGS = {
    "mlflow.note.content": "One run per registry alias move (mlops/audit.py); `bin/mlops history MODEL` "
    "prints a model's moves. Search e.g. params.model = 'mistral-7b-lora'.",
    # MLflow 3's UI opens an experiment of this kind on its runs table, not the GenAI trace overview
    "mlflow.experimentKind": "custom_model_development",
}
# A version tag holding a time: its last dotted part is `at` or ends in `_at` (set_at, rolled_back_at).
_TIME_TAG = re.compile(r"(^|\.)([a-z0-9_]*_)?at$")
_EPOCH_RANGE = (1e9, 1e11)  # 2001 .. 5138: a number outside is not an epoch time


def iso_utc(epoch: float) -> str:
    """`2026-12-06T23:41:07Z`: seconds since the epoch as ISO-8601 UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    """Now, as `iso_utc` writes it: the value of every time tag."""
    return iso_utc(time.time())


def parse_iso_utc(text: str) -> float:
    """Seconds since the epoch of an ISO-8601 UTC time written by `iso_utc`."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise BadInput(f"{text!r} is not an ISO-8601 UTC time like 2026-12-06T23:41:07Z") from exc


@dataclass(frozen=True)
class AuditEntry:
    """One alias move: who moved which alias of which model from where to where, when and why."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    at: float  # seconds since the epoch (UTC)
    workflow: str = ""  # the Argo workflow that moved it ("" from a shell)
    migrated_from: str = field(default="", compare=False)  # the legacy model tag it came from

    @property
    def when(self) -> str:
        return iso_utc(self.at)

    @property
    def title(self) -> str:
        """`resnet18-imagenette live: v1 -> v2`: the audit run's name."""
        return f"{self.model} {self.alias}: {_v(self.from_version)} -> {_v(self.to_version)}"

    def line(self) -> str:
        return (
            f"{self.when}  {self.alias:<12} {self.from_version or '-':>4} -> {self.to_version or '-':<4} "
            f"by {self.actor}: {self.reason}"
        )


def _v(version: str | None) -> str:
    return f"v{version}" if version else "unset"


def workflow_of(actor: str) -> str:
    return actor.removeprefix("workflow/") if actor.startswith("workflow/") else ""


def legacy_entries(model_tags: Mapping[str, str]) -> list[AuditEntry]:
    """The entries kept as `audit.*` model tags (the old format), each naming its tag; unreadable ones refused."""
    entries = []
    for key, value in model_tags.items():
        if not key.startswith(LEGACY_PREFIX):
            continue
        try:
            data = json.loads(value)
            entry = AuditEntry(
                model=str(data["model"]),
                alias=str(data["alias"]),
                from_version=data.get("from_version"),
                to_version=data.get("to_version"),
                actor=str(data["actor"]),
                reason=str(data.get("reason", "")),
                at=float(data["at"]),
                workflow=workflow_of(str(data["actor"])),
                migrated_from=key,
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"model tag {key!r} is not an audit entry: {exc}") from exc
        entries.append(entry)
    return entries


def epoch_version_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The time tags of a version still in epoch seconds, with their ISO-8601 UTC values."""
    converted = {}
    for key, value in tags.items():
        if not _TIME_TAG.search(key):
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue  # already ISO (or not a time at all): left as it is
        if _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]:
            converted[key] = iso_utc(seconds)
    return converted


class MlflowAuditLog:
    """The audit trail as runs of the `registry-audit` experiment, one per alias move."""

    def __init__(self, client: Any, experiment: str = AUDIT_EXPERIMENT) -> None:
        self.client = client
        self.experiment = experiment
        self._experiment_id: str | None = None
        self._deleted = False

    def _find_experiment(self) -> str | None:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._deleted = found.lifecycle_stage == "deleted"
                self._experiment_id = str(found.experiment_id)
        return self._experiment_id

    def _ensure_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self._find_experiment()
        if found is not None:
            if self._deleted:  # MLflow takes no new run there; restoring it needs more than EDIT rights
                raise BadInput(
                    f"MLflow experiment {self.experiment!r} is deleted: restore it (UI, or "
                    f"`mlflow experiments restore --experiment-id {found}`) before moving aliases"
                )
            return found
        try:
            self._experiment_id = str(self.client.create_experiment(self.experiment, tags=EXPERIMENT_TAGS))
        except MlflowException as exc:  # created meanwhile by another step
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            self._experiment_id = str(self.client.get_experiment_by_name(self.experiment).experiment_id)
        return self._experiment_id

    def append(self, entry: AuditEntry) -> None:
        from mlflow.entities import Param, RunStatus

        at_ms = round(entry.at * 1000)
        with mlflow_errors(f"recording the move of {entry.model}@{entry.alias} in {self.experiment}"):
            experiment_id = self._ensure_experiment()
            tags = {
                "mlflow.user": entry.actor,
                "mlflow.note.content": entry.reason,
                AT_TAG: entry.when,
            }
            if entry.migrated_from:
                tags[MIGRATED_FROM_TAG] = entry.migrated_from
            run = self.client.create_run(
                experiment_id, start_time=at_ms, tags=tags, run_name=entry.title[:250]
            )
            params = {
                "model": entry.model,
                "alias": entry.alias,
                "from": entry.from_version or "",
                "to": entry.to_version or "",
                "actor": entry.actor,
                "reason": entry.reason[:REASON_LIMIT],
                "workflow": entry.workflow,
            }
            self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
            # set_terminated prints "View run ... / View experiment ..." for every run: one move
            # would print two lines of links into a step's log, so they go nowhere
            with contextlib.redirect_stdout(io.StringIO()):
                self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED), at_ms)

    def read(self, model: str) -> list[AuditEntry]:
        """Every recorded move of `model`, oldest first (one request per 1000 moves)."""
        with mlflow_errors(f"reading the audit trail of {model}"):
            experiment_id = self._find_experiment()
            if experiment_id is None:
                return []
            quoted = "'" + model.replace("'", "\\'") + "'"
            entries, token = [], None
            while True:
                page = self.client.search_runs(
                    [experiment_id],
                    filter_string=f"params.model = {quoted}",
                    order_by=["attributes.start_time ASC"],
                    max_results=1000,
                    page_token=token,
                )
                entries += [_entry_of(run) for run in page]
                token = page.token
                if not token:
                    return entries


def _entry_of(run: Any) -> AuditEntry:
    params, tags = run.data.params, run.data.tags
    return AuditEntry(
        model=params["model"],
        alias=params["alias"],
        from_version=params.get("from") or None,
        to_version=params.get("to") or None,
        actor=params.get("actor", ""),
        reason=tags.get("mlflow.note.content") or params.get("reason", ""),
        at=run.info.start_time / 1000,
        workflow=params.get("workflow", ""),
        migrated_from=tags.get(MIGRATED_FROM_TAG, ""),
    )
