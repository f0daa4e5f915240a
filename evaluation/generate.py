"""Step: answers from the candidate slot (and the live slot, if a version is live) for the evaluation split.

Reads `staged` (and `live`) of the adapter model, the staged version's `dataset_uri` tag (or
`--dataset-uri`), and `eval.jsonl`; checks that `<base>-candidate` (and `<base>-live`) are loaded
and hold those versions (the adapter folder `.../<model>/<version>` vLLM reports); asks every
question of each slot at temperature 0, concurrently, retrying transient faults, caching each
answer on disk by (question, slot, version). Starts the evaluation's MLflow run with
`evaluation/answers.jsonl`. A missing slot, a slot holding another version, or an empty
evaluation set is bad input (exit 2); a server that stays down is transient (exit 3).
Outputs: `run-id`, `staged-version`, `live-version` ('' for a first model), `questions`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from evaluation.cache import AnswerCache
from evaluation.dataset import select
from evaluation.runs import ANSWERS, ARTIFACT_DIR, TAG_LIVE, TAG_MODEL, TAG_STAGED, dump_jsonl
from mlops import step
from mlops.config import StepConfig
from mlops.datasets.ragqa import EvalItem, fetch_eval_file, parse_items
from mlops.errors import BadInput, Transient
from mlops.models.names import LLM_MODEL
from mlops.registry import Registry, mlflow_registry
from mlops.serving.vllm import VllmServer, adapter_version, adapters
from mlops.step import StepResult
from mlops.tracking import mlflow_errors, tracking_client


class Config(StepConfig):
    model_name: str = Field(LLM_MODEL, description="registered model of the adapters")
    endpoints: str = Field(
        "127.0.0.1:8010",
        description="vLLM replicas: host:port list or k8s://<namespace>/<selector>:<port>; questions are spread over them",
    )
    served_name: str = Field(
        "aws-rag-qa", description="served base name: slots are <name>-candidate and <name>-live"
    )
    dataset_uri: str = Field(
        "", description="prepared dataset (s3:// or folder); '' = the staged version's dataset_uri tag"
    )
    limit: int = Field(
        0, ge=0, description="questions to ask (0: the whole evaluation split), stratified by type"
    )
    seed: int = Field(42, description="seed of the question selection (same seed, same questions)")
    max_tokens: int = Field(64, ge=1, description="max tokens per answer")
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight")
    attempts: int = Field(4, ge=1, description="tries per request on transient faults")
    retry_wait_s: float = Field(1.0, ge=0.0, description="first wait between tries (doubles, at most 30 s)")
    timeout_s: float = Field(60.0, gt=0.0, description="timeout of one request")
    cache_dir: str = Field(
        "/tmp/eval-cache", description="answer cache folder (resumes a killed or retried run)"
    )
    verify_slots: bool = Field(True, description="require each slot to hold the version its alias names")
    experiment: str = Field(LLM_MODEL, description="MLflow experiment of the evaluation run")


@dataclass(frozen=True)
class Slot:
    """A served adapter name and the registry version it must hold."""

    role: str  # candidate | live
    served_name: str
    version: str


def check_slots(server: VllmServer, slots: list[Slot], model: str, verify: bool) -> None:
    loaded = adapters(server)
    for slot in slots:
        if slot.served_name not in loaded:
            raise BadInput(
                f"vLLM {server.endpoint} does not serve {slot.served_name} (the {slot.role} slot; "
                f"{model}@{'staged' if slot.role == 'candidate' else 'live'} is v{slot.version}); "
                f"loaded adapters: {sorted(loaded) or 'none'}"
            )
        held = adapter_version(loaded[slot.served_name], model)
        if verify and held != slot.version:
            raise BadInput(
                f"{slot.served_name} holds {loaded[slot.served_name]!r} (version {held or 'unknown'}), "
                f"but the {slot.role} version is v{slot.version}: redeploy, or --verify-slots=false"
            )


def generate_answers(
    servers: Sequence[VllmServer],
    items: list[EvalItem],
    slots: list[Slot],
    cfg: Config,
    caches: dict[str, AnswerCache],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """role -> item id -> answer entry; cached answers are reused, the rest asked concurrently."""
    from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

    results: dict[str, dict[str, dict[str, Any]]] = {}
    todo: list[tuple[Slot, EvalItem]] = []
    for slot in slots:
        cached = caches[slot.role].load()
        results[slot.role] = {i.id: cached[i.id] for i in items if i.id in cached}
        todo += [(slot, item) for item in items if item.id not in cached]

    @retry(
        retry=retry_if_exception_type(Transient),
        stop=stop_after_attempt(cfg.attempts),
        wait=wait_exponential(multiplier=cfg.retry_wait_s, max=30),
        reraise=True,
    )
    def ask(slot: Slot, item: EvalItem) -> dict[str, Any]:
        server = servers[int(item.id[:8], 16) % len(servers)]
        completion = server.complete(
            slot.served_name, item.prompt, max_tokens=cfg.max_tokens, temperature=0.0
        )
        return {
            "id": item.id,
            "text": completion.text.strip(),
            "finish_reason": completion.finish_reason,
            "completion_tokens": completion.completion_tokens,
            "latency_s": round(completion.latency_s, 4),
        }

    total, done = len(items) * len(slots), len(items) * len(slots) - len(todo)
    progress(done, total)
    with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="eval-gen") as pool:
        futures = {pool.submit(ask, slot, item): slot for slot, item in todo}
        try:
            for future in as_completed(futures):
                entry = future.result()
                role = futures[future].role
                caches[role].add(entry)
                results[role][entry["id"]] = entry
                done += 1
                progress(done, total)
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise
    return results


def rich_progress(label: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar on a terminal; a line every 10 % in a pod's log."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    task = bar.add_task(label, total=None)
    live = bar.console.is_terminal
    if live:
        bar.start()
    last = [-1]

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        tenth = done * 10 // max(total, 1)
        if not live and tenth != last[0]:
            last[0] = tenth
            print(f"{label}: {done}/{total}", flush=True)

    return update, bar.stop


def run(
    cfg: Config, registry: Registry | None = None, servers: Sequence[VllmServer] | None = None
) -> StepResult:
    from mlops.serving.discovery import resolve
    from mlops.serving.vllm import connect

    registry = registry or mlflow_registry()
    staged = registry.require_alias(cfg.model_name, "staged")
    live = registry.alias(cfg.model_name, "live")
    dataset_uri = cfg.dataset_uri or registry.tags(cfg.model_name, staged).get("dataset_uri", "")
    with tempfile.TemporaryDirectory(prefix="eval-data-") as tmp:
        path = fetch_eval_file(dataset_uri, Path(tmp))
        items = select(parse_items(path.read_text(encoding="utf-8")), cfg.limit, cfg.seed)
    if not items:
        raise BadInput(f"the evaluation split of {dataset_uri} is empty: nothing to evaluate")
    slots = [Slot("candidate", f"{cfg.served_name}-candidate", staged)]
    if live is not None:
        slots.append(Slot("live", f"{cfg.served_name}-live", live))
    servers = servers or [connect(endpoint, timeout_s=cfg.timeout_s) for endpoint in resolve(cfg.endpoints)]
    for server in servers:  # every replica must hold the versions under evaluation
        check_slots(server, slots, cfg.model_name, cfg.verify_slots)
    settings = {"max_tokens": cfg.max_tokens, "temperature": 0.0}
    caches = {
        s.role: AnswerCache(Path(cfg.cache_dir), cfg.model_name, s.served_name, s.version, settings)
        for s in slots
    }
    started = time.monotonic()
    update, stop = rich_progress(f"answers from {', '.join(s.served_name for s in slots)}")
    try:
        answers = generate_answers(servers, items, slots, cfg, caches, update)
    finally:
        stop()
    elapsed = time.monotonic() - started
    rows = [
        {"item": item.to_json(), "answers": {role: answers[role][item.id]["text"] for role in answers}}
        for item in items
    ]
    entries = [e for by_id in answers.values() for e in by_id.values()]
    latencies = sorted(float(e.get("latency_s", 0.0)) for e in entries)
    tracking_client()  # fail fast when MLflow is down (exit 3)
    import mlflow

    with mlflow_errors("starting the evaluation run"):
        mlflow.set_experiment(cfg.experiment)
        with mlflow.start_run(run_name=f"evaluation {cfg.model_name} v{staged}") as active:
            run_id = active.info.run_id
            mlflow.set_tags(
                {
                    TAG_MODEL: cfg.model_name,
                    TAG_STAGED: staged,
                    TAG_LIVE: live or "",
                    "dataset_uri": dataset_uri,
                    "stage": "evaluation",
                }
            )
            mlflow.log_params(
                {
                    "limit": cfg.limit,
                    "seed": cfg.seed,
                    "max_tokens": cfg.max_tokens,
                    "served_name": cfg.served_name,
                    "questions": len(items),
                }
            )
            mlflow.log_metrics(
                {
                    "generation_s": elapsed,
                    "answers": float(len(entries)),
                    "latency_p50_s": latencies[len(latencies) // 2] if latencies else 0.0,
                    "truncated_answers": float(sum(e.get("finish_reason") == "length" for e in entries)),
                }
            )
            mlflow.log_text(dump_jsonl(rows), f"{ARTIFACT_DIR}/{ANSWERS}")
    who = f"v{staged} vs live v{live}" if live else f"v{staged} (first model: no live version)"
    return StepResult(
        outputs={
            "run-id": run_id,
            "staged-version": staged,
            "live-version": live or "",
            "questions": str(len(items)),
        },
        summary=f"{len(items)} questions answered by {cfg.model_name} {who} in {elapsed:.1f}s",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
