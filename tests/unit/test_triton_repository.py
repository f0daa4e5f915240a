"""The Triton stand-in's pure parts: config.pbtxt parsing, version policies, the repository listing
(commit markers), and the client's normalisation of what servers disagree on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlops.errors import Transient
from mlops.serving.triton import IndexEntry, normalise_state, wait_ready
from mlops.stack.triton import tensors
from mlops.stack.triton.errors import ServingError
from mlops.stack.triton.model_config import (
    ConfigError,
    TensorSpec,
    config_from_json,
    default_config,
    fill_io,
    parse_config,
    select_versions,
    to_json_dict,
    without_version_policy,
)
from mlops.stack.triton.repository import S3ModelRepository
from mlops.storage import COMMIT_MARKER, S3Url


def policy(text: str) -> object:
    return parse_config(text, "m").version_policy


@pytest.mark.parametrize(
    ("text", "available", "chosen"),
    [
        ("", [1, 2, 3], [3]),  # no policy: Triton's default, the latest one
        ("version_policy: { latest: { num_versions: 2 } }", [3, 1, 2], [2, 3]),
        ("version_policy: { latest: { num_versions: 5 } }", [1, 2], [1, 2]),
        ("version_policy: { all: { } }", [2, 1, 7], [1, 2, 7]),
        ("version_policy: { specific: { versions: [1, 3] } }", [1, 2, 3], [1, 3]),
        ("version_policy: { specific: { versions: [1, 9] } }", [1, 2], [1]),  # a missing one is skipped
        ("version_policy: { specific: { versions: [9] } }", [1, 2], []),
        ("version_policy: { latest: { num_versions: 1 } }", [], []),
    ],
)
def test_version_policy_selects_like_triton(text: str, available: list[int], chosen: list[int]) -> None:
    assert select_versions(policy(text), available) == chosen


def test_parse_fills_name_platform_and_default_policy() -> None:
    config = parse_config("max_batch_size: 4", "resnet")
    assert config.name == "resnet"
    assert (config.platform, config.backend) == ("onnxruntime_onnx", "onnxruntime")
    assert config.version_policy.latest.num_versions == 1
    assert config.default_model_filename == "model.onnx"
    assert default_config("resnet").version_policy.latest.num_versions == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [", "is not a Triton ModelConfig"),
        ('name: "other"', "does not match the model directory 'resnet'"),
        ('platform: "tensorflow_savedmodel"', "not served by the stand-in"),
        ('backend: "python"', "not served by the stand-in"),
        ("version_policy: { latest: { num_versions: 0 } }", "at least one version"),
        ("max_batch_size: -1", "must be >= 0"),
        ("versions: 3", "is not a Triton ModelConfig"),  # a misspelt field is an error, as in Triton
    ],
)
def test_configs_triton_would_refuse_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "resnet")


def test_a_load_request_may_carry_its_config_as_json() -> None:
    config = config_from_json('{"max_batch_size": 2, "version_policy": {"specific": {"versions": [4]}}}', "m")
    assert select_versions(config.version_policy, [3, 4]) == [4]
    with pytest.raises(ConfigError, match="not a Triton ModelConfig"):
        config_from_json('{"max_batch": 2}', "m")


def test_only_a_changed_policy_lets_loaded_versions_be_kept() -> None:
    base = parse_config("max_batch_size: 8\nversion_policy: { specific: { versions: [1] } }", "m")
    wider = parse_config("max_batch_size: 8\nversion_policy: { specific: { versions: [1, 2] } }", "m")
    other = parse_config("max_batch_size: 4\nversion_policy: { specific: { versions: [1] } }", "m")
    assert without_version_policy(base) == without_version_policy(wider)
    assert without_version_policy(base) != without_version_policy(other)


def test_inputs_and_outputs_are_completed_from_the_graph_and_checked_against_it() -> None:
    graph_in = [TensorSpec("input", "FP32", (-1, 3, 32, 32))]
    graph_out = [TensorSpec("logits", "FP32", (-1, 10))]
    config = parse_config("max_batch_size: 16", "m")
    fill_io(config, graph_in, graph_out)
    data = to_json_dict(config)
    assert data["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [3, 32, 32]}]
    assert data["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10]}]

    unbatched = parse_config("", "m")
    fill_io(unbatched, graph_in, graph_out)
    assert list(unbatched.input[0].dims) == [-1, 3, 32, 32]

    wrong_type = parse_config('input [{ name: "input" data_type: TYPE_FP64 dims: [3, 32, 32] }]', "m")
    with pytest.raises(
        ConfigError, match="expects datatype TYPE_FP64 for input 'input', model provides TYPE_FP32"
    ):
        fill_io(wrong_type, graph_in, graph_out)
    wrong_name = parse_config('output [{ name: "probs" data_type: TYPE_FP32 dims: [10] }]', "m")
    with pytest.raises(ConfigError, match="expects output 'probs'"):
        fill_io(wrong_name, graph_in, graph_out)


def test_json_form_writes_64_bit_integers_as_numbers() -> None:
    config = parse_config("version_policy: { specific: { versions: [1, 3] } }", "m")
    assert to_json_dict(config)["version_policy"] == {"specific": {"versions": [1, 3]}}


class MemoryStore:
    """The part of the ObjectStore the stand-in reads: list, get_bytes, download_file."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def list(self, url: S3Url) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(url.key))

    def get_bytes(self, url: S3Url) -> bytes:
        return self.objects[url.key]

    def download_file(self, url: S3Url, path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.objects[url.key])
        return ""


def test_the_listing_sees_only_committed_numbered_versions(tmp_path: Path) -> None:
    store = MemoryStore(
        {
            "t/resnet/config.pbtxt": b"max_batch_size: 8",
            "t/resnet/1/model.onnx": b"v1",
            "t/resnet/1/metadata.json": b"{}",
            f"t/resnet/1/{COMMIT_MARKER}": json.dumps({"model.onnx": "x"}).encode(),
            "t/resnet/2/model.onnx": b"v2 still uploading",
            "t/resnet/0/model.onnx": b"zero is not a version",
            f"t/resnet/0/{COMMIT_MARKER}": b"{}",
            "t/resnet/latest/model.onnx": b"not a number",
            "t/other/config.pbtxt": b"",
            "t/_staging/resnet/3-ab/model.onnx": b"staged",
            "elsewhere/x/1/model.onnx": b"",
        }
    )
    repository = S3ModelRepository(S3Url("b", "t"), store)  # type: ignore[arg-type]
    assert repository.model_names() == ["_staging", "other", "resnet"]  # every directory, as Triton lists
    listing = repository.listing("resnet")
    assert listing.exists and listing.config_text == "max_batch_size: 8"
    assert listing.versions == {1: ["t/resnet/1/metadata.json", "t/resnet/1/model.onnx"]}
    assert not repository.listing("missing").exists
    folder = repository.download_version(listing, 1, tmp_path / "v1")
    assert (folder / "model.onnx").read_bytes() == b"v1"


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP32", np.arange(6, dtype=np.float32).reshape(2, 3)),
        ("INT64", np.array([[1, -2]], dtype=np.int64)),
        ("BOOL", np.array([True, False])),
        ("BYTES", np.array([b"a", b"bc"], dtype=np.object_)),
    ],
)
def test_tensors_round_trip_through_raw_bytes_and_json(datatype: str, array: np.ndarray) -> None:
    assert tensors.wire_datatype(array) == datatype
    raw = tensors.from_raw("x", datatype, list(array.shape), tensors.to_raw(array))
    assert raw.tolist() == array.tolist()
    from_json = tensors.from_json("x", datatype, list(array.shape), tensors.to_json(array))
    assert from_json.tolist() == array.tolist()


def test_a_raw_tensor_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ServingError, match="unexpected total byte size 8 for input 'x', expecting 12"):
        tensors.from_raw("x", "FP32", [3], b"\0" * 8)


def test_client_normalises_index_states() -> None:
    assert [normalise_state(s) for s in ("State.READY", "READY", "unavailable")] == [
        "READY",
        "READY",
        "UNAVAILABLE",
    ]
    assert IndexEntry("m", "1", "READY") == ("m", "1", "READY", "")


class SlowServer:
    """A TritonServer fake whose versions become ready after a number of polls."""

    endpoint = "fake:8001"

    def __init__(self, polls_until_ready: int) -> None:
        self.polls = 0
        self.until = polls_until_ready

    def is_model_ready(self, model: str, version: str | int = "") -> bool:
        self.polls += 1
        return self.polls > self.until


def test_wait_ready_polls_until_ready_and_times_out_as_transient() -> None:
    server = SlowServer(polls_until_ready=3)
    assert wait_ready(server, "m", ["1"], timeout_s=5, poll_s=0.01) >= 0  # type: ignore[arg-type]
    assert server.polls == 4
    with pytest.raises(Transient, match=r"m version\(s\) \['2'\] not ready"):
        wait_ready(SlowServer(polls_until_ready=10**6), "m", [2], timeout_s=0.1, poll_s=0.01)  # type: ignore[arg-type]
