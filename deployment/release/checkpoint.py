"""Step (first of an end-to-end workflow): record each model's aliases before the run changes them.

Stored as a model tag named after the workflow run (`release.<workflow>.start`), read by the
exit handler: what to put back after a failed run, and the summary's "before" column.
"""

from __future__ import annotations

import sys

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.release import record_start
from mlops.step import StepResult, workflow_name


class Config(StepConfig):
    models: str = Field(description="registered models whose aliases the run may move (comma-separated)")


def model_list(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise BadInput("--models is required: the registered models the workflow changes")
    return models


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    workflow = workflow_name()
    lines = []
    for model in model_list(cfg.models):
        start = record_start(registry, model, workflow)
        held = ", ".join(f"{a}=v{v}" for a, v in start["aliases"].items() if v) or "no aliases"
        lines.append(f"{model}: {held}")
    return StepResult(outputs={"workflow": workflow}, summary="; ".join(lines))


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
