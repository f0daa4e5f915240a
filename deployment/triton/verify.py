"""Step: the served version must answer its golden samples as the equivalence gate recorded them.

On every replica, infers the golden inputs saved at training time on the new version and on
the model's default route (which must now be the new version), and compares labels and
probabilities. Any difference fails the step (exit 2, never retried): the onExit handler then
serves `live` again and no alias moves.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.triton.package import fetch_package, load_golden
from deployment.triton.serving import check_golden
from deployment.triton.settings import ServerSettings
from mlops import step
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.serving.triton import connect
from mlops.step import StepResult


class Config(ServerSettings):
    version: str = Field(description="the registered version being deployed")
    triton_version: int = Field(ge=1, description="the Triton version serving it")
    triton_model_name: str = Field(description="the model's name in the Triton repository")
    tolerance: float = Field(1e-4, ge=0.0, description="largest allowed probability difference")


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    endpoints = resolve(cfg.endpoints)
    with tempfile.TemporaryDirectory(prefix="triton-verify-") as tmp:
        package = fetch_package(registry, cfg.model_name, cfg.version, Path(tmp))
        golden = load_golden(package.golden)
    failures, checked = [], 0
    for endpoint in endpoints:
        server = connect(endpoint)
        for route in (str(cfg.triton_version), ""):
            verdict = check_golden(server, cfg.triton_model_name, route, golden, cfg.tolerance)
            checked += 1
            if not verdict.passed:
                failures.append(f"{endpoint} {'v' + route if route else 'default route'}: {verdict.reason}")
    if failures:
        raise BadInput(f"verification failed on {len(failures)}/{checked} check(s): " + " | ".join(failures))
    samples = len(golden[0])
    return StepResult(
        outputs={"verdict": "pass"},
        summary=(
            f"{cfg.triton_model_name}/{cfg.triton_version} answers {samples} golden samples correctly on "
            f"{len(endpoints)} replica(s), also as the default route"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
