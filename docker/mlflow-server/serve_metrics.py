"""Serve the MLflow server's Prometheus metrics on a port of their own, without MLflow's authentication.

    python serve_metrics.py --multiproc-dir /mlflow-tmp/prometheus --port 9100

`mlflow server --expose-prometheus DIR` writes its request metrics (prometheus_flask_exporter,
multiprocess mode) into DIR and answers them on /metrics, but its basic-auth app lets only admins
read that route. This runs as the `metrics` sidecar of the MLflow pods: it reads the same
directory (the server's /tmp volume, mounted read-only) and answers any path with the merged
metrics, so Prometheus scrapes without credentials while the NetworkPolicy admits only the
monitoring namespace to this port.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path


def registry_for(directory: Path) -> object:
    """A registry merging every worker's metric files in `directory` (prometheus_client multiprocess)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--multiproc-dir", type=Path, required=True, help="the server's --expose-prometheus DIR"
    )
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args(argv)

    from prometheus_client import start_http_server

    while not args.multiproc_dir.is_dir():  # the server creates it when it starts
        time.sleep(1)
    start_http_server(args.port, addr=args.host, registry=registry_for(args.multiproc_dir))
    print(f"serving {args.multiproc_dir} on {args.host}:{args.port}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
