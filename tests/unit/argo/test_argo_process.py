"""`run_process`: every line a step printed reaches the console before the step counts as done."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from mlops.argo import process
from mlops.argo.process import run_process


def run(tmp_path: Path, code: str, sink: process.LineSink) -> process.ProcessResult:
    return run_process(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log_path=tmp_path / "step.log",
        sink=sink,
        deadline=None,
        cancel=threading.Event(),
        kill_grace_seconds=1.0,
    )


def test_a_slow_console_still_gets_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the console takes 4x the idle limit to print what the step wrote just before it exited (a
    # loaded machine): a reader cut off at the limit would lose the last lines (the exit handler's
    # summary, the last thing `mlops run` prints)
    monkeypatch.setattr(process, "PIPE_IDLE_S", 0.25)
    lines: list[str] = []

    def slow_sink(line: str) -> None:
        time.sleep(0.01)
        lines.append(line)

    result = run(tmp_path, "print('\\n'.join(f'line {i}' for i in range(100)))", slow_sink)
    assert result.exit_code == 0
    assert lines == [f"line {i}" for i in range(100)]


def test_a_pipe_held_open_by_a_leftover_process_does_not_hang_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "PIPE_IDLE_S", 0.5)
    lines: list[str] = []
    code = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
        "print(child.pid, flush=True)"
    )
    started = time.monotonic()
    result = run(tmp_path, code, lines.append)
    elapsed = time.monotonic() - started
    os.kill(int(lines[0]), signal.SIGKILL)
    assert result.exit_code == 0 and len(lines) == 1
    assert elapsed < 20  # not the 30 s the leftover process holds the pipe
