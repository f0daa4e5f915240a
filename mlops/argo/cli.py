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


def add_lint_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `mlops lint [DIRECTORY]`."""
    parser.add_argument(
        "directory",
        nargs="?",
        default="workflows",
        help="folder of WorkflowTemplates (and params/*.yaml) to check (default: workflows)",
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
        environment = LocalEnvironment(state_dir=args.state_dir, image_map=image_map)
        result = run_workflow(
            workflow,
            cli_params,
            workflows_dir=workflow.parent,
            environment=environment,
            console=Console(),
            file_params=file_params,
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
    """Check every workflow and params file in a folder: 0 clean, 1 with problems (all printed)."""
    from mlops.argo.lint import lint_workflows
    from mlops.argo.process import repository_root
    from mlops.argo.workflow import workflow_files

    directory = Path(args.directory)
    if not directory.exists() and not directory.is_absolute() and (repository_root() / directory).is_dir():
        directory = repository_root() / directory
    errors = lint_workflows(directory)
    for error in errors:
        print(error)
    files = len(workflow_files(directory)) if directory.is_dir() else 0
    params = len(list((directory / "params").glob("*.yaml"))) if directory.is_dir() else 0
    checked = f"{files} workflow file(s) and {params} params file(s) in {directory}"
    if errors:
        print(f"mlops lint: {len(errors)} problem(s) in {checked}")
        return EXIT_FAILED
    print(f"mlops lint: {checked} OK")
    return EXIT_SUCCEEDED
