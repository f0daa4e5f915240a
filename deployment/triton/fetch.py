"""Step: resolve the version behind `deploy`, download its ONNX package and verify it.

Fails with exit 2 when the alias is missing, the artifacts have no model.onnx or config.pbtxt,
or the model's sha256 differs from what was registered. Outputs the version, its sha256 and
the Triton model name for the publish step, plus the version currently `live`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.triton.package import fetch_package, load_golden
from deployment.triton.set_aliases import TRITON_VERSION_TAG
from deployment.triton.settings import ModelSettings
from mlops import step
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult


class Config(ModelSettings):
    alias: str = Field("deploy", description="alias naming the version to deploy")
    force: bool = Field(False, description="deploy even when the version is already live")


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    version = registry.require_alias(cfg.model_name, cfg.alias)
    live = registry.alias(cfg.model_name, "live")
    with tempfile.TemporaryDirectory(prefix="triton-fetch-") as tmp:
        package = fetch_package(registry, cfg.model_name, version, Path(tmp))
        inputs, _, _ = load_golden(package.golden)
    served_by = registry.tags(cfg.model_name, live).get(TRITON_VERSION_TAG, "") if live else ""
    up_to_date = live == version and bool(served_by) and not cfg.force
    state = (
        f"already live as Triton version {served_by}: nothing to deploy (--force to redeploy)"
        if up_to_date
        else f"live is {('v' + live) if live else 'unset'}"
    )
    return StepResult(
        outputs={
            "version": version,
            "sha256": package.sha256,
            "triton-model-name": package.triton_model_name,
            "live-version": live or "none",
            "up-to-date": "true" if up_to_date else "false",
        },
        summary=(
            f"{cfg.model_name}@{cfg.alias} = v{version}, model.onnx sha256 {package.sha256[:12]} verified, "
            f"{len(inputs)} golden samples; {state}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
