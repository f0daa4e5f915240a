"""The one step shape: parse config -> run(cfg) -> StepResult -> Argo outputs + exit code.

Exit codes (docs/steps.md, docs/architecture.md): 0 the step finished (a gate that rejects still exits 0
with `verdict=fail`), 2 bad input (never retried), 3 transient infrastructure failure
(retried by the WorkflowTemplate's `retryStrategy`). Only `main` here calls for an exit code;
step modules return it from their own `main()` to `sys.exit`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mlops.config import StepConfig, load_config
from mlops.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_TRANSIENT, BadInput, MlopsError, Transient

OUTPUTS_ENV = "MLOPS_OUTPUTS_DIR"
DEFAULT_OUTPUTS_DIR = "/tmp/outputs"

C = TypeVar("C", bound=StepConfig)


@dataclass
class StepResult:
    """What a step hands to the workflow: Argo output parameters and a one-line summary."""

    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""


def outputs_dir() -> Path:
    return Path(os.environ.get(OUTPUTS_ENV, DEFAULT_OUTPUTS_DIR))


def write_outputs(outputs: dict[str, str], directory: Path | None = None) -> None:
    """Write each output to `<dir>/<name>`, the file a template reads with `valueFrom.path`."""
    target = directory or outputs_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name, value in outputs.items():
        tmp = target / f".{name}.tmp"
        tmp.write_text(str(value))
        tmp.replace(target / name)


def classify(exc: BaseException) -> MlopsError:
    """Map an exception to BadInput / Transient; library errors of the transport kind are transient."""
    if isinstance(exc, MlopsError):
        return exc
    transient_names = {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "ConnectError",
        "TimeoutException",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "MaxRetryError",
        "NewConnectionError",
    }
    for klass in type(exc).__mro__:
        if klass.__name__ in transient_names:
            return Transient(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return Transient(f"{type(exc).__name__}: {exc}")
    return MlopsError(f"{type(exc).__name__}: {exc}")


def main(
    config_cls: type[C],
    run: Callable[[C], StepResult],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> int:
    """Parse, run, write outputs, print a summary; return the exit code (the caller exits)."""
    started = time.monotonic()
    name = prog or getattr(run, "__module__", "step")
    try:
        cfg = load_config(config_cls, argv, prog=prog, description=description)
    except BadInput as exc:
        print(f"[{name}] bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"[{name}] config: {json.dumps(cfg.model_dump(mode='json'), sort_keys=True)}", flush=True)
    try:
        result = run(cfg)
    except BadInput as exc:
        print(f"[{name}] bad input: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        error = classify(exc)
        if isinstance(error, Transient):
            print(f"[{name}] transient failure (retryable): {error}", file=sys.stderr)
            return EXIT_TRANSIENT
        traceback.print_exc()
        print(f"[{name}] failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    write_outputs(result.outputs)
    elapsed = time.monotonic() - started
    outputs = " ".join(f"{k}={v}" for k, v in result.outputs.items())
    print(
        f"[{name}] done in {elapsed:.1f}s: {result.summary} {('(' + outputs + ')') if outputs else ''}".rstrip()
    )
    return EXIT_OK


def workflow_name() -> str:
    """The workflow run this step belongs to (Argo's, or the local executor's), else `manual`."""
    return os.environ.get("ARGO_WORKFLOW_NAME") or os.environ.get("MLOPS_WORKFLOW_NAME") or "manual"
