"""One container template as a local subprocess: interpreter by image, env, logs, deadline, outputs."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTAINER_OUTPUTS = "/tmp/outputs/"
# Host variables a step sees (fnmatch patterns); every other host variable stays out, as it
# would from a pod. The stack's clients (`mlops env`), locale, the tools' lookup paths, caches,
# thread and device settings. `LocalEnvironment.pass_env` adds more.
ENV_ALLOW = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "XDG_*",
    "MPLBACKEND",
    "LD_LIBRARY_PATH",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "MLOPS_*",
    "MLFLOW_*",
    "AWS_*",
    "TRITON_*",
    "VLLM_*",
    "PROMETHEUS_*",
    "HF_*",
    "TRANSFORMERS_*",
    "TORCH_*",
    "TOKENIZERS_*",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUDA_*",
    "NVIDIA_*",
)
_TMP_PREFIX = re.compile(r"(^|=|:)/tmp(?=/|$)")
PYTHON_COMMAND = re.compile(r"^python(3(\.\d+)?)?$")
RESULT_LIMIT = 256 * 1024  # Argo keeps at most 256 KiB of stdout as outputs.result
# after a step exits: how long its output pipes may stay open with nothing to read before the
# reader gives up (a background process the step left behind holds them open)
PIPE_IDLE_S = 5.0


def repository_root() -> Path:
    """The repository this package lives in (mlops/argo/process.py -> three levels up)."""
    return Path(__file__).resolve().parents[2]


@dataclass
class LocalEnvironment:
    """How container templates become local processes, and where runs keep logs and locks."""

    repo_root: Path = field(default_factory=repository_root)
    state_dir: Path | None = None  # default: <repo_root>/.stack
    python: str = sys.executable
    image_map: dict[str, str] = field(default_factory=dict)  # image (glob allowed) -> interpreter
    extra_env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()  # more host variables (fnmatch patterns) on top of ENV_ALLOW
    kill_grace_seconds: float = 5.0  # SIGTERM, then SIGKILL after this long
    # retryStrategy backoff waits (and backoff.maxDuration) multiplied by this: 1 is Argo's timing;
    # tests and quick local iteration shorten it (`mlops run --retry-backoff-scale`)
    retry_backoff_scale: float = 1.0

    @property
    def state(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.repo_root / ".stack"

    @property
    def runs_dir(self) -> Path:
        return self.state / "runs"

    @property
    def locks_dir(self) -> Path:
        return self.state / "locks"

    def interpreter_for(self, image: str | None) -> str:
        """The Python of the local environment standing in for `image` (exact match, then globs)."""
        if image:
            if image in self.image_map:
                return self.image_map[image]
            for pattern, python in self.image_map.items():
                if fnmatch.fnmatchcase(image, pattern):
                    return python
        return self.python

    def command_for(self, command: list[str], image: str | None) -> list[str]:
        """`python`/`python3` (any directory) becomes the mapped interpreter; other commands run as given."""
        if command and PYTHON_COMMAND.match(os.path.basename(command[0])):
            return [self.interpreter_for(image), *command[1:]]
        return list(command)

    def process_env(
        self,
        template_env: Mapping[str, str],
        sandbox: Path,
        host: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """A node's environment: allow-listed host variables, extra_env, the template's env, then the sandbox.

        Like a pod, a step does not inherit the host's whole environment (credentials, tokens,
        settings of other tools): only ENV_ALLOW and `pass_env` patterns get through. `/tmp`
        is the node's own (TMPDIR), `$MLOPS_OUTPUTS_DIR` is its /tmp/outputs.
        """
        source = os.environ if host is None else host
        patterns = (*ENV_ALLOW, *self.pass_env)
        env = {k: v for k, v in source.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
        env.update(self.extra_env)
        existing = env.get("PYTHONPATH") or source.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.repo_root) + (os.pathsep + existing if existing else "")
        env["PYTHONUNBUFFERED"] = "1"
        env.update(template_env)
        tmp = sandbox / "tmp"
        env.update({"TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)})
        env["MLOPS_OUTPUTS_DIR"] = str(outputs_dir(sandbox))
        return env

    def output_path(self, path: str, sandbox: Path) -> Path:
        """Where a `valueFrom.path` lives locally: inside the node's sandbox, never on the host.

        A pod's filesystem is its own, so `/tmp/outputs/x` is `<sandbox>/tmp/outputs/x` and any
        other absolute path is looked up below the sandbox too: a stale host file never becomes an
        output (a path the step did not write falls back to valueFrom.default, as in Argo).
        """
        return sandbox / path.lstrip("/")


def outputs_dir(sandbox: Path) -> Path:
    """A node's /tmp/outputs: where `$MLOPS_OUTPUTS_DIR` points."""
    return sandbox / CONTAINER_OUTPUTS.strip("/")


def sandbox_text(text: str, sandbox: Path) -> str:
    """A command-line or env value with `/tmp` (as a whole path, or after `=` / `:`) moved into the sandbox."""
    return _TMP_PREFIX.sub(lambda m: m.group(1) + str(sandbox / "tmp"), text)


@dataclass
class ProcessResult:
    """How one attempt of a container ended."""

    exit_code: int | None
    duration: float
    stdout: str = ""
    stderr_tail: list[str] = field(default_factory=list)
    killed_reason: str | None = None  # set when the deadline (or a cancel) ended the process
    start_error: str | None = None


LineSink = Callable[[str], None]


class _Stream(threading.Thread):
    """Copy one pipe to the log file and to the console, splitting on newlines and carriage returns."""

    def __init__(
        self, fd: int, log: Any, log_lock: threading.Lock, sink: LineSink | None, keep: bool
    ) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.log = log
        self.log_lock = log_lock
        self.sink = sink
        self.keep = keep
        self.captured = bytearray()
        self.tail: deque[str] = deque(maxlen=20)
        self._last_progress = 0.0
        self.last_active = time.monotonic()  # when this thread last read or emitted something

    def drain(self, idle_timeout: float) -> None:
        """Wait until the pipe is at EOF and every line is emitted; give up only after `idle_timeout`
        seconds without anything read (a grandchild that outlives the step holds the pipe open).

        A busy thread is never cut short: on a loaded machine the last lines of a step (the exit
        handler's summary) would otherwise be lost when `mlops run` exits."""
        while self.is_alive():
            self.join(timeout=0.2)
            if time.monotonic() - self.last_active > idle_timeout:
                return

    def run(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            self.last_active = time.monotonic()
            if not chunk:
                break
            with self.log_lock:
                self.log.write(chunk)
                self.log.flush()
            if self.keep and len(self.captured) < RESULT_LIMIT:
                self.captured.extend(chunk[: RESULT_LIMIT - len(self.captured)])
            pending += chunk
            pending = self._emit_lines(pending)
        if pending:
            self._line(pending.decode(errors="replace"), final=True)
        os.close(self.fd)

    def _emit_lines(self, data: bytes) -> bytes:
        while True:
            cut = min((i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                return data
            is_progress = data[cut : cut + 1] == b"\r" and data[cut + 1 : cut + 2] != b"\n"
            self._line(data[:cut].decode(errors="replace"), final=not is_progress)
            data = data[cut + 1 :]

    def _line(self, line: str, final: bool) -> None:
        line = line.rstrip()
        if not line:
            return
        self.tail.append(line)
        if self.sink is None:
            return
        now = time.monotonic()
        if not final and now - self._last_progress < 1.0:
            return  # a progress bar redrawn with \r: at most one line a second
        self._last_progress = now
        self.sink(line)
        self.last_active = time.monotonic()


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_process(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    sink: LineSink | None,
    deadline: tuple[float, str] | None,
    cancel: threading.Event,
    kill_grace_seconds: float,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> ProcessResult:
    """Run `argv` to completion, streaming output; kill its process group at the deadline."""
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (out_read, out_write, err_read, err_write):
                os.close(fd)
            message = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
            log.write(f"{message}\n".encode())
            return ProcessResult(None, time.monotonic() - started, start_error=message)
        os.close(out_write)
        os.close(err_write)
        if on_start is not None:
            on_start(proc)
        lock = threading.Lock()
        streams = [
            _Stream(out_read, log, lock, sink, keep=True),
            _Stream(err_read, log, lock, sink, keep=False),
        ]
        for stream in streams:
            stream.start()
        killed: str | None = None
        while proc.poll() is None:
            if cancel.is_set():
                killed = "cancelled"
            elif deadline is not None and time.monotonic() >= deadline[0]:
                killed = deadline[1]
            if killed:
                _kill_group(proc, kill_grace_seconds)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        for stream in streams:
            stream.drain(idle_timeout=PIPE_IDLE_S)
        if killed:
            log.write(f"killed: {killed}\n".encode())
    return ProcessResult(
        exit_code=proc.returncode,
        duration=time.monotonic() - started,
        stdout=streams[0].captured.decode(errors="replace"),
        stderr_tail=list(streams[1].tail),
        killed_reason=killed,
    )
