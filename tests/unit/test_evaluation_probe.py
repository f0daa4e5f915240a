"""The production probe against an in-process FAKE vLLM server (implements mlops.serving.vllm.VllmServer;
unit level only) and an in-memory registry: release values stored on the version, the figures and
their release values pushed (to a RecordingSink), drift found, and the bad inputs that push nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluation import drift
from evaluation.probe import Config, run
from evaluation.stats import Interval
from mlops.datasets.ragqa import PROBE_FILE, REFUSAL, QARecord
from mlops.errors import BadInput
from mlops.pushgateway import Gauge, RecordingSink
from mlops.registry import InMemoryBackend, Registry
from mlops.serving.vllm import Completion, ServedModel

MODEL = "mistral-7b-lora"
BASE = "aws-rag-qa"
KINDS = ["factual", "numeric", "yes_no", "unanswerable"]


def probe_records(count: int = 20) -> list[QARecord]:
    return [
        QARecord(
            context=f"Relay {i} listens on port {7000 + i}.",
            question=f"Which port does relay {i} use?",
            reference_answer=REFUSAL if KINDS[i % 4] == "unanswerable" else f"Port {7000 + i}.",
            question_type=KINDS[i % 4],
            source_line=i + 1,
        )
        for i in range(count)
    ]


def dataset(tmp_path: Path, records: list[QARecord] | None = None, with_probe: bool = True) -> str:
    folder = tmp_path / "dataset"
    folder.mkdir(exist_ok=True)
    (folder / "eval.jsonl").write_text("")
    if with_probe:
        lines = [json.dumps(r.to_json(split="probe")) for r in (records or probe_records())]
        (folder / PROBE_FILE).write_text("\n".join(lines) + "\n")
    return str(folder)


class FakeVllmServer:
    """FAKE (unit tests only): slots hold adapters `/adapters/<model>/<version>`; a slot answers from
    `answers` (served name -> prompt -> text), the reference answer by default when `good`."""

    endpoint = "fake://vllm"

    def __init__(self, slots: dict[str, str], quality: dict[str, str]) -> None:
        self.slots = slots
        self.quality = quality  # served name -> good | wrong | refuses
        self.references = {r.prompt_inference: r.reference_answer for r in probe_records(100)}
        self.requests = 0

    def healthy(self) -> bool:
        return True

    def models(self) -> list[ServedModel]:
        return [ServedModel(BASE, "/models/base")] + [
            ServedModel(name, root, parent=BASE) for name, root in self.slots.items()
        ]

    def load_adapter(self, name: str, path: str, inplace: bool = False) -> None:
        self.slots[name] = path

    def unload_adapter(self, name: str) -> None:
        self.slots.pop(name, None)

    def complete(self, model: str, prompt: str, max_tokens: int = 64, temperature: float = 0.0) -> Completion:
        self.requests += 1
        quality = self.quality[model]
        reference = self.references[prompt]
        if quality == "good":
            text = reference
        elif quality == "refuses":
            text = REFUSAL
        else:
            text = "Port 1."  # a wrong value, and no refusal where one was due
        return Completion(text, "stop", 10, 5, 0.01)


def registry_with(live: str | None = "2", staged: str | None = "3") -> Registry:
    registry = Registry(InMemoryBackend())
    for _ in range(3):
        registry.backend.create_version(MODEL, "s3://x", None, {})
    if live:
        registry.backend.set_alias(MODEL, "live", live)
    if staged:
        registry.backend.set_alias(MODEL, "staged", staged)
    return registry


def server(
    live: str = "good", candidate: str = "good", live_version: str = "2", candidate_version: str = "3"
) -> FakeVllmServer:
    return FakeVllmServer(
        {
            f"{BASE}-live": f"/adapters/{MODEL}/{live_version}",
            f"{BASE}-candidate": f"/adapters/{MODEL}/{candidate_version}",
        },
        {f"{BASE}-live": live, f"{BASE}-candidate": candidate},
    )


def cfg(tmp_path: Path, **overrides: object) -> Config:
    return Config(dataset_uri=dataset(tmp_path), retry_wait_s=0, concurrency=4, **overrides)  # type: ignore[arg-type]


def by_name(gauges: list[Gauge]) -> dict[str, list[Gauge]]:
    found: dict[str, list[Gauge]] = {}
    for gauge in gauges:
        found.setdefault(gauge.name, []).append(gauge)
    return found


def test_release_mode_stores_the_candidates_figures_on_the_version(tmp_path: Path) -> None:
    registry, fake, sink = registry_with(), server(candidate="good"), RecordingSink()
    result = run(cfg(tmp_path, mode="release"), registry, [fake], sink)
    tags = registry.tags(MODEL, "3")
    assert tags["probe.release.score.reference"] == "1.000000"
    assert tags["probe.release.refusal_rate"] == "0.250000"  # the 5 unanswerable of 20
    assert tags["probe.release.questions"] == "20"
    assert 0 < float(tags["probe.release.score_ci_halfwidth.reference"]) < 0.2
    assert result.outputs["version"] == "3" and result.outputs["score"] == "1.0000"
    assert fake.requests == 20 and sink.pushes == []  # release mode pushes nothing
    assert registry.tags(MODEL, "2") == {}


def test_a_stable_live_version_is_pushed_with_its_release_values(tmp_path: Path) -> None:
    registry, sink = registry_with(), RecordingSink()
    # version 2 in the candidate slot before it went live: its release values
    run(cfg(tmp_path, mode="release", version="2"), registry, [server(candidate_version="2")], sink)
    assert sink.pushes == []
    result = run(cfg(tmp_path), registry, [server(live="good")], sink)
    assert result.outputs["drift"] == "false" and result.outputs["release-score"] == "1.0000"
    [(job, grouping, gauges)] = sink.pushes
    assert (job, grouping) == ("mlops-probe", {"model": MODEL})
    metrics = by_name(gauges)
    assert metrics["mlops_probe_score"][0].labels == {"model": MODEL, "version": "2", "judge": "reference"}
    assert metrics["mlops_probe_score"][0].value == metrics["mlops_probe_score_release"][0].value == 1.0
    assert (
        metrics["mlops_probe_refusal_rate"][0].value == metrics["mlops_probe_refusal_rate_release"][0].value
    )
    assert set(metrics) == {
        "mlops_probe_questions",
        "mlops_probe_score",
        "mlops_probe_score_ci_halfwidth",
        "mlops_probe_score_release",
        "mlops_probe_refusal_rate",
        "mlops_probe_refusal_rate_release",
    }


def test_a_degraded_live_slot_is_drift(tmp_path: Path) -> None:
    registry, sink = registry_with(), RecordingSink()
    registry.tag_version(
        MODEL, "2", {"probe.release.score.reference": "0.9", "probe.release.refusal_rate": "0.25"}
    )
    result = run(cfg(tmp_path), registry, [server(live="wrong")], sink)
    assert result.outputs["drift"] == "true"
    assert "score[reference] + ci half-width" in result.outputs["reason"]
    assert "refusal rate change" in result.outputs["reason"]  # 25% at release, none now
    metrics = by_name(sink.pushes[0][2])
    assert metrics["mlops_probe_score"][0].value == 0.0
    assert metrics["mlops_probe_refusal_rate"][0].value == 0.0


def test_a_version_moved_live_by_hand_is_compared_with_the_last_release(tmp_path: Path) -> None:
    registry, sink = registry_with(), RecordingSink()
    run(cfg(tmp_path, mode="release", version="2"), registry, [server(candidate_version="2")], sink)
    assert registry.model_tags(MODEL)["probe.release.version"] == "2"
    registry.move_alias(MODEL, "live", "3", expect_version="2", reason="by hand")  # no release values
    result = run(cfg(tmp_path), registry, [server(live="wrong", live_version="3")], sink)
    assert result.outputs["drift"] == "true" and result.outputs["release-version"] == "2"
    assert "compared with v2's release values" in result.summary
    metrics = by_name(sink.pushes[0][2])
    assert metrics["mlops_probe_score_release"][0].labels["version"] == "3"  # matches the probe's series
    assert metrics["mlops_probe_score_release"][0].value == 1.0


def test_a_version_without_release_values_is_pushed_without_them(tmp_path: Path) -> None:
    registry, sink = registry_with(), RecordingSink()
    result = run(cfg(tmp_path), registry, [server()], sink)
    assert result.outputs["drift"] == "unknown" and result.outputs["release-score"] == ""
    names = set(by_name(sink.pushes[0][2]))
    assert "mlops_probe_score" in names and not {n for n in names if n.endswith("_release")}


def test_a_slot_holding_another_version_is_bad_input_and_nothing_is_pushed(tmp_path: Path) -> None:
    registry, sink = registry_with(), RecordingSink()
    with pytest.raises(BadInput, match=r"holds .* but the live version is v2"):
        run(cfg(tmp_path), registry, [server(live_version="1")], sink)
    assert sink.pushes == []


def test_a_dataset_without_a_probe_split_is_bad_input(tmp_path: Path) -> None:
    registry, sink, fake = registry_with(), RecordingSink(), server()
    config = Config(dataset_uri=dataset(tmp_path, with_probe=False), retry_wait_s=0)
    with pytest.raises(BadInput, match=r"probe\.jsonl"):
        run(config, registry, [fake], sink)
    assert sink.pushes == [] and fake.requests == 0


def test_no_live_version_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="live"):
        run(cfg(tmp_path), registry_with(live=None), [server()], RecordingSink())


def test_an_unknown_judge_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown judge backend 'oracle'"):
        run(cfg(tmp_path, judges="reference,oracle"), registry_with(), [server()], RecordingSink())


# --- the pure parts -----------------------------------------------------------------------------


def figures(score: float, halfwidth: float, refusal: float) -> drift.ProbeFigures:
    return drift.ProbeFigures(
        40, {"reference": Interval(score, score - halfwidth, score + halfwidth)}, Interval(refusal, 0, 1)
    )


def test_drift_verdict_uses_the_interval_and_the_refusal_tolerance() -> None:
    release = drift.ReleaseFigures({"reference": 0.8}, 0.2, 40, "")
    assert drift.drift_verdict(figures(0.72, 0.1, 0.25), release, 0.1).passed
    assert not drift.drift_verdict(figures(0.65, 0.1, 0.2), release, 0.1).passed
    assert not drift.drift_verdict(figures(0.8, 0.1, 0.35), release, 0.1).passed
    assert not drift.drift_verdict(figures(0.8, 0.1, 0.05), release, 0.1).passed  # both directions


def test_release_values_round_trip_through_tags_and_bad_tags_are_refused() -> None:
    tags = figures(0.7, 0.1, 0.2).as_tags()
    release = drift.release_from_tags(tags)
    assert release is not None and math.isclose(release.scores["reference"], 0.7)
    assert math.isclose(release.refusal_rate, 0.2) and release.questions == 40
    assert drift.release_from_tags({}) is None
    with pytest.raises(BadInput, match="not a number"):
        drift.release_from_tags({**tags, "probe.release.score.reference": "high"})
    with pytest.raises(BadInput, match="not a fraction"):
        drift.release_from_tags({**tags, "probe.release.refusal_rate": "25"})  # a percent
