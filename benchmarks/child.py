"""A measurement in a process of its own: the benchmarks' children print their figures as JSON on
their last line of output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def child_figures(args: list[str], env: Mapping[str, str], timeout: float | None = None) -> dict[str, Any]:
    """`python ARGS` from the repository root; the JSON object on its last line of output."""
    answer = subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    figures: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return figures
