"""Command: write the seeded synthetic RAG-QA corpus (fictional Skyloom platform docs) to a file or S3.

    python -m training.llm.generate_corpus --output=/tmp/rag-qa.jsonl --documents=200 --seed=7

The format follows the name: *.jsonl (nested `metadata`), *.csv (`metadata.question_type`
column) or *.parquet. The same flags always write the same bytes. `prepare_data
--source=synthetic` makes the same corpus in process, without the file.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.step import StepResult
from mlops.storage import S3Store, S3Url
from training.llm import corpus
from training.llm.ingest import detect_format


class Config(StepConfig):
    output: str = Field(description="file to write (*.jsonl, *.csv, *.parquet), local or s3://")
    documents: int = Field(120, ge=1, le=100_000, description="number of documents (contexts)")
    seed: int = Field(42, description="seed: the same seed writes the same corpus")
    noise: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="fraction of extra rows that are duplicates, near duplicates or unnormalised copies",
    )


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k != "metadata"}
    flat.update({f"metadata.{k}": v for k, v in row["metadata"].items()})
    return flat


def write_records(rows: list[dict[str, Any]], path: Path) -> Path:
    """Write records in the format the file name asks for."""
    kind = detect_format(path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
        path.write_text(text, encoding="utf-8")
    elif kind == "csv":
        flat = [_flat(row) for row in rows]
        columns = sorted({key for row in flat for key in row})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def run(cfg: Config, store: S3Store | None = None) -> StepResult:
    rows = corpus.generate(cfg.documents, cfg.seed, cfg.noise)
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        if cfg.output.startswith("s3://"):
            url = S3Url.parse(cfg.output)
            local = write_records(rows, Path(tmp) / Path(url.key).name)
            store = store or S3Store()
            store.ensure_bucket(url.bucket)
            store.upload_file(local, url)
        else:
            write_records(rows, Path(cfg.output))
    types = Counter(row["metadata"]["question_type"] for row in rows)
    return StepResult(
        outputs={"dataset": cfg.output, "rows": str(len(rows))},
        summary=f"{len(rows)} rows about {cfg.documents} documents ({dict(sorted(types.items()))}) -> {cfg.output}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
