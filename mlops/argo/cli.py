"""`mlops run` and `mlops lint`: argument definitions and commands, wired into `mlops/cli.py`.

Imports of the executor (rich, hera) happen inside the commands so `mlops --help` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

IMAGE_MAP_ENV = "MLOPS_IMAGE_MAP"
BACKOFF_SCALE_ENV = "MLOPS_RETRY_BACKOFF_SCALE"
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mlops run WORKFLOW [-p key=value]... [--params FILE]`."""
    parser.add_argument("workflow", help="WorkflowTemplate YAML file, e.g. workflows/resnet-training.yaml")
    parser.add_argument(
        "-p",
        "--parameter",
        dest="parameters",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a workflow parameter (repeatable); overrides --params and the template's defaults",
    )
    parser.add_argument(
        "--params",
        metavar="FILE",
        help="flat YAML mapping of parameter values, e.g. workflows/params/local.yaml",
    )
    parser.add_argument("--quiet", action="store_true", help="do not stream the steps' output, only phases")
    parser.add_argument(
        "--retry-backoff-scale",
        type=_backoff_scale,
        default=os.environ.get(BACKOFF_SCALE_ENV) or "1",  # argparse converts a string default too
        metavar="FACTOR",
        help=(
            "wait FACTOR times each retryStrategy backoff (default 1: Argo's timing; also read from "
            f"${BACKOFF_SCALE_ENV}); retry decisions, backoff.maxDuration included, stay Argo's. "
            "The test suite runs with 0.01"
        ),
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where run logs (<state>/runs/) and mutex locks (<state>/locks/) live (default: <repo>/.stack)",
    )
    parser.add_argument(
        "--image-map",
        action="append",
        default=[],
        metavar="IMAGE=PYTHON",
        help=(
            "run containers of IMAGE (glob allowed) with this Python interpreter (repeatable); "
            f"also read from ${IMAGE_MAP_ENV} as comma-separated pairs; unmapped images use the current Python"
        ),
    )


def _backoff_scale(text: str) -> float:
    """A backoff scale: a number from 0 to 1 (a run never waits longer than Argo would)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1")
    return value


def add_lint_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mlops lint [DIRECTORY | FILE] [--params FILE]... [--strict]`."""
    parser.add_argument(
        "directory",
        nargs="?",
        default="workflows",
        metavar="PATH",
        help="folder of WorkflowTemplates (and its params/*.yaml), or one workflow file (default: workflows)",
    )
    parser.add_argument(
        "--params",
        dest="params_files",
        action="append",
        default=[],
        metavar="FILE",
        help="also check this params file (any location) against the workflows' parameters (repeatable)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on warnings too (project policies such as [retry-without-limit])",
    )


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mlops resume RUN` and `mlops stop RUN`."""
    parser.add_argument("run", help="the run's name, as `mlops run` printed it (Workflow <name>)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the state folder the run uses (default: <repo>/.stack), as given to mlops run",
    )


def parse_image_map(pairs: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`IMAGE=PYTHON` pairs from $MLOPS_IMAGE_MAP then the flags (flags win); ValueError on a bad pair."""
    environ = os.environ if env is None else env
    from_env = [p for p in environ.get(IMAGE_MAP_ENV, "").split(",") if p.strip()]
    mapping: dict[str, str] = {}
    for pair in [*from_env, *pairs]:
        image, sep, python = pair.strip().partition("=")
        if not sep or not image.strip() or not python.strip():
            raise ValueError(f"image map entry {pair!r}: expected IMAGE=PYTHON")
        mapping[image.strip()] = python.strip()
    return mapping


def _print_errors(errors: Iterable[str], headline: str) -> None:
    for error in errors:
        print(error, file=sys.stderr)
    print(headline, file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, then run a workflow locally: 0 Succeeded, 1 Failed, 2 invalid workflow or parameters."""
    from rich.console import Console

    from mlops.argo.executor import run_workflow
    from mlops.argo.parameters import WorkflowInvalid, load_params_file, parse_parameter_pairs
    from mlops.argo.process import LocalEnvironment

    workflow = Path(args.workflow)
    try:
        image_map = parse_image_map(args.image_map)
        file_params = load_params_file(args.params) if args.params else {}
        cli_params = parse_parameter_pairs(args.parameters)
        environment = LocalEnvironment(
            state_dir=args.state_dir, image_map=image_map, retry_backoff_scale=args.retry_backoff_scale
        )
        result = run_workflow(
            workflow,
            cli_params,
            workflows_dir=workflow.parent,
            environment=environment,
            console=Console(),
            file_params=file_params,
            params_source=f"--params {args.params}",
            quiet=args.quiet,
        )
    except WorkflowInvalid as exc:
        _print_errors(exc.errors, f"mlops run: {len(exc.errors)} problem(s) in {workflow}; nothing was run")
        return EXIT_INVALID
    except ValueError as exc:
        _print_errors([str(exc)], "mlops run: invalid arguments; nothing was run")
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("mlops run: interrupted; running steps were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SUCCEEDED if result.succeeded else EXIT_FAILED


def cmd_lint(args: argparse.Namespace) -> int:
    """Check a folder's (or one file's) workflows and params files: 0 clean, 1 with problems (all printed)."""
    from mlops.argo.lint import lint
    from mlops.argo.process import repository_root

    target = Path(args.directory)
    if not target.exists() and not target.is_absolute() and (repository_root() / target).exists():
        target = repository_root() / target
    report = lint(target, params_files=args.params_files)
    for error in report.errors:
        print(error)
    for warning in report.warnings:
        print(f"{'error' if args.strict else 'warning'}: {warning}")
    checked = f"{len(report.workflow_files)} workflow file(s) and {len(report.params_files)} params file(s) in {target}"
    problems = len(report.errors) + (len(report.warnings) if args.strict else 0)
    if report.failed(strict=args.strict):
        print(f"mlops lint: {problems} problem(s) in {checked}")
        return EXIT_FAILED
    note = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    print(f"mlops lint: {checked} OK{note}")
    return EXIT_SUCCEEDED


def _runs_dir(args: argparse.Namespace) -> Path:
    from mlops.argo.process import LocalEnvironment

    return LocalEnvironment(state_dir=args.state_dir).runs_dir


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume every node of a running run that waits at a suspend template: 0 done, 1 not suspended or not running."""
    from mlops.argo.control import RunNotFound, resume

    try:
        nodes = resume(_runs_dir(args), args.run)
    except RunNotFound as exc:
        print(f"mlops resume: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"mlops resume: {args.run} resumed ({', '.join(nodes)})")
    return EXIT_SUCCEEDED


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop a running run as `argo stop` does (running nodes fail, exit handlers run): 0 asked, 1 not running."""
    from mlops.argo.control import RunNotFound, stop

    try:
        stop(_runs_dir(args), args.run)
    except RunNotFound as exc:
        print(f"mlops stop: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"mlops stop: {args.run} is stopping; its exit handlers still run")
    return EXIT_SUCCEEDED
