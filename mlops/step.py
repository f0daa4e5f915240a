"""The one step shape: parse config -> run(cfg) -> StepResult -> Argo outputs + exit code.

Exit codes (docs/steps.md, docs/architecture.md): 0 the step finished (a gate that rejects still exits 0
with `verdict=fail`), 2 bad input (never retried), 3 transient infrastructure failure
(retried by the WorkflowTemplate's `retryStrategy`). Only `main` here calls for an exit code;
step modules return it from their own `main()` to `sys.exit`.
"""

from __future__ import annotations

import inspect
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
from mlops.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_TRANSIENT, MlopsError, Transient

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
    """The typed error a step failed with: its own, `Transient` for a transport fault, else exit 1."""
    if isinstance(exc, MlopsError):
        return exc
    if isinstance(exc, _transport_errors()):
        return Transient(f"{type(exc).__name__}: {exc}")
    mlflow = _mlflow_error(exc)
    if isinstance(mlflow, Transient):  # the rest stays a failure: outside mlflow_errors it is a bug
        return mlflow
    return MlopsError(f"{type(exc).__name__}: {exc}")


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Refused connections, timeouts and dropped connections, of Python and of the HTTP clients steps use.

    A library's classes are looked up only once it is loaded: nothing can have raised an exception
    of a module never imported, and importing one here would cost a failing step seconds.
    """
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    if "httpx" in sys.modules:
        import httpx

        kinds += [httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError]
    if "botocore.exceptions" in sys.modules:
        from botocore import exceptions as boto

        kinds += [boto.ConnectionError, boto.HTTPClientError]
    if "requests" in sys.modules:
        import requests

        kinds += [requests.ConnectionError, requests.Timeout]
    if "urllib3" in sys.modules:
        from urllib3 import exceptions as urllib3

        kinds += [urllib3.TimeoutError, urllib3.MaxRetryError, urllib3.ProtocolError]
    return tuple(kinds)


def _mlflow_error(exc: BaseException) -> MlopsError | None:
    """An MLflow client error raised outside `mlops.tracking.mlflow_errors`, translated by the same rule."""
    if "mlflow.exceptions" not in sys.modules:
        return None
    from mlflow.exceptions import MlflowException

    from mlops.tracking import mlflow_error

    return mlflow_error(exc, "MLflow") if isinstance(exc, MlflowException) else None


def _step_module(run: Callable[..., object]) -> tuple[str, str | None]:
    """(`package.module`, its docstring) of the module that defines `run`, also when run as `python -m`."""
    name = getattr(run, "__module__", None) or "step"
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    if name == "__main__" and spec is not None and spec.name:
        name = spec.name  # `python -m training.resnet.train` runs the module as __main__
    return name, getattr(module, "__doc__", None)


def first_paragraph(text: str | None) -> str | None:
    """A docstring's opening paragraph: a step's one-line-or-so description for `--help`."""
    paragraphs = inspect.cleandoc(text or "").split("\n\n")
    return paragraphs[0].strip() or None


def main(
    config_cls: type[C],
    run: Callable[[C], StepResult],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> int:
    """Parse, run, write outputs, print a summary; return the exit code (the caller exits).

    `prog` (default `python -m <run's module>`) and `description` (default the first paragraph
    of that module's docstring) are what `--help` shows.
    """
    started = time.monotonic()
    module, docstring = _step_module(run)
    name = prog or module
    try:
        cfg = load_config(
            config_cls,
            argv,
            prog=prog or f"python -m {module}",
            description=description if description is not None else first_paragraph(docstring),
        )
    except SystemExit as exc:  # argparse, after printing --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except Exception as exc:
        return _report(name, classify(exc))
    print(f"[{name}] config: {json.dumps(cfg.model_dump(mode='json'), sort_keys=True)}", flush=True)
    try:
        result = run(cfg)
    except Exception as exc:
        return _report(name, classify(exc))
    write_outputs(result.outputs)
    elapsed = time.monotonic() - started
    outputs = " ".join(f"{k}={v}" for k, v in result.outputs.items())
    print(
        f"[{name}] done in {elapsed:.1f}s: {result.summary} {('(' + outputs + ')') if outputs else ''}".rstrip()
    )
    return EXIT_OK


def _report(name: str, error: MlopsError) -> int:
    """Print why the step stopped, the way its exit code means it; return that code."""
    if error.exit_code == EXIT_BAD_INPUT:
        print(f"[{name}] bad input: {error}", file=sys.stderr)
    elif error.exit_code == EXIT_TRANSIENT:
        print(f"[{name}] transient failure (retryable): {error}", file=sys.stderr)
    else:
        traceback.print_exc()
        print(f"[{name}] failed: {error}", file=sys.stderr)
    return error.exit_code


def workflow_name() -> str:
    """The workflow run this step belongs to (Argo's, or the local executor's), else `manual`."""
    return os.environ.get("ARGO_WORKFLOW_NAME") or os.environ.get("MLOPS_WORKFLOW_NAME") or "manual"
