"""Step: RAG-QA rows in, a validated, cleaned, deduplicated, leak-free split dataset on S3 out.

ingest (JSONL / Parquet / CSV, path or s3://; schema errors name their line) -> clean (unicode
and whitespace normalisation, length limits) -> drop exact and near duplicates -> split train /
val / eval / probe stratified by question_type with no context shared across splits (probe: held
out for the production probe, `evaluation.probe`; fine-tuning never reads it) -> store at
`<prefix>/<sha256>/` (content hash of the splits; uploaded once) -> data card (counts, rows
dropped and why, length histogram) logged to MLflow. `--source=synthetic` generates the seeded
Skyloom corpus in process (the same one `training.llm.generate_corpus` writes).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from mlops import step
from mlops.config import StepConfig
from mlops.datasets import ragqa
from mlops.datasets.ragqa import SPLITS
from mlops.errors import BadInput, MlopsError
from mlops.models.names import LLM_MODEL
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url
from mlops.tracking import configure_mlflow_client, mlflow_errors
from training.llm import corpus, datacard, plots
from training.llm.cleaning import Limits, clean
from training.llm.generate_corpus import write_records
from training.llm.ingest import ingest
from training.llm.splitting import Fractions, stratified_group_split

SYNTHETIC = "synthetic"


class Config(StepConfig):
    source: str = Field(
        SYNTHETIC,
        description="'synthetic' (seeded Skyloom corpus) or a *.jsonl / *.csv / *.parquet file, local or s3://",
    )
    synthetic_documents: int = Field(120, ge=4, le=100_000, description="documents of the synthetic corpus")
    synthetic_noise: float = Field(
        0.05, ge=0.0, le=1.0, description="duplicate/unnormalised fraction of the synthetic corpus"
    )
    dataset_prefix: str = Field(
        "s3://mlops-data/datasets/rag-qa",
        description="S3 prefix; the prepared dataset goes to <prefix>/<sha256>/",
    )
    val_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="share of rows for validation (early stopping)"
    )
    eval_fraction: float = Field(
        0.05, gt=0.0, lt=1.0, description="share of rows held out for evaluation (the release gate)"
    )
    probe_fraction: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="share of rows held out for the production probe (never trained or gated on); "
        "taken with eval from one held-out share, so train and val do not change with it",
    )
    seed: int = Field(42, description="seed of the synthetic corpus and of the split")
    max_context_chars: int = Field(6000, ge=1, description="longer contexts are dropped")
    max_question_chars: int = Field(500, ge=1, description="longer questions are dropped")
    max_answer_chars: int = Field(1000, ge=1, description="longer reference answers are dropped")
    max_overlength_fraction: float = Field(
        0.05, ge=0.0, le=1.0, description="more rows than this over a length limit is bad input, not a drop"
    )
    max_invalid_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="rows failing the schema that may be dropped (0: any invalid row fails)",
    )
    max_duplicate_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="more duplicate rows than this is bad input"
    )
    near_duplicate_threshold: float = Field(
        0.85,
        gt=0.0,
        le=1.0,
        description="question and answer 3-gram Jaccard at or above which rows are near duplicates",
    )
    context_cluster_threshold: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="context 5-gram Jaccard at or above which contexts count as one (same split)",
    )
    min_rows: int = Field(30, ge=3, description="fewer rows than this after cleaning is bad input")
    experiment: str = Field(LLM_MODEL, description="MLflow experiment of the data-preparation run")

    @model_validator(mode="after")
    def _fractions_leave_training(self) -> Config:
        if self.val_fraction + self.eval_fraction + self.probe_fraction >= 1.0:
            raise ValueError(
                "val_fraction + eval_fraction + probe_fraction must leave rows for training (sum < 1)"
            )
        return self

    @property
    def fractions(self) -> Fractions:
        train = 1.0 - self.val_fraction - (self.eval_fraction + self.probe_fraction)
        return Fractions(train, self.val_fraction, self.eval_fraction, self.probe_fraction)

    @property
    def limits(self) -> Limits:
        return Limits(
            self.max_context_chars,
            self.max_question_chars,
            self.max_answer_chars,
            self.max_overlength_fraction,
        )


def _source_file(cfg: Config, workdir: Path) -> str:
    if cfg.source != SYNTHETIC:
        return cfg.source
    rows = corpus.generate(cfg.synthetic_documents, cfg.seed, cfg.synthetic_noise)
    return str(write_records(rows, workdir / "synthetic.jsonl"))


def _settings(cfg: Config) -> dict[str, Any]:
    return {k: v for k, v in cfg.model_dump().items() if k not in ("experiment", "dataset_prefix")}


def prepare(cfg: Config, workdir: Path, store: S3Store | None = None) -> tuple[dict[str, Any], Path]:
    """Everything but the MLflow run: returns the data card and the folder of split files."""
    ingested = ingest(_source_file(cfg, workdir), workdir, store, cfg.max_invalid_fraction)
    if cfg.source == SYNTHETIC:  # name the recipe, not the temporary file it was written to
        ingested.source = (
            f"synthetic (documents {cfg.synthetic_documents}, seed {cfg.seed}, noise {cfg.synthetic_noise})"
        )
    cleaned = clean(
        ingested.records,
        cfg.limits,
        cfg.near_duplicate_threshold,
        cfg.context_cluster_threshold,
        cfg.max_duplicate_fraction,
    )
    if len(cleaned.kept) < cfg.min_rows:
        raise BadInput(
            f"only {len(cleaned.kept)} rows left after cleaning {ingested.rows_read} "
            f"(dropped: {cleaned.reasons() or 'none'}); at least {cfg.min_rows} are needed (--min-rows)"
        )
    groups = [cleaned.context_groups[r.context] for r in cleaned.kept]
    splits = stratified_group_split(cleaned.kept, groups, cfg.fractions, cfg.seed)
    contexts = {s: {cleaned.context_groups[r.context] for r in splits[s]} for s in SPLITS}
    if any(contexts[a] & contexts[b] for i, a in enumerate(SPLITS) for b in SPLITS[i + 1 :]):
        raise MlopsError("a context cluster landed in two splits: a bug in the group split")
    folder = workdir / "prepared"
    sha256 = ragqa.write_splits(splits, folder)
    card = {
        "sha256": sha256,
        "format_version": ragqa.FORMAT_VERSION,
        **datacard.build_card(ingested, cleaned, splits, _settings(cfg)),
    }
    (folder / ragqa.CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    figures = workdir / "figures"
    figures.mkdir()
    kept = [r for s in SPLITS for r in splits[s]]
    plots.length_histogram_png(
        {
            "context": [len(r.context) for r in kept],
            "question": [len(r.question) for r in kept],
            "reference_answer": [len(r.reference_answer) for r in kept],
        },
        figures / "length_histogram.png",
        f"{len(kept)} rows after cleaning",
        "characters",
    )
    (figures / "data_card.md").write_text(datacard.card_markdown(card))
    return card, folder


def _log_run(cfg: Config, card: dict[str, Any], uri: str, workdir: Path) -> str:
    import mlflow

    configure_mlflow_client()
    with mlflow_errors(f"logging the data card to experiment {cfg.experiment}"):
        mlflow.set_experiment(cfg.experiment)
        with mlflow.start_run(
            run_name=f"prepare-data-{card['sha256'][:8]}",
            tags={"mlops.step": "prepare_data", "dataset_uri": uri, "dataset_sha256": card["sha256"]},
        ) as active:
            mlflow.log_params({k: str(v)[:500] for k, v in _settings(cfg).items()})
            metrics = {
                "rows_read": card["rows_read"],
                "rows_invalid": card["rows_invalid"],
                "rows_dropped": card["rows_dropped"],
                "rows_kept": card["rows_kept"],
                **{f"rows_{split}": info["rows"] for split, info in card["splits"].items()},
                **{
                    f"dropped_{reason.replace(' ', '_')}": n
                    for reason, n in card["dropped_by_reason"].items()
                },
            }
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            mlflow.log_artifact(str(workdir / "prepared" / ragqa.CARD_NAME), "data_card")
            mlflow.log_artifacts(str(workdir / "figures"), "data_card")
            return str(active.info.run_id)


def run(cfg: Config, store: S3Store | None = None) -> StepResult:
    prefix = S3Url.parse(cfg.dataset_prefix.rstrip("/"))
    with tempfile.TemporaryDirectory(prefix="llm-prepare-") as tmp:
        workdir = Path(tmp)
        card, folder = prepare(cfg, workdir, store)
        target, uploaded = ragqa.publish(store or S3Store(), prefix, folder, card["sha256"])
        uri = f"{target}/"
        run_id = _log_run(cfg, card, uri, workdir)
    splits = ", ".join(f"{s} {card['splits'][s]['rows']}" for s in SPLITS)
    return StepResult(
        outputs={
            "dataset-uri": uri,
            "dataset-sha256": card["sha256"],
            "data-run-id": run_id,
            "rows": str(card["rows_kept"]),
        },
        summary=(
            f"{card['rows_read']} rows read, {card['rows_dropped']} dropped {card['dropped_by_reason']}, "
            f"{splits} -> {uri} ({'uploaded' if uploaded else 'already there'})"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
