"""Reading JSONL, CSV and Parquet from a path or S3: rows validated, errors addressed by line or row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mlops.errors import BadInput
from mlops.storage import S3Url
from tests.unit.llm.factories import distinct_rows, row, write_jsonl
from training.llm.generate_corpus import write_records
from training.llm.ingest import detect_format, ingest


@pytest.mark.parametrize("name", ["data.jsonl", "data.csv", "data.parquet"])
def test_every_format_reads_the_same_records(name: str, tmp_path: Path) -> None:
    rows = distinct_rows(8)
    path = write_records(rows, tmp_path / name)
    result = ingest(str(path), tmp_path)
    assert result.rows_read == 8 and result.errors == []
    assert [(r.question, r.question_type) for r in result.records] == [
        (r["question"], r["metadata"]["question_type"]) for r in rows
    ]


def test_jsonl_errors_name_physical_lines_blank_lines_included(tmp_path: Path) -> None:
    bad = {**row(), "metadata": {}}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(row()) + "\n\n" + json.dumps(bad) + "\n" + "{not json\n")
    with pytest.raises(BadInput) as caught:
        ingest(str(path), tmp_path)
    message = str(caught.value)
    assert "2 of 3 rows" in message
    assert "line 3: missing field 'metadata.question_type'" in message
    assert "line 4: not valid JSON" in message


def test_csv_errors_name_the_line_a_row_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "context,question,reference_answer,metadata.question_type\n"
        '"a context\nover two lines",Q1?,A1.,factual\n'
        "another context,,A2.,factual\n"
    )
    with pytest.raises(BadInput, match=r"line 4: missing field 'question'"):
        ingest(str(path), tmp_path)


def test_parquet_errors_name_rows(tmp_path: Path) -> None:
    rows = distinct_rows(3)
    rows[1] = {**rows[1], "reference_answer": ""}
    path = write_records(rows, tmp_path / "d.parquet")
    with pytest.raises(BadInput, match=r"row 2: missing field 'reference_answer'"):
        ingest(str(path), tmp_path)


def test_a_few_invalid_rows_may_be_dropped_when_allowed(tmp_path: Path) -> None:
    rows: list[Any] = distinct_rows(9)
    rows.append({"question": "no context"})
    result = ingest(str(write_jsonl(tmp_path / "d.jsonl", rows)), tmp_path, max_invalid_fraction=0.2)
    assert len(result.records) == 9 and result.invalid_rows == 1


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_dataset_is_bad_input(content: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(BadInput, match="is empty: no rows"):
        ingest(str(path), tmp_path)


def test_a_header_only_csv_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("context,question,reference_answer,metadata.question_type\n")
    with pytest.raises(BadInput, match="is empty"):
        ingest(str(path), tmp_path)


def test_gzipped_jsonl_is_read(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(row()) + "\n").encode()))
    assert len(ingest(str(path), tmp_path).records) == 1


def test_missing_files_and_unknown_formats_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        ingest(str(tmp_path / "nope.jsonl"), tmp_path)
    with pytest.raises(BadInput, match="cannot tell the format"):
        detect_format("data.txt")
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"not parquet")
    with pytest.raises(BadInput, match="not a readable Parquet file"):
        ingest(str(corrupt), tmp_path)


def test_a_dataset_on_s3_is_downloaded_and_read(s3: Any, tmp_path: Path) -> None:
    path = write_records(distinct_rows(5), tmp_path / "local.jsonl")
    s3.ensure_bucket("raw")
    s3.upload_file(path, S3Url.parse("s3://raw/qa/data.jsonl"))
    result = ingest("s3://raw/qa/data.jsonl", tmp_path / "work", store=s3)
    assert len(result.records) == 5
    with pytest.raises(BadInput, match="not found"):
        ingest("s3://raw/qa/missing.jsonl", tmp_path / "work", store=s3)
