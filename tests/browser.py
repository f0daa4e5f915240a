"""Look at a page as a person does: Debian's headless Chromium renders it, and the test reads the
screenshot, the DOM after scripts ran, and the console's uncaught errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNCAUGHT = re.compile(r'CONSOLE[^\]]*\] "(Uncaught [^"]*)"')


@dataclass(frozen=True)
class PageView:
    screenshot: Path
    dom: str
    script_errors: list[str]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("chromium is not installed: scripts/ensure_system.sh installs Debian's package")
    return found


def view(page: Path, screenshot: Path, *, width: int = 1400, height: int = 1000) -> PageView:
    """Render `page` (a file) headless: a PNG screenshot, the DOM, and every uncaught script error."""
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    url = page.resolve().as_uri()
    shot = subprocess.run(
        [*base, f"--screenshot={screenshot}", f"--window-size={width},{height}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    if not screenshot.exists():
        raise RuntimeError(f"chromium wrote no screenshot (exit {shot.returncode}): {shot.stderr[-2000:]}")
    errors = UNCAUGHT.findall(shot.stderr) + UNCAUGHT.findall(dom.stderr)
    return PageView(screenshot, dom.stdout, sorted(set(errors)))
