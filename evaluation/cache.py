"""A resumable answer cache: one JSONL file per (model, slot, adapter version, generation settings).

A line is `{"id": <question hash>, "text": ..., ...}`, appended and flushed as each answer
arrives, so a step killed halfway (or retried by Argo after a transient fault) asks only what is
missing. A torn last line from a crash is skipped on reading.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any


class AnswerCache:
    def __init__(
        self, directory: Path, model: str, slot: str, version: str, settings: dict[str, Any]
    ) -> None:
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        self.path = directory / model / f"{slot}-v{version}-{key}.jsonl"
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        entries: dict[str, dict[str, Any]] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn write of a killed run
            if isinstance(entry, dict) and "id" in entry and "text" in entry:
                entries[str(entry["id"])] = entry
        return entries

    def add(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
