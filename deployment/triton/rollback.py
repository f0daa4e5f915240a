"""Step: serve `previous` again and make it `live`.

Loads the Triton version recorded on `previous` next to the live one on every replica,
checks it answers its golden samples, then moves `live` to it and clears `previous` (guarded
moves; the rolled-back version is tagged). The onExit handler (reconcile) then unloads what
is no longer live. Idempotent: when `previous` is unset because a rollback already restored
`live`, it does nothing and says so; `previous` unset otherwise is bad input (exit 2).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pydantic import Field

from deployment.triton.package import fetch_package, load_golden
from deployment.triton.serve import live_triton_version
from deployment.triton.serving import check_golden, serve_versions
from deployment.triton.set_aliases import ROLLED_BACK_FROM, TRITON_MODEL_TAG, TRITON_VERSION_TAG
from deployment.triton.settings import ServerSettings, repository, workflow_name
from mlops import step
from mlops.audit import utc_now
from mlops.errors import BadInput
from mlops.registry import Registry, mlflow_registry
from mlops.serving.discovery import resolve
from mlops.serving.triton import connect
from mlops.step import StepResult

ROLLED_BACK_AT = "rollback.rolled_back_at"


class Config(ServerSettings):
    tolerance: float = Field(
        1e-4, ge=0.0, description="largest allowed probability difference on golden samples"
    )


def run(cfg: Config, registry: Registry | None = None) -> StepResult:
    registry = registry or mlflow_registry()
    live = registry.alias(cfg.model_name, "live")
    previous = registry.alias(cfg.model_name, "previous")
    if previous is None:
        if live and registry.tags(cfg.model_name, live).get(ROLLED_BACK_FROM):
            restored_from = registry.tags(cfg.model_name, live)[ROLLED_BACK_FROM]
            return StepResult(
                outputs={"live": live, "rolled-back": "false"},
                summary=f"nothing to do: live v{live} was already restored by a rollback from v{restored_from}",
            )
        raise BadInput(f"{cfg.model_name} has no `previous` alias: there is nothing to roll back to")
    tags = registry.tags(cfg.model_name, previous)
    target = tags.get(TRITON_VERSION_TAG, "")
    name = cfg.triton_model_name or tags.get(TRITON_MODEL_TAG, "")
    if not target.isdigit() or not name:
        raise BadInput(
            f"{cfg.model_name}@previous = v{previous} records no Triton version/model; it was never served"
        )
    endpoints = resolve(cfg.endpoints)
    repo = repository(cfg, name)
    current = live_triton_version(registry, cfg.model_name)
    serve_versions(
        repo, endpoints, sorted({int(target), *([current] if current else [])}), cfg.ready_timeout_s
    )
    with tempfile.TemporaryDirectory(prefix="triton-rollback-") as tmp:
        golden = load_golden(fetch_package(registry, cfg.model_name, previous, Path(tmp)).golden)
    failures = []
    for endpoint in endpoints:
        verdict = check_golden(connect(endpoint), name, target, golden, cfg.tolerance)
        if not verdict.passed:
            failures.append(f"{endpoint}: {verdict.reason}")
    if failures:
        raise BadInput(
            f"previous v{previous} (Triton {target}) fails its golden samples: " + " | ".join(failures)
        )
    reason = f"rollback by {workflow_name()}: v{live or 'unset'} -> v{previous}"
    registry.tag_version(cfg.model_name, previous, {ROLLED_BACK_FROM: live or "", ROLLED_BACK_AT: utc_now()})
    registry.move_alias(cfg.model_name, "live", previous, expect_version=live, reason=reason)
    registry.move_alias(cfg.model_name, "previous", None, expect_version=previous, reason=reason)
    return StepResult(
        outputs={"live": previous, "rolled-back": "true"},
        summary=f"{cfg.model_name}: live v{live or 'unset'} -> v{previous} (Triton {name}/{target}), previous cleared",
    )


def main(argv: list[str] | None = None) -> int:
    return step.main(Config, run, argv)


if __name__ == "__main__":
    sys.exit(main())
