"""Start, stop and inspect the local servers as detached processes under a state folder.

Layout of the state folder (git-ignored `.stack/` by default):
`<service>/pid`, `<service>/server.log`, data of each service, and `stack.json` with the
ports of the running stack (read by `mlops status` and `mlops env`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from mlops.errors import BadInput, Transient
from mlops.stack.services import Ports, ServiceSpec


@dataclass
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    running: bool
    healthy: bool
    description: str
    skip_reason: str = ""
    ports: dict[str, int] = field(default_factory=dict)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours still answers kill(0); reap it if so
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def healthy(spec: ServiceSpec, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(spec.url + spec.health_path, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class StackManager:
    """Lifecycle of the local stack's processes."""

    def __init__(self, state_dir: Path, services: list[ServiceSpec], ports: Ports) -> None:
        self.state_dir = state_dir
        self.services = services
        self.ports = ports

    def _dir(self, spec: ServiceSpec) -> Path:
        return self.state_dir / spec.name

    def log_path(self, name: str) -> Path:
        return self.state_dir / name / "server.log"

    def pid(self, spec: ServiceSpec) -> int | None:
        pid_file = self._dir(spec) / "pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            return None
        return pid if _pid_alive(pid) else None

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(
                name=spec.name,
                url=spec.url,
                pid=self.pid(spec),
                running=self.pid(spec) is not None,
                healthy=healthy(spec),
                description=spec.description,
                skip_reason=spec.skip_reason,
                ports=spec.bound_ports(),
            )
            for spec in self.services
        ]

    def up(self, progress: Callable[[str], None] = print) -> None:
        """Start every service not running yet, then wait until each answers its health check."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started: list[ServiceSpec] = []
        for spec in self.services:
            if self.pid(spec) is not None:
                progress(f"{spec.name}: already running (pid {self.pid(spec)}) at {spec.url}")
                continue
            if spec.skip_reason:
                progress(f"{spec.name}: not started: {spec.skip_reason}")
                continue
            for field_name, port in spec.bound_ports().items():
                if not port_is_free(port):
                    option = field_name.replace("_", "-")
                    raise BadInput(
                        f"port {port} for {spec.name} is taken by another process; pick another with "
                        f"--{option}-port or MLOPS_{field_name.upper()}_PORT (or stop what holds it)"
                    )
            self._start(spec)
            started.append(spec)
            progress(f"{spec.name}: starting on {spec.url} (log: {self.log_path(spec.name)})")
        for spec in started:
            self._wait_healthy(spec, progress)
            if spec.after_start:
                self._after_start(spec, progress)
        (self.state_dir / "stack.json").write_text(json.dumps({"ports": asdict(self.ports)}, indent=2))

    def _after_start(self, spec: ServiceSpec, progress: Callable[[str], None]) -> None:
        """The service's post-start command; its output goes to the service's log."""
        with self.log_path(spec.name).open("ab") as log:
            done = subprocess.run(
                spec.after_start,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env},
                check=False,
            )
        if done.returncode != 0:
            raise Transient(
                f"{spec.name}: post-start step failed (exit {done.returncode}); last log lines:\n"
                f"{self.tail(spec.name, 20)}"
            )
        progress(f"{spec.name}: post-start step done ({' '.join(spec.after_start[1:3])})")

    def _start(self, spec: ServiceSpec) -> None:
        directory = self._dir(spec)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "artifacts").mkdir(exist_ok=True)
        for name, text in spec.files.items():
            (directory / name).write_text(text)
        log = self.log_path(spec.name).open("ab")
        process = subprocess.Popen(
            spec.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env={**os.environ, **spec.env},
            start_new_session=True,  # survives `mlops up` and gets its own process group for `down`
        )
        (directory / "pid").write_text(str(process.pid))

    def _wait_healthy(self, spec: ServiceSpec, progress: Callable[[str], None]) -> None:
        deadline = time.monotonic() + spec.start_timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            if healthy(spec):
                progress(f"{spec.name}: healthy after {time.monotonic() - started:.1f}s")
                return
            if self.pid(spec) is None:
                tail = self.tail(spec.name, 20)
                raise Transient(f"{spec.name} exited during start; last log lines:\n{tail}")
            time.sleep(0.5)
        raise Transient(
            f"{spec.name} not healthy after {spec.start_timeout_s:.0f}s; see {self.log_path(spec.name)}"
        )

    def down(self, progress: Callable[[str], None] = print) -> None:
        """Stop every service: SIGTERM to its process group, SIGKILL after 15 s."""
        for spec in reversed(self.services):
            pid = self.pid(spec)
            if pid is None:
                progress(f"{spec.name}: not running")
                continue
            self._terminate(pid)
            (self._dir(spec) / "pid").unlink(missing_ok=True)
            progress(f"{spec.name}: stopped (pid {pid})")

    @staticmethod
    def _terminate(pid: int, grace_s: float = 15.0) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def tail(self, name: str, lines: int = 50) -> str:
        path = self.log_path(name)
        if not path.exists():
            return f"(no log yet at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
