"""Generation against an in-process FAKE vLLM server (implements mlops.serving.vllm.VllmServer; unit
level only): slot checks, both slots answered, resumable cache, retries, and the evaluation split."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from evaluation.cache import AnswerCache
from evaluation.dataset import select
from evaluation.generate import Config, Slot, check_slots, generate_answers, run
from mlops.datasets.ragqa import REFUSAL, EvalItem, fetch_eval_file, parse_items
from mlops.errors import BadInput, Transient
from mlops.registry import InMemoryBackend, Registry
from mlops.serving.vllm import Completion, ServedModel, adapter_version

MODEL = "mistral-7b-lora"
BASE = "aws-rag-qa"


class FakeVllmServer:
    """FAKE (unit tests only): a vLLM replica with adapters loaded from `<dir>/<model>/<version>`.

    The candidate slot echoes the question; the live slot refuses. `transient_failures` requests fail
    first with Transient; an unknown served name is a 404 (BadInput), as on the real server.
    """

    endpoint = "fake://vllm"

    def __init__(self, slots: dict[str, str], transient_failures: int = 0) -> None:
        self.slots = slots  # served name -> adapter path
        self.transient_failures = transient_failures
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def healthy(self) -> bool:
        return True

    def models(self) -> list[ServedModel]:
        base = [ServedModel(BASE, "/models/base")]
        return base + [ServedModel(name, root, parent=BASE) for name, root in self.slots.items()]

    def load_adapter(self, name: str, path: str, inplace: bool = False) -> None:
        self.slots[name] = path

    def unload_adapter(self, name: str) -> None:
        self.slots.pop(name, None)

    def reset_prefix_cache(self) -> None:
        pass

    def complete(self, model: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0) -> Completion:
        with self._lock:
            self.requests.append((model, prompt))
            if self.transient_failures > 0:
                self.transient_failures -= 1
                raise Transient("vLLM fake://vllm: completing failed (503)")
        if model not in self.slots:
            raise BadInput(f"vLLM fake://vllm: completing with {model} refused (404): model does not exist")
        question = prompt.split("Question: ", 1)[1].removesuffix(" [/INST]")
        text = f" {question} " if model.endswith("-candidate") else REFUSAL
        return Completion(text, "stop", 10, 5, 0.01)


def items(count: int = 8) -> list[EvalItem]:
    kinds = ["factual", "numeric", "yes_no", "unanswerable"]
    rows = [
        {
            "context": f"Component {i} listens on port {8000 + i}.",
            "question": f"Which port does component {i} use?",
            "reference_answer": REFUSAL if kinds[i % 4] == "unanswerable" else f"Port {8000 + i}.",
            "metadata": {"question_type": kinds[i % 4], "source_line": i},
            "prompt_inference": f"[INST] Component {i} listens on port {8000 + i}.\n\nQuestion: q{i}? [/INST]",
        }
        for i in range(count)
    ]
    return parse_items("\n".join(json.dumps(r) for r in rows))


def cfg(tmp_path: Path, **overrides: object) -> Config:
    return Config(cache_dir=str(tmp_path / "cache"), concurrency=4, retry_wait_s=0, **overrides)  # type: ignore[arg-type]


def slots(live: bool = True) -> list[Slot]:
    found = [Slot("candidate", f"{BASE}-candidate", "3")]
    return [*found, Slot("live", f"{BASE}-live", "2")] if live else found


def caches(tmp_path: Path, chosen: list[Slot]) -> dict[str, AnswerCache]:
    return {
        s.role: AnswerCache(tmp_path / "cache", MODEL, s.served_name, s.version, {"max_tokens": 64})
        for s in chosen
    }


def server(**kwargs: int) -> FakeVllmServer:
    return FakeVllmServer(
        {f"{BASE}-candidate": f"/adapters/{MODEL}/3", f"{BASE}-live": f"/adapters/{MODEL}/2"}, **kwargs
    )


def test_both_slots_answer_every_question_and_a_rerun_asks_nothing(tmp_path: Path) -> None:
    fake, chosen = server(), slots()
    answers = generate_answers([fake], items(), chosen, cfg(tmp_path), caches(tmp_path, chosen))
    assert {role: len(by_id) for role, by_id in answers.items()} == {"candidate": 8, "live": 8}
    first = items()[0]
    assert answers["candidate"][first.id]["text"] == "q0?"  # stripped
    assert answers["live"][first.id]["text"] == REFUSAL
    assert len(fake.requests) == 16 and all(p.endswith("[/INST]") for _, p in fake.requests)
    again = server()
    assert generate_answers([again], items(), chosen, cfg(tmp_path), caches(tmp_path, chosen)) == answers
    assert again.requests == []


def test_an_interrupted_run_resumes_from_the_cache_and_skips_a_torn_line(tmp_path: Path) -> None:
    chosen = slots(live=False)
    cache = caches(tmp_path, chosen)
    generate_answers([server()], items(4), chosen, cfg(tmp_path), cache)
    with cache["candidate"].path.open("a") as handle:
        handle.write('{"id": "torn')  # killed mid-write
    fake = server()
    answers = generate_answers([fake], items(8), chosen, cfg(tmp_path), caches(tmp_path, chosen))
    assert len(answers["candidate"]) == 8 and len(fake.requests) == 4


def test_the_cache_is_per_version_and_settings(tmp_path: Path) -> None:
    a = AnswerCache(tmp_path, MODEL, "x-candidate", "3", {"max_tokens": 64}).path
    assert a != AnswerCache(tmp_path, MODEL, "x-candidate", "4", {"max_tokens": 64}).path
    assert a != AnswerCache(tmp_path, MODEL, "x-candidate", "3", {"max_tokens": 32}).path


def test_transient_faults_are_retried_and_a_server_that_stays_down_is_transient(tmp_path: Path) -> None:
    chosen = slots(live=False)
    answers = generate_answers(
        [server(transient_failures=3)], items(4), chosen, cfg(tmp_path), caches(tmp_path, chosen)
    )
    assert len(answers["candidate"]) == 4
    with pytest.raises(Transient):
        generate_answers(
            [server(transient_failures=100)],
            items(4),
            chosen,
            cfg(tmp_path / "b", attempts=2),
            caches(tmp_path / "b", chosen),
        )


def test_a_missing_slot_or_a_slot_holding_another_version_is_bad_input() -> None:
    with pytest.raises(BadInput, match="does not serve aws-rag-qa-live"):
        check_slots(FakeVllmServer({f"{BASE}-candidate": f"/a/{MODEL}/3"}), slots(), MODEL, verify=True)
    stale = FakeVllmServer({f"{BASE}-candidate": f"/a/{MODEL}/2", f"{BASE}-live": f"/a/{MODEL}/2"})
    with pytest.raises(BadInput, match="version 2"):
        check_slots(stale, slots(), MODEL, verify=True)
    check_slots(stale, slots(), MODEL, verify=False)
    assert adapter_version(f"/srv/adapters/{MODEL}/12/", MODEL) == "12"
    assert adapter_version("/srv/adapters/other/12", MODEL) is None


def test_a_slot_unloaded_during_generation_is_bad_input(tmp_path: Path) -> None:
    fake = server()
    fake.slots.pop(f"{BASE}-live")
    with pytest.raises(BadInput, match="404"):
        generate_answers([fake], items(4), slots(), cfg(tmp_path), caches(tmp_path, slots()))


def registry_with(tmp_path: Path, live: bool, records: list[dict[str, object]] | None) -> Registry:
    registry = Registry(InMemoryBackend(), actor="test")
    folder = tmp_path / "dataset"
    folder.mkdir(exist_ok=True)
    if records is not None:
        (folder / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for _ in range(3):
        registry.register(MODEL, "src", None, {"dataset_uri": str(folder)})
    registry.move_alias(MODEL, "staged", "3", reason="test")
    if live:
        registry.move_alias(MODEL, "live", "2", reason="test")
    return registry


def test_the_step_refuses_before_asking_anything(tmp_path: Path) -> None:
    empty = registry_with(tmp_path, live=True, records=[])
    with pytest.raises(BadInput, match="empty"):
        run(cfg(tmp_path), registry=empty, servers=[server()])
    no_staged = Registry(InMemoryBackend(), actor="test")
    with pytest.raises(BadInput, match="no alias 'staged'"):
        run(cfg(tmp_path), registry=no_staged, servers=[server()])
    record = {
        "context": "c",
        "question": "q",
        "reference_answer": "a",
        "metadata": {"question_type": "factual"},
    }
    registry = registry_with(tmp_path, live=True, records=[record])
    fake = FakeVllmServer({f"{BASE}-candidate": f"/a/{MODEL}/3"})
    with pytest.raises(BadInput, match="live slot"):
        run(cfg(tmp_path), registry=registry, servers=[fake])
    assert fake.requests == []


def test_selection_is_stratified_and_repeatable() -> None:
    chosen = select(items(40), 8, seed=1)
    assert len(chosen) == 8
    assert sorted(i.question_type for i in chosen).count("unanswerable") == 2
    assert select(items(40), 8, seed=1) == chosen
    assert select(items(40), 0, seed=1) == items(40)


def test_the_evaluation_split_is_read_from_a_prepared_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no eval\.jsonl"):
        fetch_eval_file(str(tmp_path), tmp_path)
    with pytest.raises(BadInput, match="no dataset URI"):
        fetch_eval_file("", tmp_path)
    with pytest.raises(BadInput, match="line 2 is not JSON"):
        parse_items(
            '{"context": "c", "question": "q", "reference_answer": "a", "metadata": {"question_type": "x"}}\n{'
        )
    with pytest.raises(BadInput, match="question_type"):
        parse_items('{"context": "c", "question": "q", "reference_answer": "a"}')
    legacy = parse_items(
        '{"context": "c", "question": "q", "reference_answer": "a", "metadata": {"question_type": "x"}}'
    )
    assert legacy[0].prompt == "[INST] c\n\nQuestion: q [/INST]"


def test_prepared_records_of_the_training_pipeline_parse(
    prepared_dir_records: list[dict[str, object]],
) -> None:
    parsed = parse_items("\n".join(json.dumps(r) for r in prepared_dir_records))
    assert parsed and all(i.prompt.startswith("[INST]") for i in parsed)
    assert any(i.unanswerable for i in parsed)


@pytest.fixture
def prepared_dir_records() -> list[dict[str, object]]:
    from mlops.datasets.ragqa import QARecord

    records = [
        QARecord("ctx", "Which port?", "Port 1.", "numeric", 1),
        QARecord("ctx", "Cost?", REFUSAL, "unanswerable", 2),
    ]
    return [r.to_json(split="eval") for r in records]


def test_the_evaluation_split_on_s3_is_checked_against_its_commit_manifest(s3: Any, tmp_path: Path) -> None:
    from mlops.storage import S3Url

    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "eval.jsonl").write_text('{"question": "q"}\n')
    s3.ensure_bucket("data")
    s3.publish_directory(folder, S3Url.parse("s3://data/ragqa/abc"))
    assert (
        fetch_eval_file("s3://data/ragqa/abc/", tmp_path / "a", store=s3).read_text() == '{"question": "q"}\n'
    )
    s3.put_bytes(S3Url.parse("s3://data/ragqa/abc/eval.jsonl"), b'{"question": "other"}\n')
    with pytest.raises(BadInput, match="differs from the commit manifest"):
        fetch_eval_file("s3://data/ragqa/abc", tmp_path / "b", store=s3)
    with pytest.raises(BadInput, match="not a committed prepared dataset"):
        fetch_eval_file("s3://data/ragqa/none", tmp_path / "c", store=s3)
