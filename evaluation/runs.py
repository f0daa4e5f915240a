"""The evaluation's MLflow run: the one hand-over between generate, judge and gate.

`generate` starts it and records which versions it asked (tags `eval.staged_version`,
`eval.live_version`); each later step reads the previous step's JSONL artifact from it and adds
its own. Artifacts live under `evaluation/`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops.errors import BadInput
from mlops.tracking import get_run, mlflow_errors

ARTIFACT_DIR = "evaluation"
ANSWERS = "answers.jsonl"
GRADES = "grades.jsonl"
TAG_STAGED = "eval.staged_version"
TAG_LIVE = "eval.live_version"
TAG_MODEL = "eval.model"


def dump_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


def log_text(client: Any, run_id: str, text: str, filename: str) -> None:
    """Log `text` as `evaluation/<filename>` on the run."""
    with tempfile.TemporaryDirectory(prefix="eval-artifact-") as tmp:
        path = Path(tmp) / filename
        path.write_text(text, encoding="utf-8")
        with mlflow_errors(f"logging {ARTIFACT_DIR}/{filename} to run {run_id}"):
            client.log_artifact(run_id, str(path), ARTIFACT_DIR)


def read_jsonl(client: Any, run_id: str, filename: str, produced_by: str) -> list[dict[str, Any]]:
    """Rows of `evaluation/<filename>` of the run; BadInput if the step that writes it did not run."""
    with tempfile.TemporaryDirectory(prefix="eval-artifact-") as tmp:
        try:
            with mlflow_errors(f"reading {ARTIFACT_DIR}/{filename} of run {run_id}"):
                path = Path(client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{filename}", tmp))
        except (OSError, BadInput) as exc:
            raise BadInput(f"run {run_id} has no {ARTIFACT_DIR}/{filename}: did {produced_by} run?") from exc
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BadInput(f"{filename} line {number} of run {run_id} is not JSON") from exc
    return rows


def evaluation_run(client: Any, run_id: str) -> Any:
    """The finished run of `evaluation.generate`; BadInput for any other run."""
    run = get_run(client, run_id)
    if TAG_STAGED not in run.data.tags:
        raise BadInput(f"run {run_id} is not an evaluation run (no {TAG_STAGED} tag); pass generate's run-id")
    return run
