"""MLflow authentication and the judge on a cluster: image requirements, the users sidecar, the checks.

The broken-copy test runs scripts/check_infra.py in the `infra` environment (tests/unit/test_infra.py
explains it) on a copy of the repository with one defect per row, and expects each finding.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

from tests.mlflow_manifests import external_secret, server_container
from tests.unit.test_infra import (
    REPO_ROOT,
    InfraChecks,
    assert_each_break_reported,
    break_copy,
    copy_repository,
    infra_checks,
    run_checks,
)

__all__ = ["infra_checks"]  # the session fixture, shared with test_infra.py


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- images: MLflow's client, mlflow-skinny ----------------------------------------------------


def test_every_image_extra_gets_mlflow_skinny_and_only_the_server_gets_mlflow() -> None:
    buildinfo = load(REPO_ROOT / "docker" / "buildinfo.py", "buildinfo")
    pyproject = REPO_ROOT / "pyproject.toml"
    for extras in ([], ["deploy"], ["training"], ["llm"]):
        reqs = buildinfo.requirements(pyproject, extras)
        assert [r for r in reqs if r.startswith("mlflow")] == ["mlflow-skinny>=3.1,<4"], extras
    assert [r for r in buildinfo.requirements(pyproject, ["mlflow-server"]) if r.startswith("mlflow")] == [
        "mlflow[auth]==3.17.2"
    ]


def test_the_cluster_mlflow_caches_credential_checks_for_at_most_five_minutes() -> None:
    """basic_auth.ini turns MLflow's credential cache on: every request would otherwise hash the
    password again (about half a CPU-second of the server's each); a rotated password is
    accepted by the other server processes for at most the TTL."""
    import configparser

    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(external_secret("mlflow-auth")["basic_auth.ini"])
    assert 1 <= ini.getint("mlflow", "auth_cache_ttl_seconds", fallback=0) <= 300


def test_the_cluster_mlflow_server_sets_every_variable_the_local_one_does(tmp_path: Path) -> None:
    """The Deployment's server container has the local stack's MLflow settings (today: no GenAI
    job runner, which would hold most of the container's memory limit at idle)."""
    from mlops.stack.services import Ports, default_services

    local = next(s for s in default_services(tmp_path, Ports()) if s.name == "mlflow").env
    assert local.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false"
    cluster = {e["name"]: e.get("value") for e in server_container()["env"]}
    assert {k: cluster.get(k) for k in local} == local


# --- the users sidecar (docker/mlflow-server/sync_users.py) ------------------------------------


class MemoryUsers:
    """The AuthServiceClient calls sync_users makes, on a dict."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.calls: list[str] = []

    def get_user(self, username: str) -> object:
        if username not in self.users:
            raise MlflowException(
                f"User with username={username} not found", error_code=RESOURCE_DOES_NOT_EXIST
            )
        return username

    def create_user(self, username: str, password: str) -> object:
        self.calls.append(f"create {username}")
        self.users[username] = password
        return username

    def update_user_password(self, username: str, password: str) -> object:
        self.calls.append(f"update {username}")
        self.users[username] = password
        return username


def sync_users() -> ModuleType:
    return load(REPO_ROOT / "docker" / "mlflow-server" / "sync_users.py", "sync_users")


def secret_volume(tmp_path: Path, users: dict[str, str]) -> Path:
    """A folder shaped like a mounted Secret: files behind Kubernetes' `..data` link."""
    data = tmp_path / "..2026_12_02_10_00_00.1"
    data.mkdir(parents=True)
    for name, password in users.items():
        (data / name).write_text(password)
    (tmp_path / "..data").symlink_to(data.name)
    for name in users:
        (tmp_path / name).symlink_to(f"..data/{name}")
    return tmp_path


def test_sync_creates_missing_users_and_sets_rotated_passwords_once(tmp_path: Path) -> None:
    module = sync_users()
    admin = MemoryUsers({"mlops-deployment": "old", "operator": "theirs"})
    volume = secret_volume(tmp_path / "users", {"mlops-training": "t1", "mlops-deployment": "d1"})
    applied: dict[str, str] = {}
    assert module.read_users(volume) == {"mlops-deployment": "d1", "mlops-training": "t1"}
    changed = module.sync(admin, module.read_users(volume), applied)
    assert sorted(changed) == ["mlops-deployment: password set", "mlops-training: created"]
    assert admin.users == {"mlops-deployment": "d1", "mlops-training": "t1", "operator": "theirs"}
    admin.calls.clear()
    assert module.sync(admin, module.read_users(volume), applied) == []  # nothing changed: no call
    assert admin.calls == []
    changed = module.sync(admin, {"mlops-training": "t2", "mlops-deployment": "d1"}, applied)
    assert changed == ["mlops-training: password set"]
    assert admin.users["mlops-training"] == "t2"


def test_an_empty_password_file_is_refused_and_nothing_is_synced(tmp_path: Path) -> None:
    module = sync_users()
    volume = secret_volume(tmp_path / "users", {"mlops-training": "t1", "mlops-evaluation": "  \n"})
    with pytest.raises(ValueError, match="empty password for user 'mlops-evaluation'"):
        module.read_users(volume)


def test_a_server_error_other_than_a_missing_user_is_raised() -> None:
    module = sync_users()

    class Refusing(MemoryUsers):
        def get_user(self, username: str) -> object:
            raise MlflowException("Permission denied", error_code=PERMISSION_DENIED)

    admin = Refusing()
    with pytest.raises(MlflowException, match="Permission denied"):
        module.sync(admin, {"mlops-training": "t1"}, {})
    assert admin.users == {}


# --- the identities check and its neighbours, on broken copies ---------------------------------

WRONG_FAMILY_ENV = (
    "env: [{name: MLFLOW_TRACKING_URI, value: x},"
    " {name: MLFLOW_TRACKING_USERNAME, valueFrom: {secretKeyRef: {name: mlflow-user-evaluation, key: username}}},"
    " {name: MLFLOW_TRACKING_PASSWORD, valueFrom: {secretKeyRef: {name: mlflow-user-evaluation, key: password}}}]"
)
# (file, text in the repository, broken text, check, what its finding says)
AUTH_BREAKAGES: list[tuple[str, str, str, str, str]] = [
    (
        "workflows/vllm-evaluation.yaml",
        "          - name: MLFLOW_TRACKING_PASSWORD\n"
        "            valueFrom:\n"
        "              secretKeyRef: {name: mlflow-user-evaluation, key: password}\n",
        "",
        "identities",
        "WorkflowTemplate mlops-workflows/vllm-evaluation template generate: sets MLFLOW_TRACKING_URI but no MLFLOW_TRACKING_PASSWORD",
    ),
    (
        "workflows/triton-training.yaml",
        "            valueFrom:\n              secretKeyRef: {name: mlflow-user-training, key: password}\n",
        "            value: hunter2\n",
        "identities",
        "MLFLOW_TRACKING_PASSWORD is not read from a Secret",
    ),
    (
        "workflows/triton-rollback.yaml",
        "secretKeyRef: {name: mlflow-user-deployment, key: username}",
        "secretKeyRef: {name: mlflow-user-nobody, key: username}",
        "identities",
        "username and password from different Secrets (mlflow-user-deployment, mlflow-user-nobody)",
    ),
    (
        "workflows/vllm-promote.yaml",
        "mlflow-user-deployment, key: username}",
        "mlflow-user-deployment, key: user}",
        "identities",
        "MLFLOW_TRACKING_USERNAME reads key 'user' of mlflow-user-deployment",
    ),
    (
        "workflows/llm-e2e.yaml",
        "env: *service-env",
        WRONG_FAMILY_ENV,
        "identities",
        "one identity per workflow: its templates use mlflow-user-deployment, mlflow-user-evaluation",
    ),
    (
        "infra/base/secrets/mlflow-clients.yaml",
        "        key: mlops/mlflow/users/training\n",
        "        key: mlops/mlflow/users/deployment\n",
        "identities",
        "Secret mlflow-user-training: the password of mlops-training is read from ('mlops/mlflow/users/deployment'",
    ),
    (
        "infra/base/secrets/mlflow-server.yaml",
        "    - secretKey: mlops-evaluation\n",
        "    - secretKey: mlops-evaluator\n",
        "identities",
        "MLflow user 'mlops-evaluation' (Secret mlflow-user-evaluation) is not among the users MLflow creates",
    ),
    (
        "infra/base/mlflow/mlflow.yaml",
        "            - --app-name=basic-auth\n",
        "",
        "identities",
        "MLflow does not run its basic-auth app",
    ),
    (
        "infra/vllm/vllm.yaml",
        "mountPath: /tmp/.mlflow",
        "mountPath: /tmp/mlflow",
        "identities",
        "Deployment mlops/vllm container slots: sets MLFLOW_TRACKING_URI but no MLFLOW_TRACKING_USERNAME",
    ),
    (
        "infra/base/secrets/mlflow-server.yaml",
        "  refreshInterval: 1h\n",
        "  refreshIntervall: 1h\n",
        "schema",
        "'refreshIntervall' was unexpected",
    ),
    (
        "infra/vllm/mlflow-client.yaml",
        "    name: aws-secrets-manager\n",
        "    name: aws-secret-manager\n",
        "refs",
        "ExternalSecret mlops/mlflow-user-vllm-slots: SecretStore 'aws-secret-manager' is not in the build",
    ),
    (
        "workflows/params/cluster.yaml",
        "judge-endpoint: http://vllm-judge.mlops.svc:8000",
        "judge-endpoint: http://vllm-judge.mlops.svc:8001",
        "refs",
        "judge-endpoint: http://vllm-judge.mlops.svc:8001: no overlay has a Service mlops/vllm-judge with port 8001",
    ),
    (
        "workflows/vllm-evaluation.yaml",
        'mlops.io/judge-client: "true"',
        'mlops.io/judge: "true"',
        "refs",
        "NetworkPolicy mlops-workflows/judge-client-egress: selector matches no pod template in the build",
    ),
    (
        "workflows/vllm-promote.yaml",
        'mlops.io/judge-client: "true"',
        'mlops.io/judge: "true"',
        "refs",
        "NetworkPolicy mlops-workflows/judge-client-egress: selector matches no pod template in the build",
    ),
    (
        "workflows/llm-probe.yaml",
        'mlops.io/judge-client: "true"',
        'mlops.io/judge: "true"',
        "refs",
        "NetworkPolicy mlops-workflows/judge-client-egress: selector matches no pod template in the build",
    ),
    (
        "docker/mlflow-server/requirements.txt",
        "mlflow[auth]==3.17.2",
        "mlflow==3.17.2",
        "images",
        "differs from pyproject.toml's mlflow-server extra: only here ['mlflow==3.17.2']",
    ),
    (
        "pyproject.toml",
        '"mlflow-skinny>=3.1,<4",',
        '"mlflow>=3.1,<4",',
        "images",
        "docker/triton-training/Dockerfile: installs the full 'mlflow>=3.1,<4' (pyproject.toml)",
    ),
]


def test_identity_checks_report_a_broken_copy(infra_checks: InfraChecks, tmp_path: Path) -> None:
    root = copy_repository(tmp_path / "repo")
    break_copy(root, AUTH_BREAKAGES)
    checks = sorted({check for *_, check, _ in AUTH_BREAKAGES})
    run, report = run_checks(
        infra_checks, root, tmp_path / "report.json", *(a for c in checks for a in ("--check", c))
    )
    assert run.returncode == 1
    assert_each_break_reported(report, AUTH_BREAKAGES)


def test_the_repository_passes_the_identities_check(infra_checks: InfraChecks, tmp_path: Path) -> None:
    run, report = run_checks(infra_checks, REPO_ROOT, tmp_path / "report.json", "--check", "identities")
    assert report["identities"]["findings"] == [], run.stdout
    assert "16 workflows and pods with an MLflow identity" in report["identities"]["notes"][0]
