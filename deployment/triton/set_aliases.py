"""Step: after verify passed, make the deployed version `live` and the one it replaced `previous`.

Both moves are guarded by the state fetch read at the start of the workflow: if someone moved
`live` since, nothing is changed and the step fails (the onExit handler then serves `live` as
it is). The version is tagged with the Triton version that serves it, which reconcile and
rollback use to know what to load.
"""

from __future__ import annotations

import sys

from pydantic import Field

from deployment.triton.settings import ModelSettings, workflow_name
from mlops import step
from mlops.registry import Registry, mlflow_registry
from mlops.step import StepResult

TRITON_VERSION_TAG = "triton_version"
TRITON_MODEL_TAG = "triton_model_name"
ROLLED_BACK_FROM = "rollback.restored_from"


class Config(ModelSettings):
    version: str = Field(description="the registered version that was served and verified")
    triton_version: int = Field(ge=1, description="the Triton version number serving it")
    triton_model_name: str = Field(description="the model's name in the Triton repository")
    expected_live: str = Field(
        "none", description="the version `live` pointed at when the workflow started ('none' = unset)"
    )


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    before = None if cfg.expected_live in ("", "none") else cfg.expected_live
    reason = f"deployed as {cfg.triton_model_name}/{cfg.triton_version} and verified by {workflow_name()}"
    registry.tag_version(
        cfg.model_name,
        cfg.version,
        {
            TRITON_VERSION_TAG: str(cfg.triton_version),
            TRITON_MODEL_TAG: cfg.triton_model_name,
            ROLLED_BACK_FROM: "",  # live by a deployment now, not by a rollback
        },
    )
    previous_before = registry.alias(cfg.model_name, "previous")
    registry.move_alias(cfg.model_name, "live", cfg.version, expect_version=before, reason=reason)
    moved_previous = before is not None and before != cfg.version
    if moved_previous:
        registry.move_alias(
            cfg.model_name,
            "previous",
            before,
            expect_version=previous_before,
            reason=f"replaced as live by v{cfg.version} ({workflow_name()})",
        )
    return StepResult(
        outputs={"live": cfg.version, "previous": (before if moved_previous else previous_before) or "none"},
        summary=(
            f"{cfg.model_name}: live {before or 'unset'} -> v{cfg.version}"
            + (f", previous -> v{before}" if moved_previous else ", previous unchanged")
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
