"""A container command for the sandbox cases: write a file, wait, read it back, report what it saw.

`python probe.py PATH VALUE [SLEEP]`: writes VALUE to PATH, sleeps, then writes to
$MLOPS_OUTPUTS_DIR: `readback` (PATH's content after the sleep), `tmpdir` (tempfile's folder)
and `env` (the names of the environment's variables, one per line).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    path, value = Path(argv[0]), argv[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    time.sleep(float(argv[2]) if len(argv) > 2 else 0.0)
    outputs = Path(os.environ["MLOPS_OUTPUTS_DIR"])
    (outputs / "readback").write_text(path.read_text())
    (outputs / "tmpdir").write_text(tempfile.gettempdir())
    (outputs / "env").write_text("\n".join(sorted(os.environ)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
