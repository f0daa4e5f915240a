"""Step (load test): put the slot serving the `staged` adapter under load and record what it did.

Resolves `<model>@staged`, takes prompts from the eval split of the version's dataset (tag
`dataset_uri`; `prompt_inference` for completions, the user turn for chat), checks the server
lists the slot (`--served-model`; unreachable: exit 3, not served: exit 2), then runs the load
generator (`performance.loadgen`) while sampling the server's /metrics. Server-side figures come
from Prometheus over the measured window, or from the /metrics scrape deltas when Prometheus
cannot answer (`server_metrics_source` says which).

A server that dies mid-test is not an error: its requests are failed records, the step finishes
and the gate fails on them. Logged as one MLflow run (experiment `--experiment`): every figure
as a metric (client side as `vllm bench serve` names them; server side `server.*`), tags
`model`, `version`, `served_model`, `aborted`, `failure_reasons`, and artifacts `loadtest/`
(results.json, requests.jsonl, plots/latency_distributions.png, plots/timeline.png).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from mlops import step
from mlops.errors import BadInput
from mlops.models.names import LLM_MODEL
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.tracking import TAG_VALUE_LIMIT, configure_mlflow_client, mlflow_errors
from performance.loadgen import LoadResult, LoadSettings, LoadSpec, Prompt, prompts_from_records, run_load
from performance.prometheus import MetricsSampler, server_figures
from performance.summary import one_line


class Config(LoadSettings):
    model_name: str = Field(LLM_MODEL, description="registered model of the adapters")
    alias: str = Field("staged", description="the alias of the version under test")
    served_model: str = Field("aws-rag-qa-candidate", description="served name of the slot holding it")
    vllm_url: str = Field(
        "http://127.0.0.1:8000", description="base URL of the vLLM OpenAI server (or its Service)"
    )
    metrics_url: str = Field(
        "", description="the server's Prometheus exposition (default: <vllm-url>/metrics)"
    )
    prometheus_url: str = Field(
        "", description="Prometheus base URL; '' or unreachable: /metrics scrape deltas"
    )
    prometheus_pad_s: float = Field(
        15.0, ge=0, description="Prometheus scrape interval: window padding and wait"
    )
    server_model_name: str = Field("", description="model_name label of the server's series ('' = all)")
    dataset_uri: str = Field(
        "", description="prepared dataset for prompts (default: the version's dataset_uri tag)"
    )
    split: str = Field("eval", description="split of the prepared dataset the prompts come from")
    max_prompts: int = Field(0, ge=0, description="use at most this many prompts (0: all)")
    sample_interval_s: float = Field(
        2.0, gt=0, description="seconds between /metrics samples during the test"
    )
    experiment: str = Field(LLM_MODEL, description="MLflow experiment of the run")
    warmup_s: float = Field(5.0, ge=0.0, description="seconds of load at the start left out of the figures")

    def spec(self) -> LoadSpec:
        return self.load_spec(self.vllm_url, self.served_model)


def load_prompts(uri: str, split: str, max_prompts: int) -> list[Prompt]:
    """Prompts of one split of a prepared dataset (local folder or committed s3:// prefix)."""
    from mlops.datasets import ragqa

    with tempfile.TemporaryDirectory(prefix="perf-prompts-") as tmp:
        folder = ragqa.fetch(uri, Path(tmp), files=(ragqa.split_file(split),))
        records = ragqa.read_split(folder, split)
    prompts = prompts_from_records(records)
    if not prompts:
        raise BadInput(f"{uri}: the {split} split holds no records to make prompts of")
    return prompts[:max_prompts] if max_prompts else prompts


def check_slot(vllm_url: str, served_model: str) -> None:
    """The server answers and lists the slot; Transient if unreachable, BadInput if the slot is empty."""
    from mlops.serving.vllm import connect

    server = connect(vllm_url, timeout_s=15.0)
    try:
        served = {m.id for m in server.models()}
    finally:
        server.close()
    if served_model not in served:
        raise BadInput(
            f"{vllm_url} does not serve {served_model!r} (it serves {sorted(served)}): is the slot loaded?"
        )


async def measure(cfg: Config, prompts: list[Prompt]) -> tuple[LoadResult, MetricsSampler]:
    """The load test, with /metrics sampled before, during and after it."""
    metrics_url = cfg.metrics_url or f"{cfg.vllm_url.rstrip('/')}/metrics"
    if "://" not in metrics_url:
        metrics_url = f"http://{metrics_url}"
    sampler = MetricsSampler(url=metrics_url, interval_s=cfg.sample_interval_s)
    stop, ready = asyncio.Event(), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop, ready))
    try:
        await ready.wait()  # the "before" scrape is taken ahead of the first request
        result = await run_load(cfg.spec(), prompts, progress=cfg.progress)
    finally:
        stop.set()
        await sampling
    return result, sampler


def numeric(figures: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers among `figures`, as MLflow metrics."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in figures.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and k not in ("window_start", "window_end")
    }


def log_run(
    cfg: Config,
    version: str,
    dataset_uri: str,
    result: LoadResult,
    figures: dict[str, Any],
    server: dict[str, Any],
) -> str:
    """One MLflow run with the figures, tags and artifacts; its id."""
    import mlflow

    from performance.report import write_artifacts

    configure_mlflow_client()
    context = {
        "model": cfg.model_name,
        "version": version,
        "served_model": cfg.served_model,
        "dataset_uri": dataset_uri,
    }
    with mlflow_errors(f"starting a run in experiment {cfg.experiment}"):
        mlflow.set_experiment(cfg.experiment)
        active = mlflow.start_run(
            run_name=f"loadtest-{cfg.served_model}-v{version}",
            tags={
                "mlops.step": "loadtest",
                **context,
                "mode": result.spec.mode,
                "server_metrics_source": str(server.get("source", "")),
                "server_metrics_note": str(server.get("note", ""))[:TAG_VALUE_LIMIT],
                "aborted": result.aborted[:TAG_VALUE_LIMIT],
                "failure_reasons": json.dumps(figures["failure_reasons"])[:TAG_VALUE_LIMIT],
            },
        )
    with (
        mlflow_errors("logging the load-test run"),
        active as mlflow_run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params({k: str(v) for k, v in cfg.model_dump().items()})
        mlflow.log_metrics({**numeric(figures), **numeric(server, "server.")})
        write_artifacts(result, figures, server, context, Path(tmp))
        mlflow.log_artifacts(tmp, "loadtest")
        return str(mlflow_run.info.run_id)


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    version = registry.require_alias(cfg.model_name, cfg.alias)
    dataset_uri = cfg.dataset_uri or registry.tags(cfg.model_name, version).get("dataset_uri", "")
    if not dataset_uri:
        raise BadInput(
            f"{cfg.model_name} v{version} has no dataset_uri tag: give --dataset-uri for the prompts"
        )
    prompts = load_prompts(dataset_uri, cfg.split, cfg.max_prompts)
    cfg.spec().validate()
    check_slot(cfg.vllm_url, cfg.served_model)
    print(
        f"load test of {cfg.model_name} v{version} as {cfg.served_model}: {cfg.spec().mode}, {len(prompts)} prompts",
        flush=True,
    )
    result, sampler = asyncio.run(measure(cfg, prompts))
    figures = result.summary(cfg.slos())
    labels = {"model_name": cfg.server_model_name} if cfg.server_model_name else {}
    server = server_figures(
        prometheus_url=cfg.prometheus_url,
        sampler=sampler,
        window_start=result.window_start,
        window_end=result.window_end,
        pad_s=cfg.prometheus_pad_s,
        labels=labels,
        adapter=cfg.served_model,
    )
    run_id = log_run(cfg, version, dataset_uri, result, figures, server)
    summary = one_line(figures) + f"; server metrics: {server['source']}"
    if result.aborted:
        summary += f"; {result.aborted}"
    return StepResult(
        outputs={
            "run-id": run_id,
            "version": version,
            "success-rate": f"{figures['success_rate']:.6g}",
            "request-throughput": f"{figures['request_throughput']:.6g}",
            "p95-latency-s": "" if math.isnan(figures["p95_e2el_s"]) else f"{figures['p95_e2el_s']:.6g}",
            "server-metrics-source": str(server["source"]),
        },
        summary=summary,
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
