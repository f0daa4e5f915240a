"""Read a RAG-QA dataset (JSONL, Parquet or CSV; a local path or s3://) and validate every row.

Every schema problem is reported with where it is: `line N` of a JSONL or CSV file (the
physical line a row starts on, header included), `row N` of a Parquet file (1-based). Invalid
rows fail the step unless `max_invalid_fraction` allows dropping a few; either way the data
card says how many and why.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.datasets.ragqa import QARecord
from mlops.errors import BadInput
from mlops.storage import ObjectStore, S3Store, S3Url
from training.llm.records import RowError, validate_row

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
ERRORS_SHOWN = 20


@dataclass
class IngestResult:
    """Valid records in input order, the invalid rows' errors, and what was read."""

    source: str
    format: str
    rows_read: int = 0
    records: list[QARecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def invalid_rows(self) -> int:
        return len({e.line for e in self.errors})


def detect_format(name: str) -> str:
    """`jsonl`, `csv` or `parquet` from the file name (a trailing `.gz` is allowed for text formats)."""
    lowered = name.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    for suffix, kind in FORMATS.items():
        if lowered.endswith(suffix):
            if kind == "parquet" and name.lower().endswith(".gz"):
                break
            return kind
    raise BadInput(
        f"cannot tell the format of {name!r}: name it *.jsonl, *.csv or *.parquet (.jsonl.gz and .csv.gz too)"
    )


def fetch_source(source: str, workdir: Path, store: ObjectStore | None = None) -> Path:
    """A local file for `source`: the path itself, or the s3:// object downloaded into `workdir`."""
    if source.startswith("s3://"):
        url = S3Url.parse(source)
        if not url.key or url.key.endswith("/"):
            raise BadInput(f"{source} names a prefix, not a dataset file")
        target = workdir / "source" / Path(url.key).name
        (store or S3Store()).download_file(url, target)
        return target
    path = Path(source)
    if not path.exists():
        raise BadInput(f"dataset {source} does not exist")
    if not path.is_file():
        raise BadInput(f"dataset {source} is not a file")
    return path


def _text(path: Path) -> io.TextIOBase:
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise BadInput(f"{path.name} is not a valid gzip file: {exc}") from exc
    try:
        return io.StringIO(raw.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path.name} is not UTF-8 text (byte {exc.start}): {exc.reason}") from exc


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any | RowError]]:
    with _text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, RowError(number, f"not valid JSON: {exc.msg} (column {exc.colno})")


def _csv_rows(path: Path) -> Iterator[tuple[int, Any | RowError]]:
    with _text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise BadInput(f"{path.name}: malformed CSV header: {exc}") from exc
        if not header:
            return
        names = [h.strip() for h in header]
        previous_end = reader.line_num
        while True:
            start = previous_end + 1  # a quoted cell may span lines: report the line the row starts on
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                yield start, RowError(start, f"malformed CSV: {exc}")
                return
            if cells is None:
                return
            previous_end = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(names):
                yield start, RowError(start, f"{len(cells)} cells for {len(names)} columns")
                continue
            yield start, dict(zip(names, cells, strict=False))


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any | RowError]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses for corrupt files
        raise BadInput(f"{path.name} is not a readable Parquet file: {exc}") from exc
    yield from enumerate(table.to_pylist(), start=1)


def read_rows(path: Path, kind: str) -> Iterator[tuple[int, Any | RowError]]:
    """(line or row number, parsed row or a RowError) for each non-blank row of the file."""
    readers = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows}
    return readers[kind](path)


def ingest(
    source: str, workdir: Path, store: ObjectStore | None = None, max_invalid_fraction: float = 0.0
) -> IngestResult:
    """Read and validate `source`; BadInput (listing rows by number) if too many rows are invalid."""
    kind = detect_format(source)
    path = fetch_source(source, workdir, store)
    unit = "row" if kind == "parquet" else "line"
    result = IngestResult(source=source, format=kind)
    for number, row in read_rows(path, kind):
        result.rows_read += 1
        if isinstance(row, RowError):
            result.errors.append(RowError(row.line, row.message, unit))
            continue
        checked = validate_row(row, number, unit)
        if isinstance(checked, QARecord):
            result.records.append(checked)
        else:
            result.errors.extend(checked)
    if result.rows_read == 0:
        raise BadInput(f"dataset {source} is empty: no rows")
    invalid = result.invalid_rows
    if invalid and invalid / result.rows_read > max_invalid_fraction:
        shown = "; ".join(str(e) for e in result.errors[:ERRORS_SHOWN])
        more = f" (and {len(result.errors) - ERRORS_SHOWN} more)" if len(result.errors) > ERRORS_SHOWN else ""
        raise BadInput(
            f"{invalid} of {result.rows_read} rows of {source} do not match the schema "
            f"(context, question, reference_answer, metadata.question_type; allowed invalid fraction "
            f"{max_invalid_fraction}): {shown}{more}"
        )
    return result
