"""`synchronization.mutexes` locally: one `fcntl.flock` file per mutex name, shared by all runs."""

from __future__ import annotations

import fcntl
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class MutexWaitAborted(RuntimeError):
    """The deadline passed, or the run was cancelled, while waiting for a mutex."""


def lock_file(lock_dir: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return lock_dir / f"{safe}.lock"


def _holder_of(handle: IO[str]) -> str:
    try:
        handle.seek(0)
        return handle.read().strip() or "another run"
    except OSError:
        return "another run"


@contextmanager
def hold_mutexes(
    names: list[str],
    lock_dir: Path,
    *,
    holder: str,
    deadline: tuple[float, str] | None,
    cancel: threading.Event,
    on_wait: Callable[[str, str], None],
) -> Iterator[None]:
    """Hold every named mutex (taken in sorted order, so two runs cannot deadlock) for the block."""
    held: list[IO[str]] = []
    try:
        for name in sorted(set(names)):
            lock_dir.mkdir(parents=True, exist_ok=True)
            handle: IO[str] = open(lock_file(lock_dir, name), "a+")  # noqa: SIM115 - closed in finally
            held.append(handle)
            announced = False
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        on_wait(name, _holder_of(handle))
                        announced = True
                    if cancel.is_set():
                        raise MutexWaitAborted(f"cancelled while waiting for mutex {name!r}") from None
                    if deadline is not None and time.monotonic() >= deadline[0]:
                        raise MutexWaitAborted(f"{deadline[1]} while waiting for mutex {name!r}") from None
                    time.sleep(0.05)
            handle.seek(0)
            handle.truncate()
            handle.write(holder + "\n")
            handle.flush()
        yield
    finally:
        for handle in reversed(held):
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()
