"""MLflow's basic-auth app as the cluster runs it, on a real `mlflow server` (SQLite instead of PostgreSQL).

The server side runs in the `mlflow-server` extra's own environment (the image's pins,
docker/mlflow-server/requirements.txt); the clients are the project's. The configuration file is rendered from the ExternalSecret template in infra/base/secrets (with
passwords holding the characters that break URIs and configparser), the server starts through
the image's entrypoint with the secret files the pod mounts, the auth tables come from the init
container's command, and the users sidecar's script creates the workflow families' users. Then:
no credentials or a wrong password is refused, each family's user may write what its workflows
write, Prometheus' user may scrape /metrics, and a rotated password replaces the old one.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from mlops.stack.services import mlflow_python
from tests.mlflow_manifests import external_secret, server_container

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNC_USERS = REPO_ROOT / "docker" / "mlflow-server" / "sync_users.py"
SERVE_METRICS = REPO_ROOT / "docker" / "mlflow-server" / "serve_metrics.py"
ENTRYPOINT = REPO_ROOT / "docker" / "mlflow-server" / "entrypoint.sh"
DB_PASSWORD = "db%pass@word:1/x"
ADMIN_PASSWORD = "Adm1n%pass@word:42"
USERS = {
    "mlops-training": "training-pass-0001",
    "mlops-deployment": "deployment-pass-0001",
    "mlops-evaluation": "evaluation%pass:0001",
    "mlops-vllm-slots": "slots-pass-00000001",
}


def render(template: str, values: dict[str, str]) -> str:
    """The Go-template forms the ExternalSecrets use: {{ .x }}, `| urlquery`, `| replace "a" "b"`."""

    def expand(match: re.Match[str]) -> str:
        name, *pipes = [part.strip() for part in match.group(1).split("|")]
        value = values[name.lstrip(".")]
        for pipe in pipes:
            if pipe == "urlquery":
                value = quote_plus(value)
            elif replace := re.fullmatch(r'replace "(.*)" "(.*)"', pipe):
                value = value.replace(replace.group(1), replace.group(2))
            else:
                raise AssertionError(f"template function not rendered here: {pipe}")
        return value

    return re.sub(r"\{\{(.*?)\}\}", expand, template)


def deployment_arg(flag: str) -> str:
    """`flag=value` as the MLflow Deployment's server container passes it (infra/base/mlflow)."""
    return next(a for a in server_container()["args"] if a.startswith(f"{flag}="))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(server_python: Path, uri: str) -> dict[str, object]:
    """`uri` as the MLflow server reads it: SQLAlchemy's make_url, in the server's environment."""
    code = (
        "import json, sys; from sqlalchemy.engine import make_url; u = make_url(sys.argv[1]); "
        "print(json.dumps([u.drivername, u.username, u.password, u.host, u.port, u.database]))"
    )
    done = subprocess.run([str(server_python), "-c", code, uri], capture_output=True, text=True, check=True)
    keys = ("drivername", "username", "password", "host", "port", "database")
    return dict(zip(keys, json.loads(done.stdout), strict=True))


def test_rendered_auth_config_survives_uri_and_configparser_characters(server_python: Path) -> None:
    values = {"dbPassword": DB_PASSWORD, "adminPassword": ADMIN_PASSWORD, "flaskSecretKey": "k"}
    ini = render(external_secret("mlflow-auth")["basic_auth.ini"], values)
    config = configparser.ConfigParser()
    config.read_string(ini)
    assert database_url(server_python, config["mlflow"]["database_uri"]) == {
        "drivername": "postgresql+psycopg2",
        "username": "mlflow",
        "password": DB_PASSWORD,
        "host": "mlflow-postgres",
        "port": 5432,
        "database": "mlflow",
    }
    assert config["mlflow"]["admin_password"] == ADMIN_PASSWORD
    assert config["mlflow"]["default_permission"] == "EDIT"
    backend = render(external_secret("mlflow-db")["backend-store-uri"], {"password": DB_PASSWORD})
    assert database_url(server_python, backend)["password"] == DB_PASSWORD


@pytest.fixture(scope="module")
def server_python() -> Path:
    """The interpreter of the `mlflow-server` environment (created on first use, about a minute)."""
    return Path(mlflow_python())


@pytest.fixture(scope="module")
def auth_server(
    server_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path, str]]:
    """`mlflow server --app-name basic-auth` started as the pod starts it; (URL, users folder)."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    secrets = root / "mlflow-auth"
    secrets.mkdir()
    values = {"dbPassword": DB_PASSWORD, "adminPassword": ADMIN_PASSWORD, "flaskSecretKey": "flask-key-1"}
    template = external_secret("mlflow-auth")
    database = f"sqlite:///{root / 'mlflow.db'}"
    ini = render(template["basic_auth.ini"], values)
    ini = re.sub(r"^database_uri = .*$", f"database_uri = {database}", ini, flags=re.M)
    for key in template:
        (secrets / key).write_text(ini if key == "basic_auth.ini" else render(template[key], values))
    (root / "backend-store-uri").write_text(database)
    users = root / "mlflow-users"
    users.mkdir()
    for name, password in USERS.items():
        (users / name).write_text(password)
    bin_dir = str(server_python.parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "MLFLOW_BACKEND_STORE_URI_FILE": str(root / "backend-store-uri"),
        "MLFLOW_AUTH_CONFIG_PATH": str(secrets / "basic_auth.ini"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY_FILE": str(secrets / "flask-secret-key"),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # as the Deployment sets it
    }
    for variable in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(variable, None)
    # the init container: tracking schema, then basic-auth's tables
    for command in (
        [str(server_python), "-m", "mlflow", "db", "upgrade", database],
        [str(server_python), "-m", "mlflow.server.auth", "db", "upgrade", "--url", database],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    port = free_port()
    log = (root / "server.log").open("w")
    server = subprocess.Popen(
        [
            "sh",
            str(ENTRYPOINT),
            "--app-name=basic-auth",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            # the Deployment's Host allow-list: these tests, like the pod's `users` sidecar, call
            # the server on 127.0.0.1
            deployment_arg("--allowed-hosts"),
            f"--expose-prometheus={root / 'prometheus'}",
            f"--artifacts-destination={root / 'artifacts'}",
        ],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    sidecar: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (root / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
            time.sleep(1)
        metrics_port = free_port()
        sidecar = subprocess.Popen(
            [
                str(server_python),
                str(SERVE_METRICS),
                f"--multiproc-dir={root / 'prometheus'}",
                f"--port={metrics_port}",
                "--host=127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield url, users, server_python, f"http://127.0.0.1:{metrics_port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        if sidecar is not None:
            sidecar.terminate()
            sidecar.wait(timeout=30)
        log.close()


def sync(
    server: tuple[str, Path, Path], users: Path, admin_password_file: Path
) -> subprocess.CompletedProcess[str]:
    url, _, python, _ = server
    env = {**os.environ, "MLFLOW_TRACKING_USERNAME": "mlflow-admin"}
    env.pop("MLFLOW_TRACKING_PASSWORD", None)
    return subprocess.run(
        [
            str(python),
            str(SYNC_USERS),
            f"--users-dir={users}",
            f"--tracking-uri={url}",
            f"--admin-password-file={admin_password_file}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_user(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_only_the_families_users_reach_mlflow(
    auth_server: tuple[str, Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, users, _, metrics_url = auth_server
    admin_file = users.parent / "mlflow-auth" / "admin-password"
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search).status_code == 401  # before any user exists, nobody but the admin
    done = sync(auth_server, users, admin_file)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split("\n")[:-1]) == sorted(f"{name}: created" for name in USERS)

    assert httpx.get(f"{url}/health").status_code == 200  # probes need no credentials
    assert httpx.get(search).status_code == 401
    assert httpx.get(search, auth=("mlops-training", "wrong-password-1")).status_code == 401
    # /metrics on the server is for admins only (basic-auth's fail-closed default): hence the sidecar
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/metrics", auth=("mlops-training", USERS["mlops-training"])).status_code == 403
    assert httpx.get(f"{url}/metrics", auth=("mlflow-admin", ADMIN_PASSWORD)).status_code == 200
    sidecar = httpx.get(f"{metrics_url}/metrics")  # no credentials: the NetworkPolicy guards :9100
    assert sidecar.status_code == 200
    assert "mlflow_http_request_total{" in sidecar.text and 'status="401"' in sidecar.text

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    as_user(monkeypatch, "mlops-training", USERS["mlops-training"])
    client.create_registered_model("auth-check")
    version = client.create_model_version("auth-check", source="s3://mlops-models/auth-check/1")
    client.set_registered_model_alias("auth-check", "candidate", version.version)
    as_user(monkeypatch, "mlops-evaluation", USERS["mlops-evaluation"])  # a `%` and a `:` in it
    client.set_registered_model_alias("auth-check", "eval-passed", version.version)
    as_user(monkeypatch, "mlops-deployment", USERS["mlops-deployment"])
    client.set_registered_model_alias("auth-check", "live", version.version)
    as_user(monkeypatch, "mlops-vllm-slots", USERS["mlops-vllm-slots"])
    aliases = client.get_registered_model("auth-check").aliases
    assert aliases == {"candidate": "1", "eval-passed": "1", "live": "1"}


def test_a_rotated_password_replaces_the_old_one(
    auth_server: tuple[str, Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, users, _, _ = auth_server
    admin_file = users.parent / "mlflow-auth" / "admin-password"
    assert sync(auth_server, users, admin_file).returncode == 0
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    old = ("mlops-training", USERS["mlops-training"])
    assert httpx.get(search, auth=old).status_code == 200
    (users / "mlops-training").write_text("training-pass-0002")
    done = sync(auth_server, users, admin_file)
    assert done.returncode == 0, done.stderr
    assert "mlops-training: password set" in done.stdout
    assert httpx.get(search, auth=old).status_code == 401
    assert httpx.get(search, auth=("mlops-training", "training-pass-0002")).status_code == 200


def test_a_wrong_admin_password_changes_no_user(
    auth_server: tuple[str, Path, Path, str], tmp_path: Path
) -> None:
    url, _, _, _ = auth_server
    wrong = tmp_path / "admin-password"
    wrong.write_text("not-the-admin-password")
    changed = tmp_path / "users"
    changed.mkdir()
    (changed / "mlops-deployment").write_text("deployment-pass-0002")
    done = sync(auth_server, changed, wrong)
    assert done.returncode == 1
    assert "sync failed" in done.stderr
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, auth=("mlops-deployment", USERS["mlops-deployment"])).status_code == 200
