"""Step (end of an end-to-end workflow's exit handler): what the run changed, as a report.

For each model: aliases before (recorded by checkpoint) and after, every alias move since the
run started (who, from, to, why) and the verdict tags of the versions involved. Printed as
Markdown, written as `summary.md` / `summary.json` to an MLflow run in experiment
`<model>-releases` (run name = the workflow run), and the workflow's status tagged on it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.release.checkpoint import model_list
from mlops import step
from mlops.config import StepConfig
from mlops.registry import Registry, mlflow_registry
from mlops.release import summarise, to_markdown
from mlops.step import StepResult, workflow_name
from mlops.tracking import mlflow_errors


class Config(StepConfig):
    models: str = Field(description="registered models to summarise (comma-separated)")
    workflow_status: str = Field("", description="the workflow's status ({{workflow.status}})")


def log_summary(model: str, workflow: str, status: str, summary: dict[str, object], markdown: str) -> str:
    import mlflow

    with mlflow_errors(f"logging the release summary of {model}"):
        mlflow.set_experiment(f"{model}-releases")
        with (
            mlflow.start_run(run_name=workflow, tags={"workflow": workflow, "status": status}) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            (Path(tmp) / "summary.md").write_text(markdown)
            (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
            mlflow.log_artifacts(tmp)
        return str(run.info.run_id)


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    workflow = workflow_name()
    status = cfg.workflow_status or "unknown"
    run_ids = []
    for model in model_list(cfg.models):
        summary = summarise(registry, model, workflow, status)
        markdown = to_markdown(summary)
        print(markdown)
        run_ids.append(log_summary(model, workflow, status, summary, markdown))
    return StepResult(
        outputs={"run-ids": ",".join(run_ids)},
        summary=f"{workflow} {status}: summary logged to {len(run_ids)} run(s)",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
