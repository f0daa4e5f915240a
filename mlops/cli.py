"""`mlops`: the local stack, the local Argo executor, and the registry's audit trail.

mlops up | down | status | logs [SERVICE]   the local stack of real servers
mlops env                                   shell exports that point a step at the stack
mlops run WORKFLOW.yaml [-p k=v] [--params]  run a WorkflowTemplate locally
mlops lint [workflows/]                      strict validation of every workflow
mlops resume RUN | stop RUN                  go on past a suspend step / stop a local run
mlops models                                 registered models and their aliases
mlops history MODEL                          alias moves of a model, oldest first
mlops migrate-audit [MODEL ...]              move old `audit.*` model tags into the audit trail
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops.errors import EXIT_BAD_INPUT, EXIT_TRANSIENT, BadInput, Transient
from mlops.models.names import LLM_MODEL

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return Path(os.environ.get("MLOPS_STATE_DIR", str(REPO_ROOT / ".stack")))


PORT_FLAGS = (
    "mlflow",
    "s3",
    "triton_http",
    "triton_grpc",
    "triton_metrics",
    "vllm",
    "prometheus",
    "pushgateway",
    "router",
)


def _manager(  # type: ignore[no-untyped-def]
    args: argparse.Namespace,
    serving_python: str | None = None,
    vllm=None,
    mlflow_server_python: str | None = None,
):
    from mlops.stack.manager import StackManager
    from mlops.stack.services import Ports, VllmSettings, default_services

    ports = Ports.from_env({name: getattr(args, f"{name}_port", None) for name in PORT_FLAGS})
    vllm = vllm or VllmSettings(
        base_dir=None,
        adapter_dir=args.state_dir / "vllm" / "adapters",
        no_base_reason="starts with `mlops up` once vllm-training has registered an adapter",
    )
    services = default_services(
        args.state_dir,
        ports,
        serving_python=serving_python,
        vllm=vllm,
        mlflow_server_python=mlflow_server_python,
    )
    return StackManager(args.state_dir, services, ports)


def _vllm_settings(args: argparse.Namespace, mlflow_uri: str):  # type: ignore[no-untyped-def]
    """What the local vLLM serves: `--vllm-base` (a folder, an s3:// prefix, `registry` or `none`)."""
    from mlops.stack.services import VllmSettings, vllm_python

    adapter_dir = args.state_dir / "vllm" / "adapters"
    choice = args.vllm_base
    if choice == "none":
        return VllmSettings(base_dir=None, adapter_dir=adapter_dir, no_base_reason="--vllm-base none")
    from mlops.registry import mlflow_registry
    from mlops.stack.llm_base import base_uri_from_registry, local_base

    origin = choice
    if choice == "registry":
        choice, origin = base_uri_from_registry(mlflow_registry(mlflow_uri), LLM_MODEL)
        if not choice:
            return VllmSettings(base_dir=None, adapter_dir=adapter_dir, no_base_reason=origin)
    base = local_base(choice, args.state_dir / "vllm" / "base")
    print(f"vllm: serving base {choice} (from {origin}) at {base}")
    return VllmSettings(base_dir=base, adapter_dir=adapter_dir, python=vllm_python())


def cmd_up(args: argparse.Namespace) -> int:
    from mlops.stack.services import client_env, mlflow_python, serving_python

    started = time.monotonic()
    # the MLflow server and the Triton stand-in run in their own environments; resolved (and built
    # once) only here
    servers = {"serving_python": serving_python(), "mlflow_server_python": mlflow_python()}
    manager = _manager(args, **servers)
    # vLLM (and the router in front of it) last: its base is resolved from the registry, which is
    # up after this first pass
    manager.services = [s for s in manager.services if s.name not in ("vllm", "router")]
    manager.up()
    env = client_env(manager.ports)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the base is downloaded from the stack's S3
    try:
        vllm = _vllm_settings(args, env["MLFLOW_TRACKING_URI"])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    manager = _manager(args, vllm=vllm, **servers)
    manager.up(progress=lambda line: print(line) if line.startswith(("vllm", "router")) else None)
    print(f"local stack up in {time.monotonic() - started:.1f}s (state: {args.state_dir})")
    for status in manager.status():
        print(
            f"  {status.name:<10} {status.url:<24} {(status.skip_reason and 'not started: ' + status.skip_reason) or status.description}"
        )
    print('point a shell at it with:  eval "$(bin/mlops env)"')
    print(f"MLflow UI: {env['MLFLOW_TRACKING_URI']}")
    print(f"Triton (gRPC, tritonclient): {env['TRITON_GRPC_URL']}")
    print(f"vLLM (OpenAI API): {env['VLLM_URL']}/v1   Prometheus: {env['PROMETHEUS_URL']}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    import shutil

    _manager(args).down()
    # S3's objects, MLflow's registry and memoized step outputs stay on disk for the next `up`;
    # `--purge` is the one way to empty the stack (all of its state folder goes)
    if args.purge and args.state_dir.exists():
        shutil.rmtree(args.state_dir)
        print(f"purged {args.state_dir} (S3 objects, MLflow registry, logs, memoized outputs)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"local stack ({args.state_dir})")
    for column in ("service", "url", "pid", "health", "what"):
        table.add_column(column)
    all_healthy = True
    statuses = _manager(args).status()
    for status in statuses:
        health = "healthy" if status.healthy else ("running, not healthy" if status.running else "stopped")
        if not status.running and status.skip_reason:
            health = "not started"  # vLLM before a base exists, Prometheus without its binary
        else:
            all_healthy &= status.healthy
        table.add_row(status.name, status.url, str(status.pid or "-"), health, status.description)
    console = Console()
    console.print(table)
    agree = serving_agreement(console, {s.name: s for s in statuses})
    return 0 if all_healthy and agree else 1


def serving_agreement(console: Any, statuses: dict[str, Any]) -> bool:
    """Print, per model and alias, what the registry says and what each server serves; False on any
    disagreement (a server serving something else, or not answering)."""
    from rich.table import Table

    from deployment.agreement import triton_rows, vllm_rows
    from mlops.registry import mlflow_registry
    from mlops.stack.services import LOCAL_CREDENTIALS, VLLM_SERVED_NAME
    from mlops.stack.triton.server import DEFAULT_REPOSITORY, REPOSITORY_ENV
    from mlops.storage import S3Store

    if not (
        statuses.get("mlflow")
        and statuses["mlflow"].healthy
        and statuses.get("s3")
        and statuses["s3"].healthy
    ):
        return True  # nothing to compare with: the services' table says why
    for key, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    registry = mlflow_registry(statuses["mlflow"].url)
    rows = triton_rows(
        registry,
        S3Store(statuses["s3"].url),
        os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY,
        f"127.0.0.1:{statuses['triton'].ports['triton_grpc']}",
    )
    vllm = statuses.get("vllm")
    if vllm is not None and vllm.running:
        rows += vllm_rows(registry, LLM_MODEL, VLLM_SERVED_NAME, vllm.url.removeprefix("http://"))
    table = Table(title="registry aliases and what the servers serve")
    for column in ("server", "model", "alias", "registry", "should serve", "serves", ""):
        table.add_column(column)
    for row in rows:
        verdict = "ok" if row.agrees else "[bold red]DISAGREES[/]"
        table.add_row(
            row.server, row.model, row.alias, row.registry, row.expected or "-", row.serves or "-", verdict
        )
    if rows:
        console.print(table)
    disagreeing = [row for row in rows if not row.agrees]
    if disagreeing:
        console.print(
            f"{len(disagreeing)} disagreement(s): `mlops up` (or the workflows' exit handlers) converge them"
        )
    return not disagreeing


def cmd_logs(args: argparse.Namespace) -> int:
    manager = _manager(args)
    names = [args.service] if args.service else [s.name for s in manager.services]
    known = {s.name for s in manager.services}
    for name in names:
        if name not in known:
            print(f"unknown service {name!r}; known: {', '.join(sorted(known))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"==> {manager.log_path(name)} <==")
        print(manager.tail(name, args.lines))
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from mlops.stack.services import client_env

    for key, value in client_env(_manager(args).ports).items():
        print(f"export {key}={value}")
    return 0


def tracking_uri(args: argparse.Namespace) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the local stack's MLflow (never a stray ./mlflow.db)."""
    from mlops.stack.services import Ports, client_env

    return (
        args.tracking_uri
        or os.environ.get("MLFLOW_TRACKING_URI")
        or client_env(Ports.from_env())["MLFLOW_TRACKING_URI"]
    )


def cmd_history(args: argparse.Namespace) -> int:
    from mlops.registry import mlflow_registry

    registry = mlflow_registry(tracking_uri(args))
    entries = registry.history(args.model)
    if not entries:
        print(f"no alias moves recorded for {args.model}")
        return 0
    for entry in entries:
        print(entry.line())
    waiting = len(registry.unmigrated(args.model))
    if waiting:
        print(
            f"{waiting} of these are still kept as model tags audit.*: "
            f"`mlops migrate-audit {args.model}` moves them to the registry-audit experiment",
            file=sys.stderr,
        )
    return 0


def cmd_migrate_audit(args: argparse.Namespace) -> int:
    """Convert models written before the audit trail had its own experiment (idempotent)."""
    from mlops.registry import MlflowBackend, Registry
    from mlops.tracking import configure_mlflow_client

    configure_mlflow_client()
    backend = MlflowBackend(tracking_uri(args))
    registry = Registry(backend)
    for model in args.models or backend.list_models():
        print(registry.migrate_audit(model).line())
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Every registered model with its aliases: what the demo leaves behind, at a glance."""
    from mlflow import MlflowClient

    from mlops.tracking import configure_mlflow_client

    configure_mlflow_client()
    uri = tracking_uri(args)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    models = client.search_registered_models()
    if not models:
        print("no registered models yet")
    for model in sorted(models, key=lambda m: m.name):
        aliases = (
            ", ".join(f"{alias} -> v{version}" for alias, version in sorted(model.aliases.items()))
            or "no aliases"
        )
        latest = max(
            (int(v.version) for v in client.search_model_versions(f"name='{model.name}'")), default=0
        )
        print(f"{model.name:<28} {latest} version(s); {aliases}")
    print(f"MLflow UI: {uri}  (models: {uri}/#/models, history: bin/mlops history MODEL)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mlops.argo import cli as argo_cli

    parser = argparse.ArgumentParser(
        prog="mlops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_command(name: str, help_text: str, ports: bool = False) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--state-dir", type=Path, default=default_state_dir(), help="state folder (default .stack/)"
        )
        if ports:
            command.add_argument(
                "--mlflow-port", type=int, help="MLflow port (default 5000, env MLOPS_MLFLOW_PORT)"
            )
            command.add_argument("--s3-port", type=int, help="S3 port (default 9000, env MLOPS_S3_PORT)")
            for name, default in (("http", 8000), ("grpc", 8001), ("metrics", 8002)):
                command.add_argument(
                    f"--triton-{name}-port",
                    type=int,
                    help=f"Triton stand-in {name} port (default {default}, env MLOPS_TRITON_{name.upper()}_PORT)",
                )
            command.add_argument(
                "--vllm-port", type=int, help="vLLM OpenAI API port (default 8010, env MLOPS_VLLM_PORT)"
            )
            command.add_argument(
                "--prometheus-port",
                type=int,
                help="Prometheus port (default 9090, env MLOPS_PROMETHEUS_PORT)",
            )
            command.add_argument(
                "--pushgateway-port",
                type=int,
                help="Pushgateway port (default 9091, env MLOPS_PUSHGATEWAY_PORT)",
            )
            command.add_argument(
                "--router-port", type=int, help="canary router port (default 8020, env MLOPS_ROUTER_PORT)"
            )
        return command

    up = stack_command("up", "start the local stack and wait until every service is healthy", ports=True)
    up.add_argument(
        "--vllm-base",
        default=os.environ.get("MLOPS_VLLM_BASE", "registry"),
        help=(
            "base model vLLM serves: a folder, an s3:// prefix, 'registry' (default: the base_uri of "
            f"{LLM_MODEL}@live/staged/candidate; vLLM waits until one exists) or 'none' (env MLOPS_VLLM_BASE)"
        ),
    )
    up.set_defaults(func=cmd_up)
    down = stack_command("down", "stop the local stack (its state stays for the next `up`)", ports=True)
    down.add_argument(
        "--purge",
        action="store_true",
        help="also delete the state folder: every S3 object, the MLflow registry, logs, memoized outputs",
    )
    down.set_defaults(func=cmd_down)
    stack_command(
        "status", "health of each local service (exit 1 if any is not healthy)", ports=True
    ).set_defaults(func=cmd_status)
    logs = stack_command("logs", "last lines of the services' logs", ports=True)
    logs.add_argument("service", nargs="?", help="one service (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines per service (default 50)")
    logs.set_defaults(func=cmd_logs)
    stack_command(
        "env", "print shell exports pointing MLflow, S3 and Triton clients at the stack", ports=True
    ).set_defaults(func=cmd_env)

    history = sub.add_parser(
        "history",
        help="audit trail of a model's alias moves",
        description="audit trail of a model's alias moves",
    )
    history.add_argument("model", help="registered model name, e.g. resnet18-imagenette")
    history.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow URI (default: MLFLOW_TRACKING_URI, else the local stack's MLflow)",
    )
    history.set_defaults(func=cmd_history)

    migrate = sub.add_parser(
        "migrate-audit",
        help="move audit entries kept as model tags audit.* into the registry-audit experiment",
        description="Move audit entries kept as registered-model tags `audit.*` (the old format) into the "
        "registry-audit experiment, delete those tags, and rewrite epoch-second version time tags "
        "(alias.<alias>.set_at, ...) in ISO-8601 UTC. Safe to run again.",
    )
    migrate.add_argument("models", nargs="*", help="registered models (default: every registered model)")
    migrate.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow URI (default: MLFLOW_TRACKING_URI, else the local stack's MLflow)",
    )
    migrate.set_defaults(func=cmd_migrate_audit)

    models = sub.add_parser(
        "models",
        help="registered models and their aliases",
        description="registered models and their aliases",
    )
    models.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow URI (default: MLFLOW_TRACKING_URI, else the local stack's MLflow)",
    )
    models.set_defaults(func=cmd_models)

    run = sub.add_parser(
        "run", help="run a WorkflowTemplate locally", description="run a WorkflowTemplate on this machine"
    )
    argo_cli.add_run_arguments(run)
    run.set_defaults(func=argo_cli.cmd_run)

    lint = sub.add_parser(
        "lint", help="validate workflows strictly", description="validate every workflow strictly"
    )
    argo_cli.add_lint_arguments(lint)
    lint.set_defaults(func=argo_cli.cmd_lint)

    resume = sub.add_parser(
        "resume",
        help="resume a local run waiting at a suspend step",
        description="resume every node of a running `mlops run` that waits at a suspend template (argo resume)",
    )
    argo_cli.add_control_arguments(resume)
    resume.set_defaults(func=argo_cli.cmd_resume)

    stop = sub.add_parser(
        "stop",
        help="stop a local run (exit handlers still run)",
        description="stop a running `mlops run` as argo stop does: running nodes fail, exit handlers run",
    )
    argo_cli.add_control_arguments(stop)
    stop.set_defaults(func=argo_cli.cmd_stop)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BadInput as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Transient as exc:
        print(f"mlops {args.command}: {exc}", file=sys.stderr)
        return EXIT_TRANSIENT


if __name__ == "__main__":
    sys.exit(main())
