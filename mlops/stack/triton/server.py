"""`python -m mlops.stack.triton`: start the stand-in's HTTP, gRPC and metrics endpoints.

Flags mirror tritonserver's where one exists (`--model-repository`, `--http-port`,
`--grpc-port`, `--metrics-port`, `--load-model`); model control is always explicit.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_REPOSITORY = "s3://mlops-models/triton"
REPOSITORY_ENV = "MLOPS_TRITON_MODEL_REPOSITORY"

log = logging.getLogger("triton-standin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlops.stack.triton", description=__doc__)
    parser.add_argument(
        "--model-repository",
        default=os.environ.get(REPOSITORY_ENV, DEFAULT_REPOSITORY),
        help=f"Triton model repository on S3 (default ${REPOSITORY_ENV} or {DEFAULT_REPOSITORY})",
    )
    parser.add_argument(
        "--s3-endpoint",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="S3 endpoint URL (default $AWS_ENDPOINT_URL; unset = AWS)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP/REST port (default 8000)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    parser.add_argument(
        "--metrics-port", type=int, default=8002, help="Prometheus /metrics port (default 8002)"
    )
    parser.add_argument(
        "--load-model",
        action="append",
        default=[],
        metavar="NAME",
        help="load this model at start (repeatable; '*' = every model); a failure is logged, not fatal",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch space for downloads (default: a temp dir)")
    parser.add_argument(
        "--ort-threads", type=int, default=0, help="ONNX Runtime intra-op threads per model (0 = its default)"
    )
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    return parser


def server_info() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "name": "mlops-triton-standin",
        "version": version("tritonclient"),  # the protocol definitions it serves
        "extensions": ["model_repository", "model_configuration", "binary_tensor_data", "statistics"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    started = time.monotonic()

    from mlops.stack.triton.core import ModelManager
    from mlops.stack.triton.grpc_service import build_server
    from mlops.stack.triton.http_service import TritonHttpApi, build_http_server, metrics_api
    from mlops.stack.triton.repository import S3ModelRepository
    from mlops.storage import S3Store, S3Url

    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="triton-standin-"))
    repository = S3ModelRepository(S3Url.parse(args.model_repository), S3Store(args.s3_endpoint))
    manager = ModelManager(repository, work_dir, args.ort_threads)
    startup_loads(manager, args.load_model)

    info = server_info()
    grpc_server = build_server(manager, f"{args.host}:{args.grpc_port}", info)
    http_server = build_http_server((args.host, args.http_port), TritonHttpApi(manager, info).handle)
    metrics_server = build_http_server((args.host, args.metrics_port), metrics_api(manager))
    grpc_server.start()
    for server in (http_server, metrics_server):
        threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    log.info(
        "serving %s: HTTP %s:%d, gRPC %s:%d, metrics %s:%d/metrics (explicit model control) after %.2fs",
        repository,
        args.host,
        args.http_port,
        args.host,
        args.grpc_port,
        args.host,
        args.metrics_port,
        time.monotonic() - started,
    )

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    http_server.shutdown()
    metrics_server.shutdown()
    grpc_server.stop(grace=2).wait()
    if args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def startup_loads(manager: Any, names: Sequence[str]) -> None:
    """`--load-model`: load before serving, as tritonserver does; failures are logged and skipped."""
    from mlops.stack.triton.errors import ServingError

    try:
        wanted = manager.repository.model_names() if "*" in names else list(names)
    except ServingError as exc:
        log.error("startup loads skipped: %s", exc.message)
        return
    for name in wanted:
        try:
            manager.load(name)
        except ServingError as exc:
            log.error("startup load of %s failed: %s", name, exc.message)
