"""The Triton stand-in, started as `mlops up` starts it, driven through `mlops.serving.triton` (gRPC)
and tritonclient's HTTP client, on models published to the session's real S3 in Triton layout."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlops.errors import BadInput, Transient
from mlops.serving.triton import IndexEntry, TritonServer, connect, wait_ready
from mlops.stack.manager import free_port
from mlops.storage import S3Store, S3Url
from tests.conftest import LocalStack, TritonStack

pytestmark = pytest.mark.integration

X = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]], dtype=np.float32)
BIAS = np.array([1.0, -1.0], dtype=np.float32)


def weights(scale: float) -> np.ndarray:
    return np.arange(6, dtype=np.float32).reshape(3, 2) * scale


def expected(scale: float) -> np.ndarray:
    return X @ weights(scale) + BIAS


def linear_onnx(path: Path, scale: float) -> Path:
    """A Gemm `logits = input @ W*scale + b` with a dynamic batch dimension."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "W", "B"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights(scale), "W"), numpy_helper.from_array(BIAS, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


class Repo:
    """One model's place in the stand-in's repository, private to a test."""

    def __init__(self, store: S3Store, root: S3Url, tmp: Path) -> None:
        self.store, self.root, self.tmp = store, root, tmp
        self.model = f"lin-{uuid.uuid4().hex[:6]}"

    def config(self, policy: str, max_batch_size: int = 8) -> None:
        text = f'name: "{self.model}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n{policy}\n'
        self.store.put_bytes(self.root.join(self.model, "config.pbtxt"), text.encode())

    def publish(self, version: int, scale: float) -> None:
        folder = self.tmp / f"{self.model}-{version}"
        linear_onnx(folder / "model.onnx", scale)
        self.store.publish_directory(folder, self.root.join(self.model, str(version)))

    def upload_uncommitted(self, version: int, scale: float) -> None:
        path = linear_onnx(self.tmp / f"{self.model}-{version}-partial" / "model.onnx", scale)
        self.store.upload_file(path, self.root.join(self.model, str(version), "model.onnx"))


@pytest.fixture
def repo(local_stack: LocalStack, triton_stack: TritonStack, tmp_path: Path) -> Repo:
    store = S3Store(local_stack.s3_endpoint)
    root = S3Url.parse(triton_stack.repository)
    store.ensure_bucket(root.bucket)
    return Repo(store, root, tmp_path)


@pytest.fixture
def triton(triton_stack: TritonStack) -> TritonServer:
    return connect(triton_stack.grpc_url)


def versions_of(server: TritonServer, model: str) -> dict[str, str]:
    return {e.version: e.state for e in server.repository_index() if e.name == model and e.version}


@pytest.fixture
def traffic(triton_stack: TritonStack) -> Iterator[Callable[[str], tuple[dict[str, int], list[str]]]]:
    """`start(model)` sends unversioned requests from two threads until the test ends; returns
    (answers per served version, failures) that fill in as it runs."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(model: str) -> tuple[dict[str, int], list[str]]:
        import tritonclient.grpc as grpcclient

        served: dict[str, int] = {}
        failures: list[str] = []

        def run() -> None:
            client = grpcclient.InferenceServerClient(triton_stack.grpc_url)
            while not stop.is_set():
                tensor = grpcclient.InferInput("input", list(X.shape), "FP32")
                tensor.set_data_from_numpy(X)
                try:
                    version = client.infer(model, [tensor]).get_response().model_version
                    served[version] = served.get(version, 0) + 1
                except Exception as exc:
                    failures.append(str(exc))

        threads.extend(threading.Thread(target=run, daemon=True) for _ in range(2))
        for thread in threads:
            thread.start()
        return served, failures

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def test_load_index_infer_config_metadata_and_metrics(
    repo: Repo, triton: TritonServer, triton_stack: TritonStack
) -> None:
    repo.config("version_policy: { latest: { num_versions: 1 } }")
    repo.publish(1, scale=1.0)
    assert IndexEntry(repo.model, "", "") in triton.repository_index()  # known, never loaded
    assert not triton.is_model_ready(repo.model)

    triton.load(repo.model)
    assert versions_of(triton, repo.model) == {"1": "READY"}
    assert triton.is_model_ready(repo.model, 1) and triton.is_model_ready(repo.model)
    outputs = triton.infer(repo.model, "1", {"input": X})
    np.testing.assert_allclose(outputs["logits"], expected(1.0), rtol=1e-6)

    config = triton.model_config(repo.model)
    assert config["name"] == repo.model and config["max_batch_size"] == 8
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [3]}]  # from the graph
    assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [2]}]

    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    metadata = grpcclient.InferenceServerClient(triton_stack.grpc_url).get_model_metadata(repo.model)
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("input", "FP32", [-1, 3])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("logits", "FP32", [-1, 2])]

    # HTTP with tritonclient's defaults (binary tensor extension both ways)
    http = httpclient.InferenceServerClient(triton_stack.http_url)
    tensor = httpclient.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    result = http.infer(repo.model, [tensor])
    np.testing.assert_allclose(result.as_numpy("logits"), expected(1.0), rtol=1e-6)
    assert http.get_model_config(repo.model)["input"][0]["dims"] == [3]
    assert {"name": repo.model, "version": "1", "state": "READY"} in (http.get_model_repository_index())
    # Triton fills in one CPU instance group, the pinned-memory defaults and the model file name
    config = http.get_model_config(repo.model)
    assert config["instance_group"] == [{"name": f"{repo.model}_0", "kind": "KIND_CPU", "count": 1}]
    assert config["optimization"]["input_pinned_memory"] == {"enable": True}
    assert config["default_model_filename"] == "model.onnx" and config["backend"] == "onnxruntime"
    grpc_config = grpcclient.InferenceServerClient(triton_stack.grpc_url).get_model_config(repo.model).config
    assert (
        grpc_config.instance_group[0].count == 1 and grpc_config.instance_group[0].name == f"{repo.model}_0"
    )

    page = httpx.get(triton_stack.metrics_url, timeout=5).text
    line = f'nv_inference_request_success{{model="{repo.model}",version="1"}} 2'
    assert line in page.splitlines()
    assert f'nv_inference_count{{model="{repo.model}",version="1"}} 4' in page  # batch of 2, twice


@pytest.mark.parametrize(
    ("first", "second", "served_after"),
    [
        ("version_policy: { latest: { num_versions: 1 } }", None, {"1": "UNAVAILABLE", "2": "READY"}),
        (
            "version_policy: { specific: { versions: [1] } }",
            "version_policy: { specific: { versions: [1, 2] } }",
            {"1": "READY", "2": "READY"},
        ),
    ],
    ids=["latest-1", "specific"],
)
def test_a_second_version_loads_while_the_first_keeps_serving(
    repo: Repo,
    triton: TritonServer,
    traffic: Callable[[str], tuple[dict[str, int], list[str]]],
    first: str,
    second: str | None,
    served_after: dict[str, str],
) -> None:
    repo.config(first)
    repo.publish(1, scale=1.0)
    triton.load(repo.model)
    served, failures = traffic(repo.model)
    time.sleep(0.3)

    repo.publish(2, scale=2.0)
    if second:
        repo.config(second)
    triton.load(repo.model)
    wait_ready(triton, repo.model, [2], timeout_s=10)
    time.sleep(0.3)

    assert failures == []
    assert served.get("1", 0) > 0 and served.get("2", 0) > 0, served  # the default route moved to v2
    assert versions_of(triton, repo.model) == served_after
    np.testing.assert_allclose(triton.infer(repo.model, "", {"input": X})["logits"], expected(2.0), rtol=1e-6)
    np.testing.assert_allclose(triton.infer(repo.model, 2, {"input": X})["logits"], expected(2.0), rtol=1e-6)
    if served_after["1"] == "READY":
        np.testing.assert_allclose(
            triton.infer(repo.model, 1, {"input": X})["logits"], expected(1.0), rtol=1e-6
        )
    else:
        with pytest.raises(BadInput, match="v1"):
            triton.infer(repo.model, 1, {"input": X})


def test_a_version_without_commit_marker_is_invisible(repo: Repo, triton: TritonServer) -> None:
    repo.config("version_policy: { all: { } }")
    repo.publish(1, scale=1.0)
    repo.upload_uncommitted(2, scale=2.0)
    triton.load(repo.model)
    assert versions_of(triton, repo.model) == {"1": "READY"}
    assert not triton.is_model_ready(repo.model, 2)
    np.testing.assert_allclose(triton.infer(repo.model, "", {"input": X})["logits"], expected(1.0), rtol=1e-6)

    repo.config("version_policy: { specific: { versions: [2] } }")
    with pytest.raises(BadInput, match="at least one version must be available"):
        triton.load(repo.model)
    assert versions_of(triton, repo.model) == {"1": "READY"}  # a refused load changes nothing


def test_a_failed_reload_leaves_the_serving_version_alone(repo: Repo, triton: TritonServer) -> None:
    repo.config("version_policy: { latest: { num_versions: 1 } }")
    repo.publish(1, scale=1.0)
    triton.load(repo.model)
    broken = repo.tmp / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    repo.store.publish_directory(broken, repo.root.join(repo.model, "2"))

    with pytest.raises(BadInput, match="version 2"):
        triton.load(repo.model)
    index = {e.version: e for e in triton.repository_index() if e.name == repo.model}
    assert index["1"].state == "READY"
    assert index["2"].state == "UNAVAILABLE" and "onnxruntime" in index["2"].reason
    np.testing.assert_allclose(triton.infer(repo.model, "", {"input": X})["logits"], expected(1.0), rtol=1e-6)


def test_unload_and_unknown_models(repo: Repo, triton: TritonServer) -> None:
    repo.config("version_policy: { latest: { num_versions: 1 } }")
    repo.publish(1, scale=1.0)
    triton.load(repo.model)
    triton.unload(repo.model)
    assert not triton.is_model_ready(repo.model)
    assert versions_of(triton, repo.model) == {"1": "UNAVAILABLE"}
    with pytest.raises(BadInput, match="no available versions"):
        triton.infer(repo.model, "", {"input": X})
    triton.unload(repo.model)  # not loaded: nothing to do, no error

    unknown = f"missing-{uuid.uuid4().hex[:6]}"
    assert not triton.is_model_ready(unknown)
    assert not triton.is_model_ready(unknown, 3)
    for call in (
        lambda: triton.load(unknown),
        lambda: triton.infer(unknown, "", {"input": X}),
        lambda: triton.model_config(unknown),
    ):
        with pytest.raises(BadInput, match=unknown):
            call()


def test_a_request_that_does_not_fit_the_model_is_bad_input(repo: Repo, triton: TritonServer) -> None:
    repo.config("version_policy: { latest: { num_versions: 1 } }", max_batch_size=1)
    repo.publish(1, scale=1.0)
    triton.load(repo.model)
    with pytest.raises(BadInput, match="data-type is 'FP64'"):
        triton.infer(repo.model, "", {"input": X.astype(np.float64)})
    with pytest.raises(BadInput, match="batch-size must be <= 1"):
        triton.infer(repo.model, "", {"input": X})
    with pytest.raises(BadInput, match="unexpected inference input"):
        triton.infer(repo.model, "", {"image": X[:1]})


def test_a_server_that_is_not_there_is_transient() -> None:
    down = connect(f"127.0.0.1:{free_port()}")
    for call in (
        down.repository_index,
        lambda: down.load("m"),
        lambda: down.is_model_ready("m"),
        lambda: down.infer("m", "", {"input": X}),
    ):
        with pytest.raises(Transient, match="unreachable"):
            call()


def test_the_stack_reports_the_stand_in_healthy(triton_stack: TritonStack) -> None:
    assert httpx.get(f"http://{triton_stack.http_url}/v2/health/ready", timeout=5).status_code == 200


def test_a_version_that_fails_to_serve_is_withdrawn_from_the_repository(
    repo: Repo, triton: TritonServer, triton_stack: TritonStack
) -> None:
    """serve: the replica refuses v2 (exit 2); v2 leaves the repository, _COMMITTED first, and the
    index no longer lists it; v1 (live) serves on; the number 2 is never handed out again."""
    from deployment.triton import serve
    from deployment.triton.repository import Repository
    from deployment.triton.set_aliases import TRITON_VERSION_TAG
    from mlops.registry import InMemoryBackend, Registry

    config = 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
    deployed = Repository(repo.store, repo.root, repo.model)
    good = linear_onnx(repo.tmp / "good" / "model.onnx", 1.0)
    deployed.publish(1, {"model.onnx": good}, {"config_pbtxt": config})
    bad = repo.tmp / "bad" / "model.onnx"
    bad.parent.mkdir()
    bad.write_bytes(b"not an onnx graph")  # what the publish step's check now refuses; put there by hand
    deployed.publish(2, {"model.onnx": bad}, {"config_pbtxt": config})
    registry = Registry(InMemoryBackend(), actor="test")
    registry.register("onnx-model", "s3://x", None, {TRITON_VERSION_TAG: "1"})
    registry.move_alias("onnx-model", "live", "1", expect_version=None, reason="test")
    cfg = serve.Config(
        model_name="onnx-model",
        model_repository=str(repo.root),
        triton_model_name=repo.model,
        endpoints=triton_stack.grpc_url,
        triton_version=2,
        ready_timeout_s=30,
    )
    with pytest.raises(BadInput, match="version 2") as failure:
        serve.run(cfg, registry)
    assert any("withdrawn" in note for note in failure.value.__notes__)
    assert deployed.committed_versions() == [1]
    assert not repo.store.list(deployed.version_url(2).join(""))
    assert deployed.next_version() == 3
    triton.load(repo.model)  # what the onExit handler does: serve `live` again
    assert "2" not in versions_of(triton, repo.model)
    assert versions_of(triton, repo.model)["1"] == "READY"


def test_http_answers_on_a_reused_connection_do_not_wait_for_delayed_acks(
    repo: Repo, triton: TritonServer, triton_stack: TritonStack
) -> None:
    """Headers and body in one write, TCP_NODELAY: no ~40 ms delayed-ACK stall per answer with a body."""
    import statistics

    import tritonclient.http as httpclient

    repo.config("version_policy: { latest: { num_versions: 1 } }")
    repo.publish(1, scale=1.0)
    triton.load(repo.model)
    client = httpclient.InferenceServerClient(triton_stack.http_url)  # one keep-alive connection
    tensor = httpclient.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    latencies = []
    for _ in range(60):
        started = time.perf_counter()
        answer = client.infer(repo.model, [tensor])
        latencies.append(time.perf_counter() - started)
        np.testing.assert_allclose(answer.as_numpy("logits"), expected(1.0), rtol=1e-6)
    median = statistics.median(latencies[10:])
    print(
        f"HTTP infer on a reused connection: median {median * 1000:.1f} ms over {len(latencies) - 10} requests"
    )
    assert median < 0.02


def test_trace_log_and_shared_memory_answer_as_triton_does(
    repo: Repo, triton: TritonServer, triton_stack: TritonStack, caplog: pytest.LogCaptureFixture
) -> None:
    """tritonclient's own calls over HTTP and gRPC: trace and log settings kept and returned, shared
    memory status empty, registering a region refused with Triton's UNIMPLEMENTED status."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    http = httpclient.InferenceServerClient(triton_stack.http_url)
    grpc_client = grpcclient.InferenceServerClient(triton_stack.grpc_url)

    assert http.get_trace_settings()["trace_level"] == ["OFF"]
    assert http.get_trace_settings()["trace_rate"] == "1000"
    assert http.update_trace_settings(model_name="m-trace", settings={"trace_level": ["TIMESTAMPS"]})[
        "trace_level"
    ] == ["TIMESTAMPS"]
    assert http.get_trace_settings()["trace_level"] == ["OFF"]  # a model's settings stay the model's
    answer = grpc_client.get_trace_settings(model_name="m-trace", as_json=True)
    assert answer["settings"]["trace_level"]["value"] == ["TIMESTAMPS"]
    with pytest.raises(InferenceServerException, match="trace_level must be among"):
        http.update_trace_settings(settings={"trace_level": ["LOUD"]})

    assert http.get_log_settings()["log_verbose_level"] == 0
    assert http.update_log_settings({"log_verbose_level": 1})["log_verbose_level"] == 1
    assert grpc_client.get_log_settings(as_json=True)["settings"]["log_verbose_level"] == {"uint32_param": 1}
    with pytest.raises(InferenceServerException, match="unknown log setting 'log_colour'"):
        http.update_log_settings({"log_colour": True})
    http.update_log_settings({"log_verbose_level": 0})

    assert http.get_system_shared_memory_status() == []
    assert http.get_cuda_shared_memory_status() == []
    assert list(grpc_client.get_system_shared_memory_status().regions) == []
    with pytest.raises(InferenceServerException, match="shared memory is not supported"):
        http.register_system_shared_memory("region", "/key", 64)
    with pytest.raises(InferenceServerException, match="shared memory is not supported") as refused:
        grpc_client.register_system_shared_memory("region", "/key", 64)
    assert refused.value.status() == "StatusCode.UNIMPLEMENTED"
    http.unregister_system_shared_memory()
    grpc_client.unregister_cuda_shared_memory()
    streamed: list[Any] = []
    grpc_client.start_stream(callback=lambda result, error: streamed.append(error))
    streamed_input = grpcclient.InferInput("input", [1, 3], "FP32")
    streamed_input.set_data_from_numpy(X[:1])
    try:
        grpc_client.async_stream_infer(repo.model, [streamed_input])
    except InferenceServerException as early:
        # the server may refuse the stream before the request is queued: the client then says the
        # stream is no longer valid and reports the server's status through the callback
        assert "no longer in valid state" in str(early), early
    grpc_client.stop_stream()
    assert streamed and "ModelStreamInfer (decoupled models) is not supported" in str(streamed[0])
    log = (triton_stack.state_dir / "triton" / "server.log").read_text()
    assert "Traceback" not in log  # answered, never raised inside the server
