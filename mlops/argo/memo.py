"""Argo's `memoize` for the local executor: a template's outputs cached under a key, with a max age.

On a cluster Argo keeps the cache in a ConfigMap (`memoize.cache.configMap.name`); locally it is
one JSON file per key under `<state>/memo/<configmap>/`. A template whose key has a fresh entry
is not run: its node succeeds at once with the cached outputs, as Argo does. Only succeeded
nodes are stored.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Memo:
    key: str
    max_age_s: float | None
    path: Path

    def lookup(self, now: float | None = None) -> tuple[dict[str, str], str | None] | None:
        """(outputs, outputs.result) when the entry exists and is younger than max age."""
        try:
            entry = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        age = (now or time.time()) - float(entry.get("at", 0))
        if self.max_age_s is not None and age > self.max_age_s:
            return None
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict):
            return None
        result = entry.get("result")
        return {str(k): str(v) for k, v in outputs.items()}, None if result is None else str(result)

    def store(self, outputs: dict[str, str], result: str | None = None) -> None:
        """Save a succeeded node's outputs and its stdout (`outputs.result`, which Argo caches too)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        entry = {"key": self.key, "at": time.time(), "outputs": outputs, "result": result}
        partial.write_text(json.dumps(entry, indent=2))
        partial.replace(self.path)


def memo_for(spec: dict[str, Any], key: str, max_age_s: float | None, state_dir: Path) -> Memo:
    cache = str(((spec.get("cache") or {}).get("configMap") or {}).get("name") or "memo")
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Memo(key, max_age_s, state_dir / "memo" / cache / f"{digest}.json")
