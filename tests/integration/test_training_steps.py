"""The ResNet step modules, run as `python -m training.resnet.<step>` against the local stack,
given one bad input each: every one exits 2 (bad input, never retried) or 3 (transient, retried),
says what is wrong, and changes nothing: no alias moves, no version is registered, no outputs.

One module fixture runs the good path once, cheaply (digits at 16x16, one epoch, gates set low),
so `champion` and `deploy` exist and "unchanged" means something.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from mlops.registry import mlflow_registry
from mlops.storage import S3Store, S3Url
from tests.conftest import LocalStack
from tests.integration.steps import StepRun, assert_bad_input, assert_transient, run_module

pytestmark = pytest.mark.integration

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once


def run_step(
    stack: LocalStack, step: str, *args: str, workdir: Path, env: dict[str, str] | None = None
) -> StepRun:
    """`python -m training.resnet.<step> ARGS` with the stack's env and a fresh outputs folder."""
    return run_module(stack, f"training.resnet.{step}", *args, workdir=workdir, env=env)


def versions(client: MlflowClient, model: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{model}'"))


def s3_keys(stack: LocalStack, prefix: str) -> list[str]:
    return S3Store(stack.s3_endpoint).list(S3Url.parse(prefix))


# --- the good path, once ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """What the good path left behind: a champion, a validated ONNX export and `deploy` on it."""

    model: str
    onnx_model: str
    experiment: str
    bucket: str
    dataset_uri: str
    train_run_id: str
    export_run_id: str
    champion: str
    deploy: str


@pytest.fixture(scope="module")
def bucket(local_stack: LocalStack) -> str:
    name = f"it-steps-{uuid.uuid4().hex[:8]}"
    S3Store(local_stack.s3_endpoint).ensure_bucket(name)
    return name


@pytest.fixture(scope="module")
def trained(local_stack: LocalStack, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """prepare_data -> train (1 epoch) -> quality_gate -> export_onnx -> validate_onnx, as the workflow chains them."""
    workdir = tmp_path_factory.mktemp("good-path")
    suffix = uuid.uuid4().hex[:8]
    model, onnx_model = f"it-steps-{suffix}", f"it-steps-{suffix}-onnx"

    def step(name: str, *args: str) -> dict[str, str]:
        run = run_step(local_stack, name, *args, workdir=workdir)
        assert run.returncode == 0, run.explain()
        return run.outputs

    prepared = step(
        "prepare_data", "--source=digits", "--image-size=16", f"--dataset-prefix=s3://{bucket}/datasets"
    )
    trained = step(
        "train",
        f"--dataset-uri={prepared['dataset-uri']}",
        "--epochs=1",
        "--batch-size=256",
        "--image-size=16",
        f"--experiment={model}",
    )
    # One epoch is far from 0.9 accuracy; the gate is not under test here, so any accuracy passes.
    gate = step("quality_gate", f"--run-id={trained['run-id']}", f"--model-name={model}", "--threshold=0.0")
    assert gate["verdict"] == "pass", gate
    exported = step(
        "export_onnx",
        f"--model-name={model}",
        f"--version={gate['version']}",
        f"--experiment={model}",
        f"--triton-model-name={onnx_model}",
    )
    validated = step(
        "validate_onnx",
        f"--run-id={exported['run-id']}",
        f"--model-name={model}",
        f"--source-version={exported['source-version']}",
        f"--onnx-model-name={onnx_model}",
        f"--dataset-uri={prepared['dataset-uri']}",
        "--samples=16",
        "--latency-iterations=1",
        "--golden-samples=0",
        "--tolerance=1e-3",
    )
    assert validated["verdict"] == "pass", validated
    registry = mlflow_registry(local_stack.mlflow_uri)
    champion, deploy = registry.alias(model, "champion"), registry.alias(onnx_model, "deploy")
    assert champion == gate["version"] and deploy == validated["version"]
    return Trained(
        model=model,
        onnx_model=onnx_model,
        experiment=model,
        bucket=bucket,
        dataset_uri=prepared["dataset-uri"],
        train_run_id=trained["run-id"],
        export_run_id=exported["run-id"],
        champion=champion,
        deploy=deploy,
    )


# --- prepare_data: bad datasets ------------------------------------------------------------------


def write_image_folder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "owl"), per_class: int = 2
) -> Path:
    """A tiny valid split ImageFolder: train/<class>/*.png and val/<class>/*.png."""
    from PIL import Image

    for split in ("train", "val"):
        for c, label in enumerate(classes):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (12, 12), (40 * c, 20 * i, 90)).save(folder / f"{label}-{i}.png")
    return root


def prepare(local_stack: LocalStack, source: Path, prefix: str, workdir: Path) -> StepRun:
    return run_step(
        local_stack, "prepare_data", f"--source={source}", f"--dataset-prefix={prefix}", workdir=workdir
    )


def test_prepare_data_accepts_the_tiny_dataset_the_faults_are_made_from(
    local_stack: LocalStack, bucket: str, tmp_path: Path
) -> None:
    """Control: the untouched dataset passes, so each failure below is its one fault."""
    prefix = f"s3://{bucket}/control-{uuid.uuid4().hex[:6]}"
    run = prepare(local_stack, write_image_folder(tmp_path / "data"), prefix, tmp_path)
    assert run.returncode == 0, run.explain()
    assert run.outputs["num-classes"] == "3"
    assert run.outputs["dataset-uri"].startswith(prefix)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(
            "val-missing-class",
            ["class folders differ between train/ and val/", "missing in val/: ['dog']"],
            id="val-missing-class",
        ),
        pytest.param("empty-class", ["empty class folder", "train/dog/ hold no images"], id="empty-class"),
        pytest.param("corrupt-image", ["corrupt image", "dog-broken.png"], id="corrupt-image"),
        pytest.param(
            "single-class", ["only one class ('cat')", "at least two class folders"], id="single-class"
        ),
    ],
)
def test_prepare_data_refuses_a_bad_dataset(
    local_stack: LocalStack, bucket: str, tmp_path: Path, fault: str, expected: list[str]
) -> None:
    root = tmp_path / "data"
    if fault == "single-class":
        write_image_folder(root, classes=("cat",))
    else:
        write_image_folder(root)
    if fault == "val-missing-class":
        for image in (root / "val" / "dog").iterdir():
            image.unlink()
        (root / "val" / "dog").rmdir()
    elif fault == "empty-class":
        for image in (root / "train" / "dog").iterdir():
            image.unlink()
    elif fault == "corrupt-image":
        good = (root / "train" / "dog" / "dog-0.png").read_bytes()
        (root / "train" / "dog" / "dog-broken.png").write_bytes(good[: len(good) // 2])
    prefix = f"s3://{bucket}/bad-{fault}-{uuid.uuid4().hex[:6]}"

    run = prepare(local_stack, root, prefix, tmp_path)

    assert_bad_input(run, *expected)
    assert s3_keys(local_stack, prefix) == [], "nothing may be uploaded for a refused dataset"


# --- quality_gate: a percent where a fraction belongs ------------------------------------------


def test_quality_gate_refuses_a_percent_threshold(
    local_stack: LocalStack, trained: Trained, tmp_path: Path
) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    client = MlflowClient(local_stack.mlflow_uri)
    versions_before = versions(client, trained.model)

    run = run_step(
        local_stack,
        "quality_gate",
        f"--run-id={trained.train_run_id}",
        f"--model-name={trained.model}",
        "--threshold=90",
        workdir=tmp_path,
    )

    assert_bad_input(run, "threshold=90.0 is outside 0..1", "looks like a percent")
    assert registry.alias(trained.model, "champion") == trained.champion
    assert versions(client, trained.model) == versions_before


# --- train: divergence ---------------------------------------------------------------------------


def test_train_nan_loss_fails_the_run_and_registers_nothing(
    local_stack: LocalStack, trained: Trained, tmp_path: Path
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    experiment = f"{trained.experiment}-nan"

    # An absurd learning rate: the first update blows the weights up, the second loss is NaN.
    run = run_step(
        local_stack,
        "train",
        f"--dataset-uri={trained.dataset_uri}",
        "--epochs=1",
        "--batch-size=256",
        "--image-size=16",
        "--learning-rate=1e30",
        f"--experiment={experiment}",
        workdir=tmp_path,
    )

    assert_bad_input(run, "training diverged: loss is nan", "lower --learning-rate")
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    failed = runs[0]
    assert failed.info.status == "FAILED"
    assert "training diverged" in failed.data.tags.get("failure_reason", "")
    assert "best_val_accuracy" not in failed.data.metrics
    assert [a.path for a in client.list_artifacts(failed.info.run_id)] == []  # no checkpoint/
    assert client.search_model_versions(f"run_id='{failed.info.run_id}'") == []
    assert mlflow_registry(local_stack.mlflow_uri).alias(trained.model, "champion") == trained.champion


# --- validate_onnx: a truncated model ------------------------------------------------------------


EXPORT_TAGS = (
    "mlops.step",
    "source_model",
    "source_version",
    "source_run_id",
    "onnx_sha256",
    "triton_model_name",
)


def log_tampered_export(client: MlflowClient, trained: Trained, workdir: Path, *, fix_checksum: bool) -> str:
    """A copy of the good export run whose onnx/model.onnx is cut in half; meta.json's sha256 kept or fixed."""
    export_run = client.get_run(trained.export_run_id)
    downloaded = Path(client.download_artifacts(trained.export_run_id, "onnx", str(workdir / "download")))
    folder = workdir / "onnx"
    folder.mkdir()
    for name in ("model.onnx", "config.pbtxt", "meta.json"):
        (folder / name).write_bytes((downloaded / name).read_bytes())
    model_bytes = (folder / "model.onnx").read_bytes()
    truncated = model_bytes[: len(model_bytes) // 2]
    (folder / "model.onnx").write_bytes(truncated)
    if fix_checksum:
        meta = json.loads((folder / "meta.json").read_text())
        meta["onnx_sha256"] = hashlib.sha256(truncated).hexdigest()
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    # The tags export_onnx sets; not the gate tags validate_onnx added to the good run since.
    tags = {key: export_run.data.tags[key] for key in EXPORT_TAGS}
    tags["onnx_sha256"] = json.loads((folder / "meta.json").read_text())["onnx_sha256"]
    run_id = str(client.create_run(export_run.info.experiment_id, tags=tags).info.run_id)
    client.log_artifacts(run_id, str(folder), "onnx")
    client.set_terminated(run_id, "FINISHED")
    return run_id


@pytest.mark.parametrize(
    ("fix_checksum", "expected"),
    [
        pytest.param(
            False,
            ["onnx/model.onnx of run {run_id} has sha256", "but meta.json records", "changed after export"],
            id="checksum-mismatch",
        ),
        pytest.param(True, ["model.onnx", "is corrupt or truncated"], id="checksum-matches"),
    ],
)
def test_validate_onnx_refuses_a_truncated_model(
    local_stack: LocalStack, trained: Trained, tmp_path: Path, fix_checksum: bool, expected: list[str]
) -> None:
    registry = mlflow_registry(local_stack.mlflow_uri)
    client = MlflowClient(local_stack.mlflow_uri)
    run_id = log_tampered_export(client, trained, tmp_path, fix_checksum=fix_checksum)
    versions_before = versions(client, trained.onnx_model)

    run = run_step(
        local_stack,
        "validate_onnx",
        f"--run-id={run_id}",
        f"--model-name={trained.model}",
        f"--source-version={trained.champion}",
        f"--onnx-model-name={trained.onnx_model}",
        f"--dataset-uri={trained.dataset_uri}",
        "--samples=16",
        workdir=tmp_path,
    )

    assert_bad_input(run, *(fragment.format(run_id=run_id) for fragment in expected))
    assert registry.alias(trained.onnx_model, "deploy") == trained.deploy
    assert versions(client, trained.onnx_model) == versions_before
    assert client.search_model_versions(f"run_id='{run_id}'") == []
    assert "gate.equivalence" not in client.get_run(run_id).data.tags


# --- config: unknown keys ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["flag", "yaml"])
def test_unknown_config_key_is_refused_before_any_work(
    local_stack: LocalStack, tmp_path: Path, where: str
) -> None:
    client = MlflowClient(local_stack.mlflow_uri)
    experiment = f"it-steps-unknown-key-{uuid.uuid4().hex[:8]}"
    dataset = write_image_folder(tmp_path / "data")
    known = [f"--dataset-uri={dataset}", "--epochs=1", f"--experiment={experiment}"]
    if where == "flag":
        args = [*known, "--learning-rat=0.01"]
        expected = ["unknown option(s) --learning-rat=0.01", "--learning-rate"]
    else:
        config = tmp_path / "train.yaml"
        config.write_text(yaml.safe_dump({"epochs": 1, "learning_rat": 0.01, "experiment": experiment}))
        args = [f"--dataset-uri={dataset}", f"--config={config}"]
        expected = ["unknown key(s) ['learning_rat']", str(config)]

    run = run_step(local_stack, "train", *args, workdir=tmp_path)

    assert_bad_input(run, *expected)
    assert "config:" not in run.stdout, "the config was accepted and printed: work had started"
    assert client.get_experiment_by_name(experiment) is None


# --- unreachable services --------------------------------------------------------------------------


def test_quality_gate_with_mlflow_unreachable_is_transient(
    local_stack: LocalStack, trained: Trained, tmp_path: Path
) -> None:
    run = run_step(
        local_stack,
        "quality_gate",
        f"--run-id={trained.train_run_id}",
        f"--model-name={trained.model}",
        "--threshold=0.0",
        workdir=tmp_path,
        env={"MLFLOW_TRACKING_URI": UNREACHABLE},
    )

    assert_transient(run, "MLflow unreachable", UNREACHABLE)
    client = MlflowClient(local_stack.mlflow_uri)
    assert mlflow_registry(local_stack.mlflow_uri).alias(trained.model, "champion") == trained.champion
    assert versions(client, trained.model) == [trained.champion]


def test_prepare_data_with_s3_unreachable_is_transient(
    local_stack: LocalStack, bucket: str, tmp_path: Path
) -> None:
    prefix = f"s3://{bucket}/unreachable-{uuid.uuid4().hex[:6]}"
    run = run_step(
        local_stack,
        "prepare_data",
        f"--source={write_image_folder(tmp_path / 'data')}",
        f"--dataset-prefix={prefix}",
        workdir=tmp_path,
        env={"AWS_ENDPOINT_URL": UNREACHABLE},
    )

    assert_transient(run, "Could not connect to the endpoint URL", UNREACHABLE)
    assert s3_keys(local_stack, prefix) == []
