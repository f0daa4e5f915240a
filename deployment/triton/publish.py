"""Step: publish a verified ONNX version into the Triton repository on S3 as the next version.

Run under an Argo mutex named after the Triton model, so two deployments never pick the same
number. Re-downloads the package and requires the sha256 the fetch step verified, picks one
above every version number ever used, uploads to a staging prefix, copies into
`<model>/<N>/`, verifies each copy's checksum and writes `_COMMITTED` last. Nothing is served
yet: what servers load is decided by `config.pbtxt`, which the serve step writes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.triton.package import fetch_package
from deployment.triton.repository import MODEL_FILE, version_metadata
from deployment.triton.settings import ModelSettings, repository, workflow_name
from mlops import step
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult


class Config(ModelSettings):
    version: str = Field(description="registered version to publish (fetch's `version` output)")
    sha256: str = Field(description="sha256 of model.onnx that fetch verified; must still match")


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    with tempfile.TemporaryDirectory(prefix="triton-publish-") as tmp:
        package = fetch_package(registry, cfg.model_name, cfg.version, Path(tmp))
        if package.sha256 != cfg.sha256:
            raise BadInput(
                f"{cfg.model_name} v{cfg.version} changed since fetch: sha256 {package.sha256} != {cfg.sha256}"
            )
        repo = repository(cfg, package.triton_model_name)
        number = repo.next_version()
        metadata = version_metadata(
            mlflow_model=cfg.model_name,
            mlflow_version=cfg.version,
            run_id=package.run_id,
            sha256=package.sha256,
            workflow=workflow_name(),
        )
        metadata["config_pbtxt"] = package.config.read_text()
        manifest = repo.publish(number, {MODEL_FILE: package.onnx}, metadata)
    return StepResult(
        outputs={"triton-version": str(number)},
        summary=(
            f"{cfg.model_name} v{cfg.version} published as {repo.version_url(number)} "
            f"({len(manifest)} files, checksums verified, committed)"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
