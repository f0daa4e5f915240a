"""Step (gate 2): ONNX must compute what PyTorch computes; then register it and move `deploy`.

Downloads the export run's `onnx/` artifacts (sha256 checked against meta.json), loads the
graph (a corrupt file is bad input), loads the PyTorch checkpoint of the source version, runs
both on the same preprocessed validation images and applies `mlops.gates.equivalence_gate` to
the max absolute logit difference and the argmax mismatches. It also measures ONNX Runtime
and PyTorch latency on this CPU, and stores golden samples (inputs, expected labels and
probabilities) under the export run's `onnx/golden/` before anything is registered, so the
registered artifacts carry their own acceptance test; beside them the dataset's held-out probe
images, preprocessed (`probe_inputs.npy`, `probe.json`), for the production probe. On pass: a new version of the ONNX
model (source = the export run's `onnx/` folder) and a guarded move of `deploy`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlops import gates, step
from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.storage import sha256_file
from mlops.tracking import (
    artifact_uri,
    download_artifacts,
    get_run,
    log_json,
    mlflow_errors,
    tag_verdict,
    tracking_client,
)
from training.resnet import data, plots
from training.resnet.model import ModelMeta, load_checkpoint, load_images, read_meta
from training.resnet.onnx_export import INPUT_NAME, OUTPUT_NAME, load_onnx, ort_session
from training.resnet.triton_config import validate_config

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

GATE_TAG = "gate.equivalence"
LATENCY_BATCHES = (1, 32)
WARMUP_ITERATIONS = 3


class Config(StepConfig):
    run_id: str = Field(description="MLflow run id of the export run (the run-id output of export_onnx)")
    model_name: str = Field("resnet18-imagenette", description="registered PyTorch model the ONNX came from")
    source_version: str = Field(
        "", description="PyTorch version that was exported; '' = the export run's tag"
    )
    onnx_model_name: str = Field(
        "resnet18-imagenette-onnx", description="registered model for the ONNX versions"
    )
    dataset_uri: str = Field(
        "", description="dataset to draw validation images from; '' = the source version's tag"
    )
    samples: int = Field(
        100, ge=1, le=100_000, description="validation images compared between ONNX and PyTorch"
    )
    tolerance: float = Field(1e-5, ge=0.0, description="largest allowed absolute difference of any logit")
    latency_iterations: int = Field(20, ge=1, le=10_000, description="timed runs per latency figure")
    golden_samples: int = Field(
        16, ge=0, le=10_000, description="inputs saved with expected outputs for deploy checks"
    )
    alias: str = Field("deploy", description="alias of the ONNX model moved to the new version on pass")
    threads: int = Field(2, ge=1, le=256, description="CPU threads for both ONNX Runtime and PyTorch")
    ort_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all",
        description="ONNX Runtime graph optimisation level (disable|basic|extended|all); "
        "'all' is what Triton's onnxruntime backend uses by default",
    )


@dataclass(frozen=True)
class Comparison:
    """ONNX vs PyTorch on the same inputs.

    The reference is the PyTorch model evaluated in float64: it is the function the checkpoint
    defines, up to ~1e-12, so `max_abs_diff` measures the ONNX graph's own error. Comparing two
    float32 implementations instead would also count PyTorch's rounding (as large as the
    default 1e-5 tolerance on ResNet-18 logits); `torch_fp32_max_abs_diff` reports that for
    context.
    """

    onnx_logits: np.ndarray
    torch_logits: np.ndarray
    max_abs_diff: float
    argmax_mismatches: int
    torch_fp32_max_abs_diff: float


def compare(model: nn.Module, session: Any, inputs: np.ndarray, batch_size: int = 32) -> Comparison:
    """Run ONNX (float32) and the PyTorch reference (float64) on `inputs` in the same batches."""
    import copy

    import numpy as np
    import torch

    model.eval()
    reference = copy.deepcopy(model).double()
    onnx_parts, torch_parts, fp32_parts = [], [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start : start + batch_size]
            onnx_parts.append(session.run([OUTPUT_NAME], {INPUT_NAME: chunk})[0])
            torch_parts.append(reference(torch.from_numpy(chunk).double()).numpy())
            fp32_parts.append(model(torch.from_numpy(chunk)).numpy())
    onnx_logits, torch_logits = np.concatenate(onnx_parts), np.concatenate(torch_parts)
    if onnx_logits.shape != torch_logits.shape:
        raise BadInput(f"ONNX logits have shape {onnx_logits.shape}, PyTorch {torch_logits.shape}")
    diff = float(np.max(np.abs(onnx_logits.astype(np.float64) - torch_logits)))
    fp32_diff = float(np.max(np.abs(np.concatenate(fp32_parts).astype(np.float64) - torch_logits)))
    mismatches = int(np.sum(onnx_logits.argmax(axis=1) != torch_logits.argmax(axis=1)))
    return Comparison(onnx_logits, torch_logits, diff, mismatches, fp32_diff)


def percentile_ms(timings_s: list[float]) -> tuple[float, float]:
    """(median, p95) of timings in seconds, as milliseconds."""
    import numpy as np

    values = np.asarray(timings_s, dtype=np.float64) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def measure_latency(model: nn.Module, session: Any, inputs: np.ndarray, iterations: int) -> dict[str, float]:
    """ONNX Runtime and PyTorch latency per batch (p50, p95 in ms) at batch sizes 1 and 32."""
    import numpy as np
    import torch

    metrics: dict[str, float] = {}
    for batch in LATENCY_BATCHES:
        repeats = -(-batch // len(inputs))
        x = np.ascontiguousarray(np.concatenate([inputs] * repeats)[:batch])
        x_torch = torch.from_numpy(x)
        runners = {
            "onnx": lambda x=x: session.run([OUTPUT_NAME], {INPUT_NAME: x}),
            "torch": lambda x_torch=x_torch: model(x_torch),
        }
        with torch.no_grad():
            for name, runner in runners.items():
                for _ in range(WARMUP_ITERATIONS):
                    runner()
                timings = []
                for _ in range(iterations):
                    started = time.perf_counter()
                    runner()
                    timings.append(time.perf_counter() - started)
                p50, p95 = percentile_ms(timings)
                metrics[f"latency_ms_{name}_b{batch}_p50"] = p50
                metrics[f"latency_ms_{name}_b{batch}_p95"] = p95
    return metrics


def softmax(logits: np.ndarray) -> np.ndarray:
    import numpy as np

    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def write_golden(
    directory: Path,
    inputs: np.ndarray,
    onnx_logits: np.ndarray,
    targets: list[int],
    files: list[str],
    classes: list[str],
) -> Path:
    """Golden samples for deployment checks: inputs, expected labels and ONNX probabilities."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
    probabilities = softmax(onnx_logits)
    np.save(directory / "probabilities.npy", probabilities)
    predicted = [int(i) for i in probabilities.argmax(axis=1)]
    labels = {
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "classes": classes,
        "expected_index": predicted,
        "expected_label": [classes[i] for i in predicted],
        "true_index": targets,
        "true_label": [classes[i] for i in targets],
        "files": files,
        "probabilities": "softmax of the ONNX logits, float32, same row order as inputs.npy",
    }
    (directory / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    return directory


def write_probe(directory: Path, inputs: np.ndarray, probe: list[data.Sample]) -> None:
    """The probe images (held out at data preparation) as `probe_inputs.npy` + `probe.json` beside the
    golden samples: what `deployment.triton.probe` sends to the served model."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "probe_inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
    described = {"files": [s.arcname for s in probe], "true_label": [s.label for s in probe]}
    (directory / "probe.json").write_text(json.dumps(described, indent=2) + "\n")


def pick_evenly(items: list[Any], count: int) -> list[Any]:
    """`count` items spread evenly over `items` (all of them if there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


def _load_export(client: Any, export_run: Any, workdir: Path) -> tuple[Path, dict[str, Any], ModelMeta]:
    """Download `onnx/`, check the model's sha256 against meta.json, return (model path, meta dict, meta)."""
    folder = download_artifacts(artifact_uri(export_run, "onnx"), workdir / "export")
    meta_path = folder / "meta.json"
    meta = read_meta(meta_path)
    raw = json.loads(meta_path.read_text())
    model_path = folder / str(raw.get("onnx_file", "model.onnx"))
    if not model_path.is_file():
        raise BadInput(f"export run {export_run.info.run_id} has no onnx/{model_path.name}")
    expected, actual = str(raw.get("onnx_sha256", "")), sha256_file(model_path)
    if expected != actual:
        raise BadInput(
            f"onnx/{model_path.name} of run {export_run.info.run_id} has sha256 {actual}, "
            f"but meta.json records {expected or 'none'}: the artifact changed after export"
        )
    return model_path, raw, meta


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    import numpy as np
    import torch

    torch.set_num_threads(cfg.threads)
    client = tracking_client()
    export_run = get_run(client, cfg.run_id)
    run_tags = export_run.data.tags
    if run_tags.get("source_model", cfg.model_name) != cfg.model_name:
        raise BadInput(
            f"run {cfg.run_id} exported {run_tags['source_model']!r}, not --model-name {cfg.model_name!r}"
        )
    tagged_version = run_tags.get("source_version", "")
    source_version = cfg.source_version or tagged_version
    if not source_version:
        raise BadInput(f"--source-version is empty and run {cfg.run_id} has no source_version tag")
    if tagged_version and tagged_version != source_version:
        raise BadInput(f"run {cfg.run_id} exported v{tagged_version}, not --source-version {source_version}")
    registry = registry or mlflow_registry()
    deploy_before = registry.alias(cfg.onnx_model_name, cfg.alias)

    with tempfile.TemporaryDirectory(prefix="validate-onnx-") as tmp:
        workdir = Path(tmp)
        onnx_path, onnx_meta, meta = _load_export(client, export_run, workdir)
        graph = load_onnx(onnx_path)
        config_path = onnx_path.parent / "config.pbtxt"
        if not config_path.is_file():
            raise BadInput(f"export run {cfg.run_id} has no onnx/config.pbtxt")
        validate_config(
            config_path.read_text(),
            graph,
            str(onnx_meta.get("triton_model_name", "")),
            int(onnx_meta.get("max_batch_size", 0)),
            bool(onnx_meta.get("dynamic_batching", False)),
        )
        session = ort_session(onnx_path, cfg.threads, cfg.ort_optimization)

        checkpoint = download_artifacts(
            registry.source(cfg.model_name, source_version), workdir / "checkpoint"
        )
        model, torch_meta = load_checkpoint(checkpoint)
        if (torch_meta.classes, torch_meta.image_size) != (meta.classes, meta.image_size):
            raise BadInput(
                f"ONNX meta.json and {cfg.model_name} v{source_version} disagree on classes or image size"
            )

        dataset_uri = cfg.dataset_uri or registry.tags(cfg.model_name, source_version).get("dataset_uri", "")
        if not dataset_uri:
            raise BadInput(
                f"--dataset-uri is empty and {cfg.model_name} v{source_version} has no dataset_uri tag"
            )
        layout = data.load_layout(data.fetch_dataset(dataset_uri, workdir / "data").root, require_split=True)
        if layout.classes != meta.classes:
            raise BadInput(f"dataset classes {layout.classes} differ from the model's {meta.classes}")
        chosen = pick_evenly(layout.split("val"), cfg.samples)
        inputs = load_images([s.path for s in chosen], meta).numpy().astype(np.float32)
        targets = [meta.classes.index(s.label) for s in chosen]

        result = compare(model, session, inputs)
        verdict = gates.equivalence_gate(result.max_abs_diff, cfg.tolerance, result.argmax_mismatches)
        latency = measure_latency(model, session, inputs, cfg.latency_iterations)
        target_array = np.asarray(targets)
        metrics = {
            "max_abs_diff": result.max_abs_diff,
            "torch_fp32_max_abs_diff": result.torch_fp32_max_abs_diff,
            "argmax_mismatches": float(result.argmax_mismatches),
            "equivalence_samples": float(len(inputs)),
            "onnx_sample_accuracy": float(np.mean(result.onnx_logits.argmax(axis=1) == target_array)),
            "torch_sample_accuracy": float(np.mean(result.torch_logits.argmax(axis=1) == target_array)),
            **latency,
        }
        print(json.dumps({k: round(v, 9) for k, v in metrics.items()}), flush=True)

        # Golden samples and the evidence land on the export run before anything is registered.
        k = min(cfg.golden_samples, len(inputs))
        golden = write_golden(
            workdir / "golden",
            inputs[:k],
            result.onnx_logits[:k],
            targets[:k],
            [s.arcname for s in chosen[:k]],
            meta.classes,
        )
        # the held-out probe images, preprocessed as served: the production probe's inputs
        probe = data.fetch_probe(dataset_uri, workdir / "probe")
        if probe:
            write_probe(golden, load_images([s.path for s in probe], meta).numpy(), probe)
        figure = plots.latency_png(
            {name.removeprefix("latency_ms_").replace("_", " "): value for name, value in latency.items()},
            workdir / "latency.png",
            title=f"latency on this CPU ({cfg.threads} threads, {cfg.latency_iterations} runs)",
        )
        with mlflow_errors(f"logging validation results to run {cfg.run_id}"):
            if k or probe:
                client.log_artifacts(cfg.run_id, str(golden), "onnx/golden")
            client.log_artifact(cfg.run_id, str(figure), "validation")
            for name, value in metrics.items():
                client.log_metric(cfg.run_id, name, value)
    record = {
        **verdict.as_dict(),
        "tolerance": cfg.tolerance,
        "samples": len(inputs),
        "ort_optimization": cfg.ort_optimization,
        "metrics": metrics,
    }
    log_json(client, cfg.run_id, record, "gates", "equivalence.json")
    tag_verdict(client, cfg.run_id, GATE_TAG, verdict.label, verdict.reason)

    version = registry.register_if_passed(
        verdict,
        gate_tag=GATE_TAG,
        model=cfg.onnx_model_name,
        alias=cfg.alias,
        expect_version=deploy_before,
        source=artifact_uri(export_run, "onnx"),
        run_id=cfg.run_id,
        tags={
            "source_model": cfg.model_name,
            "source_version": source_version,
            "onnx_sha256": str(onnx_meta["onnx_sha256"]),
            "max_abs_diff": repr(result.max_abs_diff),
            "argmax_mismatches": str(result.argmax_mismatches),
            "tolerance": repr(cfg.tolerance),
            "dataset_uri": dataset_uri,
            "triton_model_name": str(onnx_meta.get("triton_model_name", "")),
        },
    )
    if version:
        with mlflow_errors(f"tagging run {cfg.run_id}"):
            client.set_tag(cfg.run_id, "registered_version", f"{cfg.onnx_model_name}/{version}")
        summary = (
            f"pass: {cfg.onnx_model_name} v{version} is {cfg.alias} (max_abs_diff {result.max_abs_diff:.3g})"
        )
    else:
        summary = f"fail: {verdict.reason}; {cfg.alias} stays at {deploy_before or 'unset'}"
    return StepResult(
        outputs={
            "verdict": verdict.label,
            "reason": verdict.reason,
            "version": version,
            "max-abs-diff": repr(result.max_abs_diff),
        },
        summary=summary,
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
