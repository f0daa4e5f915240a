"""The evaluation split of a prepared RAG-QA dataset (`<dataset-uri>/eval.jsonl`) as evaluation items.

The prepared format is the one `training.llm.prepared` writes: one JSON record a line with
`question`, `context`, `reference_answer`, `metadata.question_type` and `prompt_inference`
(the exact text the served model is given). On S3 the file is checked against the dataset's
`_COMMITTED` manifest before use.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops.errors import BadInput
from mlops.storage import S3Store, S3Url

# Same text as training.llm.records.REFUSAL (a unit test keeps them equal).
REFUSAL = "I cannot answer this question with the given context."
UNANSWERABLE = "unanswerable"
EVAL_FILE = "eval.jsonl"


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


def inference_prompt(context: str, question: str) -> str:
    """The served prompt, for records that do not carry `prompt_inference` (training.llm.records' format)."""
    return f"[INST] {context}\n\nQuestion: {question} [/INST]"


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
    prompt = str(record.get("prompt_inference") or inference_prompt(context, question))
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


def fetch_eval_file(uri: str, workdir: Path, store: S3Store | None = None) -> Path:
    """A local copy of `<uri>/eval.jsonl` (s3:// prefix, checksum-verified, or a local folder)."""
    if not uri:
        raise BadInput("no dataset URI: pass --dataset-uri or tag the staged version with dataset_uri")
    if not uri.startswith("s3://"):
        path = Path(uri) / EVAL_FILE
        if not path.is_file():
            raise BadInput(f"{uri} is not a prepared dataset: no {EVAL_FILE}")
        return path
    store = store or S3Store()
    store.download_committed(S3Url.parse(uri.rstrip("/")), workdir, (EVAL_FILE,), what="prepared dataset")
    return workdir / EVAL_FILE


def select(items: list[EvalItem], limit: int, seed: int) -> list[EvalItem]:
    """At most `limit` items (0: all), dealt round-robin across question types in a seeded order.

    Every type stays represented in a small local run; the same seed gives the same questions,
    so a resumed run hits its answer cache.
    """
    unique = list({item.id: item for item in items}.values())
    if limit <= 0 or limit >= len(unique):
        return unique
    by_type: dict[str, list[EvalItem]] = defaultdict(list)
    for item in unique:
        by_type[item.question_type].append(item)
    rng = random.Random(seed)
    queues = []
    for kind in sorted(by_type):
        group = sorted(by_type[kind], key=lambda i: i.id)
        rng.shuffle(group)
        queues.append(group)
    chosen: list[EvalItem] = []
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop())
    return chosen
