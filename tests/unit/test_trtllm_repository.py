"""TensorRT-LLM path, repository step: the Triton ensemble written to (in-process moto) S3, its
layout and every config.pbtxt parsed back, one release per workflow run, and the python models."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployment.trtllm import release, repository
from deployment.trtllm.python_models import postprocessing, preprocessing
from deployment.trtllm.triton_models import (
    ENSEMBLE,
    MODELS,
    POSTPROCESSING,
    PREPROCESSING,
    TENSORRT_LLM,
    EnsembleSettings,
    parse_config,
    render_configs,
)
from mlops.config import load_config
from mlops.errors import BadInput
from mlops.storage import COMMIT_MARKER, S3Store, S3Url
from tests.unit.moto_s3 import moto_store

ROOT = "s3://models/trtllm"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    with moto_store(monkeypatch, "trtllm-deployment-run1", "work") as store:
        yield store


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.llm.tokenizer import to_transformers, train_bpe

    folder = tmp_path_factory.mktemp("tokenizer")
    texts = [f"the capital of country {i} is city {i * 3}" for i in range(100)]
    to_transformers(train_bpe(texts, 300), model_max_length=128).save_pretrained(str(folder))
    return folder


def stage_inputs(
    store: S3Store, tmp_path: Path, tokenizer_dir: Path, max_batch_size: int = 4
) -> dict[str, str]:
    """An engine and a merged checkpoint as build and merge leave them (committed under the work prefix)."""
    engine = tmp_path / "engine"
    engine.mkdir()
    limits = {
        "max_batch_size": max_batch_size,
        "max_input_len": 512,
        "max_seq_len": 1024,
        "max_beam_width": 1,
    }
    (engine / "config.json").write_text(json.dumps({"build_config": limits}))
    (engine / "rank0.engine").write_bytes(b"\x00" * 64)
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    (merged / "model.safetensors").write_bytes(b"weights")
    for path in tokenizer_dir.iterdir():
        (merged / path.name).write_bytes(path.read_bytes())
    store.publish_directory(engine, S3Url.parse("s3://work/run1/engine"))
    store.publish_directory(merged, S3Url.parse("s3://work/run1/merged-v3"))
    return {"engine_uri": "s3://work/run1/engine", "merged_uri": "s3://work/run1/merged-v3", "version": "3"}


def keys_under(store: S3Store, url: str) -> list[str]:
    root = S3Url.parse(url)
    return sorted(k[len(root.key) + 1 :] for k in store.list(S3Url(root.bucket, root.key + "/")))


def test_the_repository_layout_of_a_release(s3: S3Store, tmp_path: Path, tokenizer_dir: Path) -> None:
    cfg = repository.Config(model_repository=ROOT, **stage_inputs(s3, tmp_path, tokenizer_dir))
    result = repository.run(cfg, s3)
    assert result.outputs == {"triton-version": "1"}
    files = keys_under(s3, ROOT)
    tokenizer = {
        f"tokenizer/{p.name}" for p in tokenizer_dir.iterdir() if p.name in repository.TOKENIZER_FILES
    }
    expected = (
        {f"{TENSORRT_LLM}/1/{name}" for name in ("config.json", "rank0.engine")}
        | {f"{m}/1/{name}" for m in (PREPROCESSING, POSTPROCESSING) for name in {"model.py", *tokenizer}}
        | {f"{m}/1/{name}" for m in MODELS for name in ("metadata.json", COMMIT_MARKER)}
    )
    assert set(files) == expected  # nothing else: no staging leftovers, no config.pbtxt (deploy writes it)
    assert "tokenizer/tokenizer.json" in tokenizer
    model_py = s3.get_bytes(S3Url.parse(f"{ROOT}/{PREPROCESSING}/1/model.py")).decode()
    assert "class TritonPythonModel" in model_py
    metadata = json.loads(s3.get_bytes(S3Url.parse(f"{ROOT}/{ENSEMBLE}/1/metadata.json")))
    assert metadata["workflow"] == "trtllm-deployment-run1"
    assert (metadata["mlflow_model"], metadata["mlflow_version"]) == ("mistral-7b-lora", "3")
    assert metadata["engine_uri"] == "s3://work/run1/engine"
    committed = json.loads(s3.get_bytes(S3Url.parse(f"{ROOT}/{TENSORRT_LLM}/1/{COMMIT_MARKER}")))
    assert set(committed) == {"config.json", "rank0.engine", "metadata.json"}


def stored_config(store: S3Store, model: str, version: int = 1) -> Any:
    metadata = json.loads(store.get_bytes(S3Url.parse(f"{ROOT}/{model}/{version}/metadata.json")))
    return parse_config(metadata["config_pbtxt"])


def tensors(collection: Any) -> dict[str, tuple[str, list[int], bool]]:
    from tritonclient.grpc import model_config_pb2

    return {
        t.name: (
            model_config_pb2.DataType.Name(t.data_type),
            list(t.dims),
            bool(getattr(t, "optional", False)),
        )
        for t in collection
    }


def test_every_config_pbtxt_parses_back_with_the_engine_limits(
    s3: S3Store, tmp_path: Path, tokenizer_dir: Path
) -> None:
    cfg = repository.Config(
        model_repository=ROOT,
        server_model_root="/models/trtllm/",
        kv_cache_free_gpu_mem_fraction=0.8,
        **stage_inputs(s3, tmp_path, tokenizer_dir, max_batch_size=16),
    )
    repository.run(cfg, s3)
    configs = {model: stored_config(s3, model) for model in MODELS}
    for model, config in configs.items():
        assert config.name == model and config.max_batch_size == 16  # the engine's own limit

    pre = configs[PREPROCESSING]
    assert pre.backend == "python"
    assert tensors(pre.input) == {
        "QUERY": ("TYPE_STRING", [1], False),
        "REQUEST_OUTPUT_LEN": ("TYPE_INT32", [1], False),
    }
    assert set(tensors(pre.output)) == {
        "INPUT_ID",
        "REQUEST_INPUT_LEN",
        "REQUEST_OUTPUT_LEN",
        "OUT_END_ID",
        "OUT_PAD_ID",
    }
    assert pre.parameters["tokenizer_dir"].string_value == "tokenizer"

    llm = configs[TENSORRT_LLM]
    assert llm.backend == "tensorrtllm" and not llm.model_transaction_policy.decoupled
    assert list(llm.dynamic_batching.preferred_batch_size) == [16]
    params = {key: value.string_value for key, value in llm.parameters.items()}
    assert params["gpt_model_path"] == "/models/trtllm/tensorrt_llm/1"
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["kv_cache_free_gpu_mem_fraction"] == "0.8"
    assert params["exclude_input_in_output"] == "true" and params["max_beam_width"] == "1"
    inputs = {t.name: t for t in llm.input}
    assert inputs["input_ids"].allow_ragged_batch and inputs["input_lengths"].HasField("reshape")
    assert inputs["end_id"].optional and not inputs["request_output_len"].optional
    assert set(tensors(llm.output)) == {"output_ids", "sequence_length"}

    post = configs[POSTPROCESSING]
    assert tensors(post.input) == {
        "TOKENS_BATCH": ("TYPE_INT32", [-1, -1], False),
        "SEQUENCE_LENGTH": ("TYPE_INT32", [-1], False),
    }
    assert tensors(post.output) == {"OUTPUT": ("TYPE_STRING", [-1], False)}

    ensemble = configs[ENSEMBLE]
    assert ensemble.platform == "ensemble"
    assert tensors(ensemble.output) == {"text_output": ("TYPE_STRING", [-1], False)}
    steps = ensemble.ensemble_scheduling.step
    assert [s.model_name for s in steps] == [PREPROCESSING, TENSORRT_LLM, POSTPROCESSING]
    assert all(s.model_version == -1 for s in steps)


def test_the_ensemble_wiring_is_consistent() -> None:
    """Every input a step reads is an ensemble input or an earlier step's output, with the same type."""
    configs = {
        m: parse_config(t)
        for m, t in render_configs(EnsembleSettings(max_batch_size=2, engine_dir="/e")).items()
    }
    ensemble = configs[ENSEMBLE]
    available = {name: spec[0] for name, spec in tensors(ensemble.input).items()}
    for step in ensemble.ensemble_scheduling.step:
        model = configs[step.model_name]
        model_inputs, model_outputs = tensors(model.input), tensors(model.output)
        for key, value in step.input_map.items():
            assert key in model_inputs, f"{step.model_name} has no input {key}"
            assert value in available, f"{value} feeds {step.model_name}.{key} before anything produces it"
            assert available[value] == model_inputs[key][0], (
                f"{value} -> {step.model_name}.{key} type mismatch"
            )
        for key, value in step.output_map.items():
            assert key in model_outputs, f"{step.model_name} has no output {key}"
            available[value] = model_outputs[key][0]
        required = {name for name, spec in model_inputs.items() if not spec[2]}
        assert required <= set(step.input_map), f"{step.model_name} misses {required - set(step.input_map)}"
    assert "text_output" in available


def test_a_retry_of_the_same_run_publishes_nothing_and_the_next_run_gets_the_next_release(
    s3: S3Store, tmp_path: Path, tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = repository.Config(model_repository=ROOT, **stage_inputs(s3, tmp_path, tokenizer_dir))
    repository.run(cfg, s3)
    before = keys_under(s3, ROOT)
    again = repository.run(cfg, s3)
    assert again.outputs == {"triton-version": "1"} and "already committed" in again.summary
    assert keys_under(s3, ROOT) == before
    monkeypatch.setenv("MLOPS_WORKFLOW_NAME", "trtllm-deployment-run2")
    assert repository.run(cfg, s3).outputs == {"triton-version": "2"}
    repos = release.repositories(s3, S3Url.parse(ROOT))
    assert release.committed_releases(repos) == [1, 2]
    assert release.release_of_workflow(repos, "trtllm-deployment-run1") == 1


def test_an_unfinished_engine_is_refused_and_nothing_is_written(
    s3: S3Store, tmp_path: Path, tokenizer_dir: Path
) -> None:
    inputs = stage_inputs(s3, tmp_path, tokenizer_dir)
    s3.delete(S3Url.parse(inputs["engine_uri"]).join(COMMIT_MARKER))
    with pytest.raises(BadInput, match="has no _COMMITTED"):
        repository.run(repository.Config(model_repository=ROOT, **inputs), s3)
    assert keys_under(s3, ROOT) == []
    with pytest.raises(BadInput, match=r"^--engine-uri is required: .*; --merged-uri is .*; --version is "):
        load_config(repository.Config, [f"--model-repository={ROOT}"], env={})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kv_cache_free_gpu_mem_fraction": 1.5}, "kv_cache_free_gpu_mem_fraction"),
        ({"batching_strategy": "dynamic"}, "batching_strategy"),
        ({"engine_dir": ""}, "engine_dir is empty"),
        ({"max_batch_size": 0}, "must be >= 1"),
    ],
)
def test_bad_ensemble_settings_are_bad_input(change: dict[str, Any], message: str) -> None:
    settings = {"max_batch_size": 2, "engine_dir": "/e", **change}
    with pytest.raises(BadInput, match=message):
        render_configs(EnsembleSettings(**settings))


# --- the python models, run with the tokenizer and a stand-in for Triton's pb_utils --------------


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor], error: Any = None) -> None:
        self.outputs = {t.name: t.array for t in output_tensors}
        self.error = error


@pytest.fixture
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = FakeTensor  # type: ignore[attr-defined]
    module.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    module.TritonError = str  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.get(name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module


def model_args(tokenizer_dir: Path, model: str) -> dict[str, Any]:
    """What Triton passes to initialize(): the tokenizer sits in <model_repository>/<version>/tokenizer."""
    config = render_configs(EnsembleSettings(max_batch_size=2, engine_dir="/e"))[model]
    from google.protobuf import json_format

    as_json = json_format.MessageToDict(parse_config(config), preserving_proto_field_name=True)
    return {
        "model_config": json.dumps(as_json),
        "model_repository": str(tokenizer_dir.parent),
        "model_version": tokenizer_dir.name,
    }


def test_preprocessing_and_postprocessing_round_trip(
    pb_utils: types.ModuleType, tmp_path: Path, tokenizer_dir: Path
) -> None:
    version_dir = tmp_path / "preprocessing" / "1"
    (version_dir / "tokenizer").mkdir(parents=True)
    for path in tokenizer_dir.iterdir():
        (version_dir / "tokenizer" / path.name).write_bytes(path.read_bytes())
    args = model_args(version_dir / "tokenizer", PREPROCESSING)
    args["model_repository"], args["model_version"] = str(tmp_path / "preprocessing"), "1"
    pre = preprocessing.TritonPythonModel()
    pre.initialize(args)
    queries = np.array([[b"the capital of country 7"], [b"city 21"]], dtype=np.object_)
    [answer] = pre.execute(
        [
            {
                "QUERY": FakeTensor("QUERY", queries),
                "REQUEST_OUTPUT_LEN": FakeTensor("R", np.array([[8], [8]], dtype=np.int32)),
            }
        ]
    )
    assert answer.error is None
    ids, lengths = answer.outputs["INPUT_ID"], answer.outputs["REQUEST_INPUT_LEN"]
    assert ids.dtype == np.int32 and ids.shape[0] == 2 and lengths.shape == (2, 1)
    assert lengths[1, 0] < lengths[0, 0] and (ids[1, lengths[1, 0] :] == pre.pad_id).all()
    assert (answer.outputs["OUT_END_ID"] == pre.tokenizer.eos_token_id).all()

    post_args = dict(args)
    post_args["model_config"] = model_args(version_dir / "tokenizer", POSTPROCESSING)["model_config"]
    post = postprocessing.TritonPythonModel()
    post.initialize(post_args)
    tokens = ids[:, None, :]  # [B, beams=1, T]: "generated" ids are the prompt's, so decoding gives it back
    [decoded] = post.execute(
        [{"TOKENS_BATCH": FakeTensor("T", tokens), "SEQUENCE_LENGTH": FakeTensor("S", lengths)}]
    )
    texts = decoded.outputs["OUTPUT"]
    assert texts.shape == (2, 1)
    assert texts[0, 0].decode() == "the capital of country 7" and texts[1, 0].decode() == "city 21"
    [bad] = post.execute(
        [{"TOKENS_BATCH": FakeTensor("T", ids), "SEQUENCE_LENGTH": FakeTensor("S", lengths)}]
    )
    assert bad.error and "do not match" in bad.error
