"""Step (loss gate): register the fine-tuned adapter and make it `candidate` only if it is good enough.

Reads the fine-tuning run's `eval_loss` and `perplexity` and its `adapter/` (PEFT format), refuses
an adapter whose rank is above the serving `max_lora_rank` (bad input, exit 2: vLLM could not
load it), applies `training.llm.gate.loss_gate`, and on pass registers a version of the adapter
model whose source is the run's `adapter/` artifacts, then moves `candidate` with a guarded move
(expecting the candidate read before). On fail nothing is registered or moved. An adapter
identical (sha256) to the current candidate registers nothing: the candidate already is it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.gates import Verdict
from mlops.models.names import LLM_MODEL
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
from training.llm import lora, model_card
from training.llm.gate import loss_gate

GATE_TAG = "gate.loss"
ADAPTER_FILES = ("adapter/adapter_config.json", "adapter/adapter_model.safetensors")
RUN_TAGS_KEPT = (
    "dataset_uri",
    "dataset_sha256",
    "base_uri",
    "base_weights_sha256",
    "method",
    "lora_preset",
    "adapter_sha256",
)


class Config(StepConfig):
    run_id: str = Field("", description="MLflow run of the fine-tuning (the run-id output of finetune)")
    model_name: str = Field(LLM_MODEL, description="registered model of the adapters")
    alias: str = Field("candidate", description="alias moved to the new version on pass")
    max_eval_loss: float = Field(
        1.0, gt=0.0, description="largest eval_loss (nats per answer token) that passes"
    )
    max_perplexity: float = Field(2.0, gt=1.0, description="largest eval perplexity that passes")
    max_lora_rank: int = Field(
        16, ge=1, description="the serving vLLM's --max-lora-rank: a larger adapter is refused"
    )


@dataclass(frozen=True)
class Outcome:
    """The decision and what it changed in the registry."""

    verdict: Verdict
    version: str  # the version now behind the alias after a pass ("" on fail)
    registered: bool
    alias_before: str | None


def adapter_rank(adapter_config: dict[str, object]) -> int:
    """The largest rank of the adapter: `r`, or a larger per-module one from `rank_pattern`."""
    try:
        ranks = [int(adapter_config["r"])]  # type: ignore[call-overload]
        pattern = adapter_config.get("rank_pattern") or {}
        ranks += [int(v) for v in dict(pattern).values()]  # type: ignore[call-overload]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"adapter_config.json has no usable rank 'r': {exc}") from exc
    return max(ranks)


def decide_and_register(
    registry: Registry,
    *,
    model: str,
    alias: str,
    eval_loss: float,
    perplexity: float,
    max_eval_loss: float,
    max_perplexity: float,
    source: str,
    run_id: str | None,
    adapter_sha256: str,
    tags: dict[str, str],
) -> Outcome:
    """Gate the metrics; on pass register + move the alias (guarded), unless the candidate already is this adapter."""
    before = registry.alias(model, alias)
    verdict = loss_gate(eval_loss, perplexity, max_eval_loss, max_perplexity)
    if not verdict.passed:
        return Outcome(verdict, "", False, before)
    if (
        before is not None
        and adapter_sha256
        and registry.tags(model, before).get("adapter_sha256") == adapter_sha256
    ):
        return Outcome(verdict, before, False, before)
    version = registry.register_if_passed(
        verdict,
        gate_tag=GATE_TAG,
        model=model,
        alias=alias,
        source=source,
        run_id=run_id,
        tags={
            **tags,
            "eval_loss": repr(float(eval_loss)),
            "perplexity": repr(float(perplexity)),
            "adapter_sha256": adapter_sha256,
        },
        expect_version=before,
    )
    return Outcome(verdict, version, True, before)


def write_card(client: Any, registry: Registry, training_run: Any, model: str, outcome: Outcome) -> str:
    """The model card with the gate's verdict: `adapter/README.md` of the run and, when this step
    registered a version, that version's description."""
    run_id = training_run.info.run_id
    version = outcome.version if outcome.registered else ""
    card = model_card.render(
        training_run.data.params,
        training_run.data.metrics,
        training_run.data.tags,
        run_id=run_id,
        model=model,
        version=version,
        gate=outcome.verdict,
    )
    with tempfile.TemporaryDirectory(prefix="llm-card-") as tmp:
        path = Path(tmp) / "README.md"
        path.write_text(card)
        with mlflow_errors(f"writing the model card of run {run_id}"):
            client.log_artifact(run_id, str(path), "adapter")
    if version:
        registry.describe_version(model, version, model_card.description(card, run_id))
    return card


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    client = tracking_client()
    training_run = get_run(client, cfg.run_id)
    metrics = training_run.data.metrics
    missing = [name for name in ("eval_loss", "perplexity") if name not in metrics]
    if missing:
        raise BadInput(f"run {cfg.run_id} has no {', '.join(missing)} metric; is it a fine-tuning run?")
    with mlflow_errors(f"listing the adapter of run {cfg.run_id}"):
        files = {item.path for item in client.list_artifacts(cfg.run_id, "adapter")}
    absent = [name for name in ADAPTER_FILES if name not in files]
    if absent:
        raise BadInput(f"run {cfg.run_id} has no {', '.join(absent)}: not a PEFT adapter")
    with (
        tempfile.TemporaryDirectory(prefix="llm-register-") as tmp,
        mlflow_errors("reading adapter_config.json"),
    ):
        path = client.download_artifacts(cfg.run_id, ADAPTER_FILES[0], tmp)
        try:
            adapter_config = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise BadInput(f"run {cfg.run_id}: adapter_config.json is not JSON: {exc}") from exc
    rank = adapter_rank(adapter_config)
    lora.check_serving_rank(rank, cfg.max_lora_rank)
    run_tags = training_run.data.tags
    tags = {key: run_tags.get(key, "") for key in RUN_TAGS_KEPT}
    tags.update(
        {
            "lora_rank": str(rank),
            "lora_alpha": str(adapter_config.get("lora_alpha", "")),
            "target_modules": ",".join(sorted(adapter_config.get("target_modules") or [])),
            "training_run_id": cfg.run_id,
        }
    )
    registry = registry or mlflow_registry()
    outcome = decide_and_register(
        registry,
        model=cfg.model_name,
        alias=cfg.alias,
        eval_loss=float(metrics["eval_loss"]),
        perplexity=float(metrics["perplexity"]),
        max_eval_loss=cfg.max_eval_loss,
        max_perplexity=cfg.max_perplexity,
        source=artifact_uri(training_run, "adapter"),
        run_id=cfg.run_id,
        adapter_sha256=tags.pop("adapter_sha256"),
        tags=tags,
    )
    verdict = outcome.verdict
    record = {
        **verdict.as_dict(),
        "model": cfg.model_name,
        "alias": cfg.alias,
        "version": outcome.version,
        "registered": outcome.registered,
        "alias_before": outcome.alias_before,
        "max_eval_loss": cfg.max_eval_loss,
        "max_perplexity": cfg.max_perplexity,
        "lora_rank": rank,
        "max_lora_rank": cfg.max_lora_rank,
    }
    log_json(client, cfg.run_id, record, "gates", "loss.json")
    write_card(client, registry, training_run, cfg.model_name, outcome)
    registered = f"{cfg.model_name}/{outcome.version}" if outcome.registered else ""
    tag_verdict(client, cfg.run_id, GATE_TAG, verdict.label, verdict.reason, registered)
    if not verdict.passed:
        summary = f"fail: {verdict.reason}; {cfg.alias} stays at {outcome.alias_before or 'unset'}"
    elif outcome.registered:
        summary = f"pass: {cfg.model_name} v{outcome.version} is {cfg.alias} (was {outcome.alias_before or 'unset'})"
    else:
        summary = (
            f"pass: the adapter is identical to {cfg.alias} v{outcome.version}; nothing registered or moved"
        )
    return StepResult(
        outputs={
            "verdict": verdict.label,
            "reason": verdict.reason,
            "version": outcome.version,
            "registered": str(outcome.registered).lower(),
        },
        summary=summary,
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
