"""Step (vision production probe): what the served model predicts on the held-out probe images.

The probe images were held out at data preparation (`training.resnet.prepare_data`, never trained,
stopped early or gated on) and stored preprocessed in the version's package by the equivalence
gate (`golden/probe_inputs.npy`). The step sends them to Triton and measures the share of each
predicted class and the mean top-class probability.

`--mode=release` (triton-deployment, after verify and right before the aliases move): the figures
of the version going live, stored on it as tags (`probe.release.*`) and on the model (with
`probe.release.version`). `--mode=probe` (vision-probe, daily on a cluster): the figures of `live`
against its release values, pushed to the Pushgateway as `mlops_vision_psi{model,version}`
(population stability index of the class mix), `mlops_vision_mean_confidence` and
`mlops_vision_mean_confidence_release`; the VisionPredictionDrift / VisionConfidenceDrop alerts
watch them. A version without release values of its own (moved live by hand) is compared with the
model's last recorded ones. A package without probe inputs (a dataset prepared without a probe
split) records nothing in release mode and is bad input (exit 2) to the probe; Triton or the
Pushgateway down is transient (exit 3). Drift still exits 0 (`drift=true`): the alerts page.
Outputs: `version`, `psi`, `mean-confidence`, `drift` (`true` / `false` / `unknown`), `reason`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from deployment.triton import drift
from deployment.triton.package import fetch_package
from deployment.triton.serving import softmax
from deployment.triton.settings import ServerSettings
from mlops import step
from mlops.errors import BadInput
from mlops.pushgateway import MetricsSink, publish
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.serving.triton import TritonServer, connect
from mlops.step import StepResult

PROBE_INPUTS = "probe_inputs.npy"


class Config(ServerSettings):
    mode: Literal["probe", "release"] = Field(
        "probe", description="probe: live, push figures; release: the version going live, tag it"
    )
    version: str = Field("", description="release: the registered version going live; probe: ignored (live)")
    triton_version: int = Field(
        0, ge=0, description="the Triton version to ask (0: the model's default route, what clients get)"
    )
    batch_size: int = Field(16, ge=1, le=1024, description="images per inference request")
    max_psi: float = Field(0.2, gt=0.0, description="PSI the drift verdict tolerates (the alert's threshold)")
    max_confidence_drop: float = Field(
        0.1, ge=0.0, le=1.0, description="mean-confidence drop the drift verdict tolerates (the alert's)"
    )
    pushgateway_url: str = Field(
        "", description="probe: Pushgateway base URL (env MLOPS_PUSHGATEWAY_URL); '' = push nothing"
    )


def predict(
    server: TritonServer, model: str, version: str, inputs: Any, labels: dict[str, Any], batch: int
) -> Any:
    """Softmax probabilities of every probe input, `batch` images per request."""
    import numpy as np

    rows = []
    for start in range(0, len(inputs), batch):
        outputs = server.infer(model, version, {labels["input_name"]: inputs[start : start + batch]})
        if labels["output_name"] not in outputs:
            raise BadInput(f"{model} has no output {labels['output_name']!r} (got {sorted(outputs)})")
        rows.append(softmax(np.asarray(outputs[labels["output_name"]])))
    return np.concatenate(rows)


def measure(
    cfg: Config, registry: Registry, version: str, servers: list[TritonServer]
) -> drift.VisionFigures | None:
    """The figures of the served model on the version's probe inputs (None: the package has none,
    in release mode; the probe itself refuses that as bad input)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="triton-probe-") as tmp:
        package = fetch_package(registry, cfg.model_name, version, Path(tmp))
        path = package.golden / PROBE_INPUTS
        if not path.is_file() and cfg.mode == "release":
            return None
        if not path.is_file():
            raise BadInput(
                f"{cfg.model_name} v{version} carries no probe images ({path.name}): its dataset was "
                "prepared without a probe split; retrain it to probe it"
            )
        inputs = np.load(path)
        labels = json.loads((package.golden / "labels.json").read_text())
        model = cfg.triton_model_name or package.triton_model_name
    route = str(cfg.triton_version) if cfg.triton_version else ""
    measured = [
        drift.figures(predict(s, model, route, inputs, labels, cfg.batch_size).tolist()) for s in servers
    ]
    # every replica must answer alike; the first one's figures are the model's
    for index, other in enumerate(measured[1:], start=2):
        if other.class_shares != measured[0].class_shares:
            raise BadInput(f"replica {index} of {len(servers)} predicts another class mix than replica 1")
    return measured[0]


def run(
    cfg: Config,
    registry: Registry | None = None,
    servers: list[TritonServer] | None = None,
    sink: MetricsSink | None = None,
) -> StepResult:
    registry = registry or mlflow_registry()
    if cfg.mode == "release":
        if not cfg.version:
            raise BadInput("--mode=release needs --version (the version going live)")
        version = cfg.version
    else:
        version = registry.require_alias(cfg.model_name, "live")
    servers = servers or [connect(endpoint) for endpoint in resolve(cfg.endpoints)]
    current = measure(cfg, registry, version, servers)
    if current is None:  # release mode only: nothing to record, the deployment goes on
        return StepResult(
            outputs={
                "version": version,
                "mean-confidence": "",
                "psi": "",
                "drift": "unknown",
                "reason": "no probe images",
            },
            summary=(
                f"{cfg.model_name} v{version} carries no probe images (its dataset has no probe split): "
                "no release values recorded, the vision probe cannot watch it"
            ),
        )
    outputs = {"version": version, "mean-confidence": f"{current.mean_confidence:.4f}"}
    measured = (
        f"{current.images} probe images on {cfg.model_name} v{version}: mean confidence "
        f"{current.mean_confidence:.3f}, class shares {[round(s, 3) for s in current.class_shares]}"
    )
    if cfg.mode == "release":
        tags = current.as_tags()
        registry.tag_version(cfg.model_name, version, tags)
        registry.tag_model(cfg.model_name, {**tags, f"{drift.TAG_PREFIX}version": version})
        return StepResult(
            outputs={**outputs, "psi": "0", "drift": "false", "reason": "release values"},
            summary=f"release values recorded: {measured}",
        )
    release = drift.release_values(
        registry.tags(cfg.model_name, version), registry.model_tags(cfg.model_name), version
    )
    gauges = drift.gauges(cfg.model_name, version, current, release)
    pushed = publish(cfg.pushgateway_url, drift.JOB, {"model": cfg.model_name}, gauges, sink)
    if release is None:
        return StepResult(
            outputs={**outputs, "psi": "", "drift": "unknown", "reason": "no release values"},
            summary=f"{measured}; no release of {cfg.model_name} recorded values to compare with; {pushed}",
        )
    index = drift.psi(current.class_shares, release.class_shares)
    verdict = drift.drift_verdict(current, release, cfg.max_psi, cfg.max_confidence_drop)
    return StepResult(
        outputs={
            **outputs,
            "psi": f"{index:.4f}",
            "drift": "false" if verdict.passed else "true",
            "reason": verdict.reason,
        },
        summary=(
            f"{measured}; PSI {index:.3f} against v{release.version}'s release values; "
            f"{'stable' if verdict.passed else 'DRIFT'}: {verdict.reason}; {pushed}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
