"""Step: export a registered PyTorch version to ONNX with a Triton config generated from the graph.

Takes `--version`, or the version behind `--alias` (default `champion`), exports it with a dynamic
batch axis (`input` -> `logits`), checks the graph, writes `config.pbtxt` from the graph and
validates it against Triton's ModelConfig protobuf. Everything goes to a new MLflow run as
`onnx/model.onnx`, `onnx/config.pbtxt` and `onnx/meta.json` (with the model's sha256).
Nothing is registered here: `validate_onnx` registers after the equivalence gate.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from mlops import step
from mlops.config import StepConfig
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult
from mlops.storage import sha256_file
from mlops.tracking import download_artifacts, mlflow_errors, tracking_client
from training.resnet.model import load_checkpoint
from training.resnet.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, load_onnx, ort_session
from training.resnet.triton_config import render_config

ONNX_DIR = "onnx"


class Config(StepConfig):
    model_name: str = Field("resnet18-imagenette", description="registered PyTorch model to export")
    alias: str = Field("champion", description="alias naming the version to export (when --version is empty)")
    version: str = Field("", description="version to export; '' = the version behind --alias")
    opset: int = Field(17, ge=13, le=25, description="ONNX opset of the exported graph")
    max_batch_size: int = Field(32, ge=0, le=4096, description="Triton max_batch_size (0 = no batching)")
    dynamic_batching: bool = Field(True, description="add `dynamic_batching { }` to config.pbtxt")
    experiment: str = Field("resnet18-imagenette", description="MLflow experiment of the export run")
    triton_model_name: str = Field(
        "resnet18-imagenette-onnx", description="model name written into config.pbtxt"
    )


def smoke_test(path: Path, image_size: int, num_classes: int) -> None:
    """Run the exported graph at two batch sizes: the batch axis must really be dynamic."""
    import numpy as np

    session = ort_session(path)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, image_size, image_size), dtype=np.float32)
        (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        if logits.shape != (batch, num_classes) or not np.isfinite(logits).all():
            raise BadInput(
                f"exported model gives shape {logits.shape} (finite: {np.isfinite(logits).all()}) "
                f"for a batch of {batch}; expected ({batch}, {num_classes})"
            )


def log_export_run(
    client: Any,
    cfg: Config,
    version: str,
    source_run_id: str,
    digest: str,
    exporter: str,
    graph: Any,
    out: Path,
) -> str:
    """Create the export run with its tags, params and `onnx/` artifacts; a failure marks it FAILED."""
    import onnx
    import torch

    experiment = client.get_experiment_by_name(cfg.experiment)
    experiment_id = (
        experiment.experiment_id if experiment is not None else client.create_experiment(cfg.experiment)
    )
    run_id = str(
        client.create_run(
            experiment_id,
            tags={
                "mlops.step": "export_onnx",
                "source_model": cfg.model_name,
                "source_version": version,
                "source_run_id": source_run_id,
                "onnx_sha256": digest,
                "triton_model_name": cfg.triton_model_name,
            },
            run_name=f"export-{cfg.model_name}-v{version}",
        ).info.run_id
    )
    try:
        params = {
            "opset": cfg.opset,
            "exporter": exporter,
            "max_batch_size": cfg.max_batch_size,
            "dynamic_batching": cfg.dynamic_batching,
            "triton_model_name": cfg.triton_model_name,
            "onnx_ir_version": graph.ir_version,
            "onnx_version": onnx.__version__,
            "torch_version": torch.__version__,
        }
        for key, value in params.items():
            client.log_param(run_id, key, value)
        client.log_metric(run_id, "onnx_size_bytes", (out / "model.onnx").stat().st_size)
        client.log_artifacts(run_id, str(out), ONNX_DIR)
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    version = cfg.version or registry.require_alias(cfg.model_name, cfg.alias)
    source = registry.source(cfg.model_name, version)
    source_run_id = registry.run_id(cfg.model_name, version) or ""
    client = tracking_client()
    with tempfile.TemporaryDirectory(prefix="export-onnx-") as tmp:
        workdir = Path(tmp)
        checkpoint = download_artifacts(source, workdir / "download")
        model, meta = load_checkpoint(checkpoint)
        out = workdir / ONNX_DIR
        out.mkdir()
        model_path = out / "model.onnx"
        started = time.monotonic()
        exporter = export_onnx(model, meta.image_size, model_path, cfg.opset)
        export_seconds = time.monotonic() - started
        graph = load_onnx(model_path)
        smoke_test(model_path, meta.image_size, meta.num_classes)
        config_text = render_config(graph, cfg.triton_model_name, cfg.max_batch_size, cfg.dynamic_batching)
        (out / "config.pbtxt").write_text(config_text)
        digest = sha256_file(model_path)
        onnx_meta = {
            **meta.to_dict(),
            "onnx_sha256": digest,
            "onnx_file": "model.onnx",
            "input_name": INPUT_NAME,
            "output_name": OUTPUT_NAME,
            "opset": cfg.opset,
            "exporter": exporter,
            "max_batch_size": cfg.max_batch_size,
            "dynamic_batching": cfg.dynamic_batching,
            "triton_model_name": cfg.triton_model_name,
            "source_model": cfg.model_name,
            "source_version": version,
            "source_run_id": source_run_id,
        }
        (out / "meta.json").write_text(json.dumps(onnx_meta, indent=2, sort_keys=True) + "\n")
        with mlflow_errors(f"logging the export run in experiment {cfg.experiment}"):
            run_id = log_export_run(client, cfg, version, source_run_id, digest, exporter, graph, out)
            client.log_metric(run_id, "export_seconds", export_seconds)
            client.set_terminated(run_id, "FINISHED")
    return StepResult(
        outputs={"run-id": run_id, "source-version": version, "onnx-sha256": digest},
        summary=f"{cfg.model_name} v{version} -> ONNX opset {cfg.opset} ({exporter}), sha256 {digest[:12]}, run {run_id}",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
