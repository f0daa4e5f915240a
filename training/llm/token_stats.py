"""Step: tokenizer statistics of the prepared dataset under the base model's tokenizer.

Counts tokens of every training text (prompt + answer + `</s>`) and answer per split, and how
many exceed `max_seq_length` (the fine-tune leaves those out rather than cut answers off). More
than `max_overlength_fraction` of them is bad input: the limit or the contexts are wrong. The
figures complete the data card on the prepare-data run (`data_card/token_stats.json`, a token
length histogram and the card page rewritten with a token table).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.datasets import ragqa
from mlops.datasets.ragqa import SPLITS, QARecord
from mlops.errors import BadInput
from mlops.models import hf_base
from mlops.step import StepResult
from mlops.tracking import mlflow_errors, tracking_client
from training.llm import datacard, plots
from training.llm.examples import answer_ids, prompt_ids


class Config(StepConfig):
    dataset_uri: str = Field(description="prepared dataset (dataset-uri of prepare_data)")
    base_uri: str = Field(description="base model whose tokenizer counts (base-uri of build_base)")
    data_run_id: str = Field(
        "", description="MLflow run holding the data card (data-run-id of prepare_data); '' = none"
    )
    max_seq_length: int = Field(
        512, ge=16, description="longest training example in tokens (the fine-tune's limit)"
    )
    max_overlength_fraction: float = Field(
        0.02, ge=0.0, le=1.0, description="more examples than this over max_seq_length is bad input"
    )


def token_lengths(tokenizer: Any, records: list[QARecord]) -> tuple[list[int], list[int]]:
    """Tokens of each full training example and of each answer (with `</s>`)."""
    totals, answers = [], []
    for record in records:
        answer = len(answer_ids(tokenizer, record))
        totals.append(len(prompt_ids(tokenizer, record)) + answer)
        answers.append(answer)
    return totals, answers


def statistics_for(
    tokenizer: Any, splits: dict[str, list[QARecord]], max_seq_length: int, name: str
) -> dict[str, Any]:
    per_split: dict[str, Any] = {}
    for split, records in splits.items():
        totals, answers = token_lengths(tokenizer, records)
        per_split[split] = {
            "prompt_training": datacard.length_summary(totals),
            "answer": datacard.length_summary(answers),
            "over_max_seq_length": sum(1 for n in totals if n > max_seq_length),
            "tokens": sum(totals),
            "_lengths": totals,
        }
    return {
        "tokenizer": name,
        "vocab_size": len(tokenizer),
        "max_seq_length": max_seq_length,
        "splits": per_split,
    }


def check_overlength(stats: dict[str, Any], max_fraction: float) -> None:
    rows = sum(info["prompt_training"]["count"] for info in stats["splits"].values())
    over = sum(info["over_max_seq_length"] for info in stats["splits"].values())
    if rows and over / rows > max_fraction:
        longest = max(info["prompt_training"]["max"] for info in stats["splits"].values())
        raise BadInput(
            f"{over} of {rows} examples ({over / rows:.1%}) are longer than max_seq_length={stats['max_seq_length']} "
            f"tokens (longest {longest:.0f}), more than the tolerated {max_fraction:.1%}: raise --max-seq-length "
            "or lower prepare_data's --max-context-chars"
        )


def _log(cfg: Config, stats: dict[str, Any], card: dict[str, Any], workdir: Path) -> None:
    client = tracking_client()
    folder = workdir / "tokens"
    folder.mkdir()
    public = {
        **stats,
        "splits": {s: {k: v for k, v in i.items() if k != "_lengths"} for s, i in stats["splits"].items()},
    }
    (folder / "token_stats.json").write_text(json.dumps(public, indent=2, sort_keys=True) + "\n")
    plots.length_histogram_png(
        {split: info["_lengths"] for split, info in stats["splits"].items()},
        folder / "token_length_histogram.png",
        f"tokens per training example ({stats['tokenizer']}); limit {stats['max_seq_length']}",
        "tokens",
    )
    if card:
        (folder / "data_card.md").write_text(datacard.card_markdown({**card, "tokens": public}))
    with mlflow_errors(f"logging token statistics to run {cfg.data_run_id}"):
        client.get_run(cfg.data_run_id)
        client.log_artifacts(cfg.data_run_id, str(folder), "data_card")
        for split, info in stats["splits"].items():
            client.log_metric(cfg.data_run_id, f"tokens_p95_{split}", info["prompt_training"]["p95"])
            client.log_metric(cfg.data_run_id, f"tokens_over_max_{split}", info["over_max_seq_length"])


def run(cfg: Config) -> StepResult:
    with tempfile.TemporaryDirectory(prefix="llm-tokens-") as tmp:
        workdir = Path(tmp)
        names = tuple(ragqa.split_file(s) for s in SPLITS)
        folder = ragqa.fetch(cfg.dataset_uri, workdir, files=(*names, ragqa.CARD_NAME))
        tokenizer = hf_base.load_tokenizer(hf_base.fetch_base(cfg.base_uri, workdir, tokenizer_only=True))
        splits = {s: ragqa.read_split(folder, s) for s in SPLITS}
        stats = statistics_for(tokenizer, splits, cfg.max_seq_length, cfg.base_uri)
        check_overlength(stats, cfg.max_overlength_fraction)
        if cfg.data_run_id:
            _log(cfg, stats, ragqa.read_card(folder), workdir)
    longest = max(info["prompt_training"]["max"] for info in stats["splits"].values())
    over = sum(info["over_max_seq_length"] for info in stats["splits"].values())
    train = stats["splits"]["train"]
    return StepResult(
        outputs={
            "max-tokens": str(int(longest)),
            "over-max-seq-length": str(over),
            "train-tokens": str(train["tokens"]),
        },
        summary=(
            f"train {train['tokens']} tokens, example p95 {train['prompt_training']['p95']:.0f} / max {longest:.0f} "
            f"tokens, {over} over max_seq_length {cfg.max_seq_length}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
