"""TensorRT-LLM path, deploy / smoke test / rollback against an in-memory Triton (the Protocol of
mlops.serving.triton) and in-process moto S3: request construction, the latency SLA, release log,
rollback through the repository API, and the refusals without a TensorRT-LLM Triton (exit 2, nothing written)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployment.triton.repository import served_versions
from deployment.trtllm import deploy, release, rollback, smoke_test
from deployment.trtllm.triton_models import ENSEMBLE, MODELS, EnsembleSettings, render_configs
from mlops.errors import BadInput
from mlops.registry import InMemoryBackend, Registry
from mlops.serving.triton import IndexEntry
from mlops.storage import S3Store, S3Url
from tests.unit.moto_s3 import moto_store

ROOT = "s3://models/trtllm"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    with moto_store(monkeypatch, "run-2", "models") as store:
        yield store


def publish_release(store: S3Store, version: int, workflow: str, tmp_path: Path) -> None:
    """A committed release of all four models, as the repository step leaves it."""
    configs = render_configs(
        EnsembleSettings(max_batch_size=4, engine_dir=f"/models/trtllm/tensorrt_llm/{version}")
    )
    dummy = tmp_path / f"file-{version}"
    dummy.write_bytes(b"x")
    for name, repo in release.repositories(store, S3Url.parse(ROOT)).items():
        repo.publish(version, {"payload": dummy}, {"workflow": workflow, "config_pbtxt": configs[name]})


class FakeTriton:
    """A TensorRT-LLM Triton in memory: it loads what each model's config.pbtxt on S3 lists, as Triton does."""

    def __init__(
        self, store: S3Store, endpoint: str = "10.0.0.1:8001", models: tuple[str, ...] = MODELS
    ) -> None:
        self.store, self.endpoint, self.models = store, endpoint, models
        self.ready: dict[str, list[int]] = {}
        self.calls: list[str] = []
        self.requests: list[dict[str, np.ndarray]] = []
        self.answer = b"Paris"

    def repository_index(self) -> list[IndexEntry]:
        return [IndexEntry(name, "", "") for name in self.models]

    def load(self, model: str) -> None:
        self.calls.append(f"load {model}")
        text = self.store.get_bytes(S3Url.parse(f"{ROOT}/{model}/config.pbtxt")).decode()
        self.ready[model] = served_versions(text)

    def unload(self, model: str) -> None:
        self.calls.append(f"unload {model}")
        self.ready.pop(model, None)

    def is_model_ready(self, model: str, version: str | int = "") -> bool:
        versions = self.ready.get(model, [])
        return bool(versions) and (not version or int(version) in versions)

    def infer(
        self, model: str, version: str | int, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        assert model == ENSEMBLE and self.is_model_ready(model, version)
        self.requests.append(dict(inputs))
        return {"text_output": np.array([[self.answer]], dtype=np.object_)}

    def model_config(self, model: str) -> dict[str, Any]:
        return {}


def all_keys(store: S3Store) -> list[str]:
    return sorted(store.list(S3Url("models", "")))


def test_the_smoke_request() -> None:
    inputs = smoke_test.generation_inputs("[INST] Hi [/INST]", 16)
    assert set(inputs) == {"text_input", "max_tokens", "temperature"}
    assert inputs["text_input"].shape == (1, 1) and inputs["text_input"].dtype == np.object_
    assert inputs["text_input"][0, 0] == b"[INST] Hi [/INST]"
    assert inputs["max_tokens"].dtype == np.int32 and inputs["max_tokens"].tolist() == [[16]]
    assert inputs["temperature"].dtype == np.float32 and inputs["temperature"].tolist() == [[0.0]]
    with pytest.raises(BadInput, match="prompt is empty"):
        smoke_test.generation_inputs("  ", 16)
    assert smoke_test.answer_text({"text_output": np.array([[b"ok"]], dtype=np.object_)}) == "ok"
    assert smoke_test.answer_text({}) == ""


def test_latency_gate() -> None:
    assert smoke_test.latency_gate([0.1, 0.2, 0.3], 0, 0.5).passed
    failed = smoke_test.latency_gate([0.1, 0.2, 3.0], 0, 0.5)
    assert not failed.passed and "p95_latency_s" in failed.reason
    assert not smoke_test.latency_gate([0.1], 1, 0.5).passed


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        (deploy, ["--triton-version=1"]),
        (smoke_test, ["--triton-version=1"]),
        (rollback, ["--to-version=1"]),
    ],
    ids=["deploy", "smoke-test", "rollback"],
)
def test_without_a_trtllm_triton_the_steps_exit_2_and_write_nothing(
    module: Any,
    argv: list[str],
    s3: S3Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(S3Store, "__init__", lambda self, *a, **k: setattr(self, "client", s3.client))
    before = all_keys(s3)
    assert module.main([f"--model-repository={ROOT}", "--endpoints=", *argv]) == 2
    err = capsys.readouterr().err
    assert "needs a Triton server with the TensorRT-LLM backend" in err and "Nothing was done" in err
    assert all_keys(s3) == before


def test_a_triton_that_does_not_serve_the_repository_is_refused(s3: S3Store, tmp_path: Path) -> None:
    publish_release(s3, 1, "run-1", tmp_path)
    onnx_only = FakeTriton(s3, models=("resnet18-imagenette",))
    before = all_keys(s3)
    with pytest.raises(BadInput, match=r"does not serve the TensorRT-LLM repository .* lacks preprocessing"):
        deploy.run(
            deploy.Config(model_repository=ROOT, endpoints="a:1", triton_version=1), s3, lambda _: onnx_only
        )
    assert all_keys(s3) == before and onnx_only.calls == []


def test_deploy_smoke_and_rollback(s3: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish_release(s3, 1, "run-1", tmp_path)
    publish_release(s3, 2, "run-2", tmp_path)
    server = FakeTriton(s3)
    connector = lambda _: server  # noqa: E731
    monkeypatch.setenv("MLOPS_WORKFLOW_NAME", "run-1")
    deploy.run(deploy.Config(model_repository=ROOT, endpoints="a:1", triton_version=1), s3, connector)
    monkeypatch.setenv("MLOPS_WORKFLOW_NAME", "run-2")
    result = deploy.run(
        deploy.Config(model_repository=ROOT, endpoints="a:1", triton_version=2), s3, connector
    )
    assert result.outputs["previous-version"] == "1"
    assert server.calls[-4:] == [f"load {m}" for m in MODELS]  # the ensemble last
    assert all(server.ready[m] == [2] for m in MODELS)
    for model in MODELS:
        text = s3.get_bytes(S3Url.parse(f"{ROOT}/{model}/config.pbtxt")).decode()
        assert served_versions(text) == [2]
    log = json.loads(s3.get_bytes(S3Url.parse(f"{ROOT}/_releases.json")))
    assert [(e["version"], e["previous"], e["workflow"]) for e in log] == [
        (1, None, "run-1"),
        (2, 1, "run-2"),
    ]

    registry = Registry(InMemoryBackend(), actor="test")
    registry.register("mistral-7b-lora", "s3://a", None)
    cfg = smoke_test.Config(
        model_repository=ROOT, endpoints="a:1", triton_version=2, version="1", requests=3, max_tokens=8
    )
    passed = smoke_test.run(cfg, registry, connector)
    assert passed.outputs["verdict"] == "pass" and len(server.requests) == 3
    assert server.requests[0]["max_tokens"].tolist() == [[8]]
    tags = registry.tags("mistral-7b-lora", "1")
    assert tags["trtllm.triton_version"] == "2" and float(tags["trtllm.smoke_p95_latency_s"]) >= 0

    with pytest.raises(BadInput, match=r"smoke test failed .* p95_latency_s"):
        smoke_test.run(cfg.model_copy(update={"max_p95_latency_s": 1e-9, "version": ""}), registry, connector)
    server.answer = b""
    with pytest.raises(BadInput, match="empty_answers"):
        smoke_test.run(cfg.model_copy(update={"version": ""}), registry, connector)

    # the exit handler of a successful run and of another run do nothing; this failed run's restores release 1
    kept = rollback.run(
        rollback.Config(
            model_repository=ROOT, endpoints="a:1", if_deployed_by="run-2", workflow_status="Succeeded"
        ),
        s3,
        connector,
    )
    assert kept.outputs == {"rolled-back": "false", "served-version": "2"}
    other = rollback.run(
        rollback.Config(model_repository=ROOT, endpoints="a:1", if_deployed_by="run-9"), s3, connector
    )
    assert other.outputs["rolled-back"] == "false" and all(server.ready[m] == [2] for m in MODELS)
    back = rollback.run(
        rollback.Config(
            model_repository=ROOT, endpoints="a:1", if_deployed_by="run-2", workflow_status="Failed"
        ),
        s3,
        connector,
    )
    assert back.outputs == {"rolled-back": "true", "served-version": "1"}
    assert all(server.ready[m] == [1] for m in MODELS)
    latest = release.current(s3, S3Url.parse(ROOT))
    assert latest is not None and (latest["version"], latest["previous"], latest["action"]) == (
        1,
        2,
        "rollback",
    )


def test_rollback_of_a_first_release_unloads_and_an_empty_log_is_bad_input(
    s3: S3Store, tmp_path: Path
) -> None:
    root = S3Url.parse(ROOT)
    with pytest.raises(BadInput, match="release log is empty"):
        rollback.run(rollback.Config(model_repository=ROOT, endpoints="a:1"), s3, lambda _: FakeTriton(s3))
    publish_release(s3, 1, "run-2", tmp_path)
    server = FakeTriton(s3)
    deploy.run(deploy.Config(model_repository=ROOT, endpoints="a:1", triton_version=1), s3, lambda _: server)
    with pytest.raises(BadInput, match="replaced nothing"):
        rollback.run(rollback.Config(model_repository=ROOT, endpoints="a:1"), s3, lambda _: server)
    done = rollback.run(
        rollback.Config(model_repository=ROOT, endpoints="a:1", if_deployed_by="run-2"), s3, lambda _: server
    )
    assert done.outputs["served-version"] == "none" and server.ready == {}
    assert server.calls[-4:] == [f"unload {m}" for m in reversed(MODELS)]
    assert release.current(s3, root)["action"] == "unload"


def test_the_exit_handler_of_a_run_that_never_deployed_needs_no_server(s3: S3Store) -> None:
    def no_server(endpoint: str) -> Any:
        raise AssertionError("a server was contacted")

    result = rollback.run(
        rollback.Config(model_repository=ROOT, endpoints="", if_deployed_by="run-2"), s3, no_server
    )
    assert result.outputs == {"rolled-back": "false", "served-version": "none"}
