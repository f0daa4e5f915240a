"""Step (gate 1): register a trained model and make it `champion` only if it is good enough.

Reads the run's `best_val_accuracy` and the current champion's (the version tag written here at
registration), applies `mlops.resnet_gates.quality_gate`, and on pass registers a version whose source is
the run's `checkpoint/` artifacts, then moves the alias guarded by the champion read before.
On fail nothing is registered or moved. The verdict is logged to the training run either way.
An accuracy given as a percent is bad input (exit 2) and changes nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pydantic import Field, field_validator

from mlops import gates, step
from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.gates import Verdict
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.tracking import (
    artifact_uri,
    get_run,
    log_json,
    mlflow_errors,
    tag_verdict,
    tracking_client,
)
from training.resnet import gates as resnet_gates

ACCURACY_TAG = "best_val_accuracy"
GATE_TAG = "gate.quality"


class Config(StepConfig):
    run_id: str = Field(description="MLflow run id of the training run (the run-id output of train)")
    model_name: str = Field("resnet18-imagenette", description="registered model name")
    threshold: float = Field(0.9, description="minimum best_val_accuracy, a fraction 0..1")
    min_improvement: float = Field(
        0.0,
        description="required gain over the champion (fraction -1..1); 0 = must beat it strictly, negative = allowed regression",
    )
    alias: str = Field("champion", description="alias moved to the new version on pass")

    @field_validator("threshold")
    @classmethod
    def _threshold_is_fraction(cls, value: float) -> float:
        # Refuse a percent at parse time: later it would fail only after MLflow calls (exit 3 if down).
        try:
            return gates.require_fraction("threshold", value)
        except BadInput as exc:
            raise ValueError(str(exc)) from exc


@dataclass(frozen=True)
class GateOutcome:
    """The decision and what it changed in the registry."""

    verdict: Verdict
    version: str  # the new version, "" when nothing was registered
    champion_before: str | None
    champion_after: str | None


def champion_accuracy(registry: Registry, model: str, version: str | None) -> float | None:
    """The accuracy recorded on the current champion version (None when there is no champion)."""
    if version is None:
        return None
    value = registry.tags(model, version).get(ACCURACY_TAG)
    if value is None:
        raise BadInput(
            f"{model} v{version} holds the alias but has no {ACCURACY_TAG!r} tag to compare with; "
            f"tag it or move the alias by hand"
        )
    try:
        return float(value)
    except ValueError as exc:
        raise BadInput(f"{model} v{version} tag {ACCURACY_TAG}={value!r} is not a number") from exc


def decide_and_register(
    registry: Registry,
    *,
    model: str,
    alias: str,
    accuracy: float,
    threshold: float,
    min_improvement: float,
    source: str,
    run_id: str | None,
    extra_tags: dict[str, str] | None = None,
) -> GateOutcome:
    """Gate `accuracy` against the threshold and the champion; on pass register + move the alias (guarded)."""
    before = registry.alias(model, alias)
    verdict = resnet_gates.quality_gate(
        accuracy, threshold, champion_accuracy(registry, model, before), min_improvement
    )
    version = registry.register_if_passed(
        verdict,
        gate_tag=GATE_TAG,
        model=model,
        alias=alias,
        source=source,
        run_id=run_id,
        tags={ACCURACY_TAG: repr(float(accuracy)), **(extra_tags or {})},
        expect_version=before,
    )
    return GateOutcome(verdict, version, before, version or before)


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    client = tracking_client()
    training_run = get_run(client, cfg.run_id)
    metrics = training_run.data.metrics
    if ACCURACY_TAG not in metrics:
        raise BadInput(f"run {cfg.run_id} has no {ACCURACY_TAG} metric; is it a training run?")
    with mlflow_errors(f"listing checkpoint of run {cfg.run_id}"):
        checkpoint_files = {item.path for item in client.list_artifacts(cfg.run_id, "checkpoint")}
    if "checkpoint/model.pt" not in checkpoint_files:
        raise BadInput(f"run {cfg.run_id} has no checkpoint/model.pt artifact")
    registry = registry or mlflow_registry()
    dataset_uri = training_run.data.tags.get("dataset_uri", "")
    outcome = decide_and_register(
        registry,
        model=cfg.model_name,
        alias=cfg.alias,
        accuracy=float(metrics[ACCURACY_TAG]),
        threshold=cfg.threshold,
        min_improvement=cfg.min_improvement,
        source=artifact_uri(training_run, "checkpoint"),
        run_id=cfg.run_id,
        extra_tags={
            "dataset_uri": dataset_uri,
            "dataset_sha256": training_run.data.tags.get("dataset_sha256", ""),
        },
    )
    verdict = outcome.verdict
    record = {
        **verdict.as_dict(),
        "model": cfg.model_name,
        "alias": cfg.alias,
        "registered_version": outcome.version,
        "champion_before": outcome.champion_before,
        "champion_after": outcome.champion_after,
        "threshold": cfg.threshold,
        "min_improvement": cfg.min_improvement,
    }
    log_json(client, cfg.run_id, record, "gates", "quality.json")
    registered = f"{cfg.model_name}/{outcome.version}" if outcome.version else ""
    tag_verdict(client, cfg.run_id, GATE_TAG, verdict.label, verdict.reason, registered)
    if outcome.version:
        summary = f"pass: {cfg.model_name} v{outcome.version} is {cfg.alias} (was {outcome.champion_before or 'unset'})"
    else:
        summary = f"fail: {verdict.reason}; {cfg.alias} stays at {outcome.champion_before or 'unset'}"
    return StepResult(
        outputs={
            "verdict": verdict.label,
            "reason": verdict.reason,
            "version": outcome.version,
            "champion-version": outcome.champion_after or "",
        },
        summary=summary,
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
