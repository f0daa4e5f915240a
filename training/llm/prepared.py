"""The prepared dataset on disk and on S3: three JSONL splits addressed by their content hash.

Layout under `<prefix>/<sha256>/`: `train.jsonl`, `val.jsonl`, `eval.jsonl`, `data_card.json`,
and `_COMMITTED` (written last by `S3Store.publish_directory`, listing every file's sha256).
The sha256 covers the split files only, in canonical JSON (sorted keys, one record a line), so
the same prepared rows always get the same address, whatever run produced them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mlops.errors import BadInput
from mlops.storage import S3Store, S3Url
from training.llm.records import QARecord
from training.llm.splitting import SPLITS

FORMAT_VERSION = "rag-qa/v1"
CARD_NAME = "data_card.json"


def split_file(split: str) -> str:
    return f"{split}.jsonl"


def canonical_lines(records: list[QARecord], split: str) -> bytes:
    lines = [json.dumps(r.to_json(split=split), ensure_ascii=False, sort_keys=True) for r in records]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def write_splits(splits: dict[str, list[QARecord]], directory: Path) -> str:
    """Write the split files; return the dataset's content hash."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(FORMAT_VERSION.encode())
    for split in SPLITS:
        data = canonical_lines(splits[split], split)
        (directory / split_file(split)).write_bytes(data)
        digest.update(split.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def publish(store: S3Store, prefix: S3Url, directory: Path, sha256: str) -> tuple[S3Url, bool]:
    """Upload `directory` to `<prefix>/<sha256>/` unless that version is already committed there."""
    target = prefix.join(sha256)
    store.ensure_bucket(prefix.bucket)
    if store.is_committed(target):
        return target, False
    store.publish_directory(directory, target)
    return target, True


def fetch(uri: str, workdir: Path, store: S3Store | None = None, files: tuple[str, ...] = ()) -> Path:
    """A local folder holding the prepared dataset at `uri` (s3:// prefix or local folder), checksums verified."""
    wanted = files or tuple(split_file(s) for s in SPLITS)
    if not uri.startswith("s3://"):
        folder = Path(uri)
        missing = [name for name in wanted if not (folder / name).is_file()]
        if missing:
            raise BadInput(f"{uri} is not a prepared dataset: missing {', '.join(missing)}")
        return folder
    store = store or S3Store()
    target = workdir / "dataset"
    store.download_committed(
        S3Url.parse(uri.rstrip("/")), target, wanted, what="prepared dataset (run prepare_data)"
    )
    return target


def read_split(folder: Path, split: str) -> list[QARecord]:
    path = folder / split_file(split)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(QARecord.from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise BadInput(f"{path.name} line {number} is not a prepared record: {exc}") from exc
    return records


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


def dataset_sha256(uri: str) -> str:
    """The content hash an s3://.../<sha256>/ address names ('' for other addresses)."""
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    return last if len(last) == 64 and all(c in "0123456789abcdef" for c in last) else ""
