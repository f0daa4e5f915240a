"""prepare_data end to end without services (publishing on moto's in-process S3), and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops.datasets import ragqa
from mlops.datasets.ragqa import SPLITS
from mlops.errors import BadInput
from mlops.storage import S3Url
from tests.unit.llm.factories import distinct_rows, row, write_jsonl
from training.llm.prepare_data import Config, prepare


def test_the_card_accounts_for_every_row(tmp_path: Path) -> None:
    card, folder = prepare(Config(synthetic_documents=40, seed=9), tmp_path)
    assert card["rows_read"] == card["rows_valid"] == card["rows_kept"] + card["rows_dropped"]
    assert card["rows_dropped"] == sum(card["dropped_by_reason"].values()) > 0  # the corpus carries noise
    assert sum(info["rows"] for info in card["splits"].values()) == card["rows_kept"]
    for split in SPLITS:
        assert len(ragqa.read_split(folder, split)) == card["splits"][split]["rows"] > 0
    assert json.loads((folder / ragqa.CARD_NAME).read_text())["sha256"] == card["sha256"]
    assert (tmp_path / "figures" / "length_histogram.png").stat().st_size > 1000
    assert "## Dropped rows" in (tmp_path / "figures" / "data_card.md").read_text()


def test_no_context_is_shared_between_splits(prepared_dir: Path) -> None:
    contexts = {s: {r.context for r in ragqa.read_split(prepared_dir, s)} for s in SPLITS}
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            assert not contexts[first] & contexts[second], (first, second)


def test_the_probe_split_is_disjoint_from_what_training_and_the_gate_see(prepared_dir: Path) -> None:
    probe = ragqa.read_split(prepared_dir, ragqa.PROBE)
    assert len(probe) > 0 and ragqa.PROBE not in ragqa.TRAINING_SPLITS
    assert {r.question_type for r in probe} == set(ragqa.QUESTION_TYPES)  # stratified like the others
    seen = [r for split in ragqa.TRAINING_SPLITS for r in ragqa.read_split(prepared_dir, split)]
    assert not {r.context for r in probe} & {r.context for r in seen}
    assert not {r.prompt_training for r in probe} & {r.prompt_training for r in seen}
    assert not {(r.question, r.reference_answer) for r in probe} & {
        (r.question, r.reference_answer) for r in seen
    }


def test_finetune_neither_fetches_nor_reads_the_probe_split(s3: Any, tmp_path: Path) -> None:
    """The probe file is replaced on S3 after publishing: fetching it is refused (its checksum no
    longer matches), yet fine-tuning's data loading succeeds, so it never downloaded it."""
    from training.llm.finetune import training_splits

    card, folder = prepare(Config(synthetic_documents=40, seed=5), tmp_path / "prepared")
    target, _ = ragqa.publish(s3, S3Url.parse("s3://data/rag-qa"), folder, card["sha256"])
    s3.put_bytes(target.join(ragqa.PROBE_FILE), b"not a record\n")
    with pytest.raises(BadInput, match="differs from the commit manifest"):
        ragqa.fetch_eval_file(f"{target}/", tmp_path / "probe", s3, name=ragqa.PROBE_FILE)
    splits = training_splits(f"{target}/", tmp_path / "train", s3)
    assert set(splits) == {"train", "val", "eval"}
    assert not (tmp_path / "train" / "dataset" / ragqa.PROBE_FILE).exists()
    probe_contexts = {r.context for r in ragqa.read_split(folder, ragqa.PROBE)}
    assert not probe_contexts & {r.context for records in splits.values() for r in records}


def test_the_address_is_the_content(tmp_path: Path) -> None:
    first, _ = prepare(Config(synthetic_documents=30), tmp_path / "a")
    again, _ = prepare(Config(synthetic_documents=30), tmp_path / "b")
    other, _ = prepare(Config(synthetic_documents=30, seed=7), tmp_path / "c")
    assert first["sha256"] == again["sha256"] != other["sha256"]


def test_publishing_twice_uploads_once(s3: Any, tmp_path: Path) -> None:
    card, folder = prepare(Config(synthetic_documents=30), tmp_path)
    prefix = S3Url.parse("s3://data/rag-qa")
    target, uploaded = ragqa.publish(s3, prefix, folder, card["sha256"])
    assert uploaded and str(target).endswith(card["sha256"])
    assert ragqa.publish(s3, prefix, folder, card["sha256"]) == (target, False)
    fetched = ragqa.fetch(f"{target}/", tmp_path / "fetched", s3)
    assert ragqa.read_split(fetched, "eval") == ragqa.read_split(folder, "eval")


def test_a_tampered_split_is_refused_on_fetch(s3: Any, tmp_path: Path) -> None:
    card, folder = prepare(Config(synthetic_documents=30), tmp_path)
    target, _ = ragqa.publish(s3, S3Url.parse("s3://data/rag-qa"), folder, card["sha256"])
    s3.put_bytes(target.join("train.jsonl"), b"{}\n")
    with pytest.raises(BadInput, match="differs from the commit manifest"):
        ragqa.fetch(f"{target}/", tmp_path / "fetched", s3)


def test_an_uncommitted_prefix_is_not_a_dataset(s3: Any, tmp_path: Path) -> None:
    s3.ensure_bucket("data")
    with pytest.raises(BadInput, match="not a committed prepared dataset"):
        ragqa.fetch("s3://data/rag-qa/nothing/", tmp_path, s3)


# --- bad input: exit 2 before anything is stored ---------------------------------------------------


def _prepare_file(tmp_path: Path, rows: list[Any], **overrides: Any) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    prepare(Config(source=str(path), **overrides), tmp_path / "work")


def test_missing_fields_fail_with_line_numbers(tmp_path: Path) -> None:
    rows: list[Any] = distinct_rows(40)
    rows[4] = {k: v for k, v in rows[4].items() if k != "question"}
    rows[9] = {**rows[9], "metadata": {}}
    with pytest.raises(BadInput) as caught:
        _prepare_file(tmp_path, rows)
    assert "line 5: missing field 'question'" in str(caught.value)
    assert "line 10: missing field 'metadata.question_type'" in str(caught.value)


def test_an_empty_dataset_fails(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="empty"):
        _prepare_file(tmp_path, [])


def test_an_all_duplicates_dataset_fails(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="are duplicates"):
        _prepare_file(tmp_path, [row()] * 50)


def test_contexts_over_the_max_length_beyond_the_threshold_fail(tmp_path: Path) -> None:
    rows = distinct_rows(40)
    for r in rows[:5]:
        r["context"] = "long " * 400
    with pytest.raises(BadInput, match=r"5 of 40 rows \(12.5%\) are over the length limits"):
        _prepare_file(tmp_path, rows, max_context_chars=1000)


def test_a_few_overlong_contexts_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = distinct_rows(40)
    rows[0]["context"] = "long " * 400
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    card, _ = prepare(Config(source=str(path), max_context_chars=1000), tmp_path / "work")
    assert card["dropped_by_reason"] == {"context over max length": 1}
    assert card["dropped_examples"]["context over max length"][0]["line"] == 1


def test_too_few_rows_after_cleaning_fail(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="at least 30 are needed"):
        _prepare_file(tmp_path, distinct_rows(10))


def test_fractions_that_leave_no_training_data_are_refused() -> None:
    from mlops.config import load_config

    with pytest.raises(BadInput, match="val_fraction"):
        load_config(Config, ["--val-fraction=0.5", "--eval-fraction=0.5"], env={})
