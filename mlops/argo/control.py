"""Control of a running local workflow from another terminal: `mlops resume RUN`, `mlops stop RUN`.

A run keeps `<state>/runs/<run>/control/`: `active` (the pid of `mlops run`) while it runs, one
file under `suspended/` per node waiting at a suspend template, and the requests the commands
write, `resumed` (a timestamp: every node suspended before it resumes, as `argo resume` resumes
every suspended node) and `stop` (`argo stop`: running nodes fail, exit handlers still run).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path


class RunNotFound(ValueError):
    """No run of that name, or the run is not in the state the command needs; the message says which."""


def _file_name(node_path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._()-]", "_", node_path) or "root"


class RunControl:
    """The control folder of one run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.folder = run_dir / "control"

    # --- written by the run -------------------------------------------------------------------

    def start(self) -> None:
        (self.folder / "suspended").mkdir(parents=True, exist_ok=True)
        (self.folder / "active").write_text(str(os.getpid()))

    def finish(self) -> None:
        (self.folder / "active").unlink(missing_ok=True)

    def suspend(self, node_path: str) -> int:
        """Record that `node_path` waits; returns the time (ns) it started waiting."""
        since = time.time_ns()
        (self.folder / "suspended").mkdir(parents=True, exist_ok=True)
        (self.folder / "suspended" / _file_name(node_path)).write_text(str(since))
        return since

    def unsuspend(self, node_path: str) -> None:
        (self.folder / "suspended" / _file_name(node_path)).unlink(missing_ok=True)

    def resumed_since(self, since: int) -> bool:
        """Whether `mlops resume` was asked for at or after `since` (ns)."""
        try:
            return int((self.folder / "resumed").read_text().strip() or 0) >= since
        except (OSError, ValueError):
            return False

    def stop_requested(self) -> bool:
        return (self.folder / "stop").exists()

    # --- read and written by the commands -----------------------------------------------------

    @property
    def active(self) -> bool:
        return (self.folder / "active").is_file()

    def suspended(self) -> list[str]:
        folder = self.folder / "suspended"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def request_resume(self) -> None:
        (self.folder / "resumed").write_text(str(time.time_ns()))

    def request_stop(self) -> None:
        (self.folder / "stop").write_text(str(time.time_ns()))


def active_runs(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        return []
    return sorted(p.name for p in runs_dir.iterdir() if RunControl(p).active)


def control_for(runs_dir: Path, name: str) -> RunControl:
    """The control of a running run; RunNotFound names the running ones otherwise."""
    run_dir = runs_dir / name
    control = RunControl(run_dir)
    if not control.active:
        running = ", ".join(active_runs(runs_dir)) or "none"
        state = "has finished" if run_dir.is_dir() else "does not exist"
        raise RunNotFound(f"run {name!r} {state} in {runs_dir} (running: {running})")
    return control


def resume(runs_dir: Path, name: str) -> list[str]:
    """`mlops resume RUN`: resume every node waiting at a suspend template; the nodes resumed."""
    control = control_for(runs_dir, name)
    waiting = control.suspended()
    if not waiting:
        raise RunNotFound(f"run {name!r} is not suspended: no node waits at a suspend template")
    control.request_resume()
    return waiting


def stop(runs_dir: Path, name: str) -> None:
    """`mlops stop RUN`: fail the running nodes (a suspended one included), then run the exit handlers."""
    control_for(runs_dir, name).request_stop()
