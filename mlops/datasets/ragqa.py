"""The RAG-QA dataset format: the record, its two prompts, the prepared splits and the eval item.

A record has `context`, `question`, `reference_answer` and `metadata.question_type`. Training
text is `[INST] {context}\n\nQuestion: {question} [/INST] {answer}`; inference text is the same
without the answer, so the model learns to continue exactly the prompt it will be served.
Unanswerable questions carry the canonical refusal (`REFUSAL`), word for word.

A prepared dataset (format `rag-qa/v1`) lives under `<prefix>/<sha256>/`: `train.jsonl`,
`val.jsonl`, `eval.jsonl`, `probe.jsonl` (one record a line, with `prompt_inference`), `data_card.json`, and
`_COMMITTED` (written last by `S3Store.publish_directory`, listing every file's sha256; read
back through `S3Store.download_committed`). The sha256 covers the split files only, in canonical
JSON (sorted keys, one record a line), so the same prepared rows always get the same address,
whatever run produced them. Training writes it; deployment, evaluation and performance read it
through this module, never through each other.

The `probe` split is held out from everything a release decides on: fine-tuning reads only
`TRAINING_SPLITS` (train, val, eval; `fetch` fetches nothing else unless asked), and the evaluation
gate asks the eval split. Only the production probe (`evaluation.probe`) reads it, so a probe score
measures questions no released version was trained, stopped early or gated on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import BadInput
from mlops.storage import S3Store, S3Url

REFUSAL = "I cannot answer this question with the given context."
UNANSWERABLE = "unanswerable"
QUESTION_TYPES = ("factual", "numeric", "yes_no", UNANSWERABLE)
REQUIRED_TEXT_FIELDS = ("context", "question", "reference_answer")
INST_OPEN, INST_CLOSE = "[INST]", "[/INST]"


def prompt_inference(context: str, question: str) -> str:
    """What the served model is given: the instruction block, ending right before the answer."""
    return f"{INST_OPEN} {context}\n\nQuestion: {question} {INST_CLOSE}"


def prompt_training(context: str, question: str, answer: str) -> str:
    """The inference prompt followed by the answer (one space after `[/INST]`)."""
    return f"{prompt_inference(context, question)} {answer}"


@dataclass(frozen=True)
class QARecord:
    """One validated question about one context."""

    context: str
    question: str
    reference_answer: str
    question_type: str
    source_line: int = 0  # where it came from: line of a JSONL/CSV file, row of a Parquet file
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_inference(self) -> str:
        return prompt_inference(self.context, self.question)

    @property
    def prompt_training(self) -> str:
        return prompt_training(self.context, self.question, self.reference_answer)

    def to_json(self, **extra: Any) -> dict[str, Any]:
        """The prepared form: source fields, metadata, and both derived prompts."""
        metadata = {
            **self.extra_metadata,
            "question_type": self.question_type,
            "source_line": self.source_line,
        }
        return {
            "context": self.context,
            "question": self.question,
            "reference_answer": self.reference_answer,
            "metadata": dict(sorted(metadata.items())),
            "prompt_training": self.prompt_training,
            "prompt_inference": self.prompt_inference,
            **extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QARecord:
        metadata = dict(data.get("metadata") or {})
        question_type = str(metadata.pop("question_type", ""))
        source_line = int(metadata.pop("source_line", 0) or 0)
        return cls(
            context=str(data["context"]),
            question=str(data["question"]),
            reference_answer=str(data["reference_answer"]),
            question_type=question_type,
            source_line=source_line,
            extra_metadata=metadata,
        )


FORMAT_VERSION = "rag-qa/v1"
PROBE = "probe"
# what fine-tuning may read: the probe split is never among them
TRAINING_SPLITS = ("train", "val", "eval")
SPLITS = (*TRAINING_SPLITS, PROBE)
CARD_NAME = "data_card.json"
EVAL_FILE = "eval.jsonl"
PROBE_FILE = "probe.jsonl"


def split_file(split: str) -> str:
    return f"{split}.jsonl"


TRAINING_FILES = tuple(split_file(s) for s in TRAINING_SPLITS)


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
    """A local folder holding the prepared dataset at `uri` (s3:// prefix or local folder), checksums
    verified: the `files` asked for, by default the training splits (never the probe split)."""
    wanted = files or TRAINING_FILES
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


# --- the evaluation split as items to ask -------------------------------------------------------


@dataclass(frozen=True)
class EvalItem:
    """One question to ask both slots, with what a judge needs to grade the answers."""

    id: str  # sha256 of the prompt: the cache key of an answer, stable across runs
    question: str
    context: str
    reference: str
    question_type: str
    prompt: str

    @property
    def unanswerable(self) -> bool:
        return self.question_type == UNANSWERABLE or self.reference.strip() == REFUSAL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalItem:
        return cls(**{name: str(data[name]) for name in cls.__dataclass_fields__})


def prompt_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:32]


def item_from_record(record: dict[str, Any], where: str) -> EvalItem:
    try:
        question = str(record["question"])
        context = str(record["context"])
        reference = str(record["reference_answer"])
    except (KeyError, TypeError) as exc:
        raise BadInput(f"{where}: not a prepared RAG-QA record (missing {exc})") from exc
    metadata = record.get("metadata") or {}
    question_type = str(metadata.get("question_type") or "") if isinstance(metadata, dict) else ""
    if not question_type:
        raise BadInput(f"{where}: record without metadata.question_type")
    prompt = str(record.get("prompt_inference") or prompt_inference(context, question))
    return EvalItem(prompt_id(prompt), question, context, reference, question_type, prompt)


def parse_items(text: str, name: str = EVAL_FILE) -> list[EvalItem]:
    items: list[EvalItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{name} line {number} is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise BadInput(f"{name} line {number} is not a JSON object")
        items.append(item_from_record(record, f"{name} line {number}"))
    return items


def fetch_eval_file(uri: str, workdir: Path, store: S3Store | None = None, name: str = EVAL_FILE) -> Path:
    """A local copy of `<uri>/eval.jsonl` (or `name`, e.g. PROBE_FILE) from an s3:// prefix
    (checksum-verified) or a local folder."""
    if not uri:
        raise BadInput("no dataset URI: pass --dataset-uri or tag the version with dataset_uri")
    if not uri.startswith("s3://"):
        path = Path(uri) / name
        if not path.is_file():
            raise BadInput(
                f"{uri} has no {name}: not a prepared dataset, or one prepared before that split existed"
            )
        return path
    store = store or S3Store()
    store.download_committed(S3Url.parse(uri.rstrip("/")), workdir, (name,), what="prepared dataset")
    return workdir / name
