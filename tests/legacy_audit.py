"""Registry state as the old audit format wrote it: the input of the migration tests.

Before the audit trail had its own MLflow experiment, each alias move was a registered-model tag
`audit.<epoch seconds>.<pid>` holding the entry as JSON, and version tags held epoch seconds
(`alias.<alias>.set_at`). These helpers write exactly that, through any `RegistryBackend`.
"""

from __future__ import annotations

import json

from mlops.registry import RegistryBackend


def write_old_move(
    backend: RegistryBackend,
    model: str,
    alias: str,
    old: str | None,
    new: str | None,
    *,
    at: float,
    actor: str = "workflow/vision-training-abc12",
    reason: str = "quality gate passed",
) -> str:
    """One move as the old `Registry._record` and `move_alias` stored it; the model tag's key."""
    entry = {
        "model": model,
        "alias": alias,
        "from_version": old,
        "to_version": new,
        "actor": actor,
        "reason": reason,
        "at": at,
    }
    key = f"audit.{at:.6f}.4242"
    backend.set_model_tag(model, key, json.dumps(entry))
    if new is not None:
        backend.set_version_tag(model, new, f"alias.{alias}.set_at", f"{at:.3f}")
        backend.set_version_tag(model, new, f"alias.{alias}.set_by", actor)
        backend.set_version_tag(model, new, f"alias.{alias}.from", old or "")
    return key
