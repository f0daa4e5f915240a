"""The local stack's manager: a port already in use is a clear error naming the option to change."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlops.errors import BadInput
from mlops.stack.manager import StackManager, free_port
from mlops.stack.services import Ports, ServiceSpec, client_env


def test_a_taken_port_names_the_service_the_flag_and_the_env_var(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        spec = ServiceSpec(
            name="triton",
            port=free_port(),
            command=["true"],
            health_path="/",
            description="x",
            ports={"triton_http": free_port(), "triton_grpc": taken},
        )
        manager = StackManager(tmp_path, [spec], Ports())
        with pytest.raises(BadInput) as error:
            manager.up(progress=lambda line: None)
    message = str(error.value)
    assert f"port {taken} for triton is taken" in message
    assert "--triton-grpc-port" in message and "MLOPS_TRITON_GRPC_PORT" in message
    assert manager.pid(spec) is None  # nothing was started


def test_ports_come_from_flags_then_env_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_S3_PORT", "9100")
    monkeypatch.setenv("MLOPS_TRITON_GRPC_PORT", "9101")
    ports = Ports.from_env({"mlflow": 5100, "s3": None})
    assert (ports.mlflow, ports.s3, ports.triton_grpc, ports.triton_http) == (5100, 9100, 9101, 8000)
    env = client_env(ports)
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5100"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9100"
    assert env["TRITON_GRPC_URL"] == "127.0.0.1:9101"
