"""Step (production probe): the probe split asked of a served slot, graded by the gate's judges.

`--mode=probe` (the llm-probe workflow, daily on a cluster): reads `live` of the adapter model,
asks every question of the probe split (held out at data preparation, never trained or gated on;
`mlops.datasets.ragqa`) of the `<base>-live` slot at temperature 0, grades the answers with each
judge of `--judges` (the evaluation gate's backends, `evaluation.judge`), and pushes the figures
with the release-time values stored on the version to the Pushgateway (`mlops_probe_score`,
`..._ci_halfwidth`, `..._release`, `mlops_probe_refusal_rate`, `..._release`), where the drift
alerts of infra/monitoring/prometheus-rules.yaml watch them.

`--mode=release` (vllm-promote, right before the swap): the same figures for the version about to
go live, measured on the candidate slot that holds it, stored on it as version tags
(`probe.release.*`) and on the model (plus `probe.release.version`): what later probes compare
with. A live version without values of its own (moved to `live` by hand) is compared with the
model's, the last a release recorded (output `release-version` says whose).

Nothing is cached between runs: a probe that reused answers could not see drift. A slot that
does not hold the version its alias names, a dataset without a probe split, or no grade at all is
bad input (exit 2); a server, judge or Pushgateway that stays down is transient (exit 3). A probe
that finds drift still exits 0 (`drift=true`, `reason`): the alerts page, the workflow succeeds.
Outputs: `version`, `score` (the first judge's A-rate), `release-score`, `release-version`,
`refusal-rate`, `drift` (`true` / `false` / `unknown` without release values), `reason`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from evaluation import drift
from evaluation.cache import AnswerCache
from evaluation.dataset import select
from evaluation.generate import Config as GenerateConfig
from evaluation.generate import Slot, check_slots, generate_answers
from evaluation.grades import Judge
from evaluation.judge import JudgeSettings, build_judge, grade_rows
from evaluation.summary import GradedRow
from mlops import step
from mlops.config import StepConfig
from mlops.datasets.ragqa import PROBE_FILE, fetch_eval_file, parse_items
from mlops.errors import BadInput
from mlops.models.names import LLM_MODEL
from mlops.pushgateway import MetricsSink, publish
from mlops.registry import Registry, mlflow_registry
from mlops.serving.vllm import VllmServer
from mlops.step import StepResult

ROLE = {"probe": "live", "release": "candidate"}


class Config(StepConfig):
    mode: Literal["probe", "release"] = Field(
        "probe", description="probe: live slot, push figures; release: candidate slot, tag the version"
    )
    model_name: str = Field(LLM_MODEL, description="registered model of the adapters")
    version: str = Field("", description="release: the version going live ('' = staged); probe: ignored")
    endpoints: str = Field(
        "127.0.0.1:8010",
        description="vLLM replicas: host:port list or k8s://<namespace>/<selector>:<port>",
    )
    served_name: str = Field(
        "aws-rag-qa", description="served base name: slots are <name>-candidate and <name>-live"
    )
    dataset_uri: str = Field(
        "", description="prepared dataset (s3:// or folder); '' = the version's dataset_uri tag"
    )
    limit: int = Field(0, ge=0, description="probe questions to ask (0: the whole probe split)")
    seed: int = Field(42, description="seed of the question selection when --limit is set")
    judges: str = Field(
        "reference", description="comma-separated judge backends, as evaluation.judge's --backend"
    )
    judge_endpoint: str = Field("", description="llm: OpenAI-compatible base URL")
    judge_model: str = Field("", description="llm: the judge model's served name")
    judge_api_key: SecretStr = Field(SecretStr(""), description="llm: bearer token (env MLOPS_JUDGE_API_KEY)")
    a_min_f1: float = Field(0.8, ge=0.0, le=1.0, description="reference: token F1 for grade A")
    b_min_f1: float = Field(0.5, ge=0.0, le=1.0, description="reference: token F1 for grade B")
    max_tokens: int = Field(64, ge=1, description="max tokens per answer (the evaluation's setting)")
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight")
    attempts: int = Field(4, ge=1, description="tries per request on transient faults")
    retry_wait_s: float = Field(1.0, ge=0.0, description="first wait between tries (doubles, at most 30 s)")
    timeout_s: float = Field(60.0, gt=0.0, description="timeout of one request")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="confidence of the score intervals")
    refusal_tolerance: float = Field(
        0.1, ge=0.0, le=1.0, description="refusal-rate change the drift verdict tolerates (the alert's)"
    )
    pushgateway_url: str = Field(
        "", description="probe: Pushgateway base URL (env MLOPS_PUSHGATEWAY_URL); '' = push nothing"
    )


def _judges(cfg: Config) -> list[Judge]:
    names = [n.strip() for n in cfg.judges.split(",") if n.strip()]
    if not names:
        raise BadInput("--judges names no judge backend")
    judges = []
    for name in dict.fromkeys(names):
        if name not in ("reference", "llm"):
            raise BadInput(f"--judges: unknown judge backend {name!r} (reference, llm)")
        judges.append(
            build_judge(
                JudgeSettings.model_validate(
                    {
                        "backend": name,
                        "judge_endpoint": cfg.judge_endpoint,
                        "judge_model": cfg.judge_model,
                        "judge_api_key": cfg.judge_api_key,
                        "a_min_f1": cfg.a_min_f1,
                        "b_min_f1": cfg.b_min_f1,
                        "timeout_s": cfg.timeout_s,
                    }
                )
            )
        )
    return judges


def measure(
    cfg: Config,
    registry: Registry,
    servers: Sequence[VllmServer],
    judges: list[Judge],
    version: str,
) -> drift.ProbeFigures:
    """Ask the probe split of the slot holding `version`, grade it with every judge."""
    role = ROLE[cfg.mode]
    dataset_uri = cfg.dataset_uri or registry.tags(cfg.model_name, version).get("dataset_uri", "")
    slot = Slot(role, f"{cfg.served_name}-{role}", version)
    for server in servers:  # every replica must hold the version probed
        check_slots(server, [slot], cfg.model_name, verify=True)
    with tempfile.TemporaryDirectory(prefix="probe-") as tmp:
        path = fetch_eval_file(dataset_uri, Path(tmp), name=PROBE_FILE)
        items = select(parse_items(path.read_text(encoding="utf-8"), PROBE_FILE), cfg.limit, cfg.seed)
        if not items:
            raise BadInput(f"the probe split of {dataset_uri} is empty: nothing to probe")
        generate = GenerateConfig.model_validate(
            {
                "max_tokens": cfg.max_tokens,
                "concurrency": cfg.concurrency,
                "attempts": cfg.attempts,
                "retry_wait_s": cfg.retry_wait_s,
                "timeout_s": cfg.timeout_s,
            }
        )
        # a fresh cache every run: answers are never reused across probes
        cache = AnswerCache(Path(tmp) / "answers", cfg.model_name, slot.served_name, version, {})
        answers = generate_answers(servers, items, [slot], generate, {role: cache})[role]
    rows = [{"item": item.to_json(), "answers": {role: answers[item.id]["text"]}} for item in items]
    graded: dict[str, list[GradedRow]] = {}
    for judge in judges:
        graded[judge.name] = grade_rows(
            judge,
            rows,
            concurrency=cfg.concurrency,
            attempts=cfg.attempts,
            retry_wait_s=cfg.retry_wait_s,
        )
    return drift.figures(graded, role, cfg.confidence, dataset_uri)


def run(
    cfg: Config,
    registry: Registry | None = None,
    servers: Sequence[VllmServer] | None = None,
    sink: MetricsSink | None = None,
    judges: list[Judge] | None = None,
) -> StepResult:
    from mlops.serving.discovery import resolve
    from mlops.serving.vllm import connect

    registry = registry or mlflow_registry()
    judges = judges or _judges(cfg)
    if cfg.mode == "release":
        version = cfg.version or registry.require_alias(cfg.model_name, "staged")
    else:
        version = registry.require_alias(cfg.model_name, "live")
    servers = servers or [connect(endpoint, timeout_s=cfg.timeout_s) for endpoint in resolve(cfg.endpoints)]
    started = time.monotonic()
    current = measure(cfg, registry, servers, judges, version)
    first = judges[0].name
    score = current.scores[first]
    outputs = {
        "version": version,
        "score": f"{score.estimate:.4f}",
        "refusal-rate": f"{current.refusal_rate.estimate:.4f}",
    }
    measured = (
        f"{current.questions} probe questions to {cfg.model_name} v{version} in "
        f"{time.monotonic() - started:.1f}s: A-rate ({first}) {score.describe()}, "
        f"refusals {current.refusal_rate.estimate:.1%}"
    )
    if cfg.mode == "release":
        tags = current.as_tags()
        registry.tag_version(cfg.model_name, version, tags)
        registry.tag_model(cfg.model_name, {**tags, f"{drift.TAG_PREFIX}version": version})
        return StepResult(
            outputs={
                **outputs,
                "release-score": outputs["score"],
                "release-version": version,
                "drift": "false",
                "reason": "release values",
            },
            summary=f"release values recorded: {measured}",
        )
    release = drift.release_values(
        registry.tags(cfg.model_name, version), registry.model_tags(cfg.model_name), version
    )
    gauges = drift.gauges(cfg.model_name, version, current, release)
    pushed = publish(cfg.pushgateway_url, drift.JOB, {"model": cfg.model_name}, gauges, sink)
    if release is None:
        return StepResult(
            outputs={
                **outputs,
                "release-score": "",
                "release-version": "",
                "drift": "unknown",
                "reason": "no release values",
            },
            summary=f"{measured}; no release of {cfg.model_name} recorded values to compare with; {pushed}",
        )
    verdict = drift.drift_verdict(current, release, cfg.refusal_tolerance)
    if release.version != version:
        measured += (
            f" (compared with v{release.version}'s release values: v{version} went live without its own)"
        )
    return StepResult(
        outputs={
            **outputs,
            "release-score": f"{release.scores.get(first, float('nan')):.4f}",
            "release-version": release.version,
            "drift": "false" if verdict.passed else "true",
            "reason": verdict.reason,
        },
        summary=f"{measured}; {'stable' if verdict.passed else 'DRIFT'}: {verdict.reason}; {pushed}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
