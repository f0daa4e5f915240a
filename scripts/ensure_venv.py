"""Create (once) a virtual environment for a set of extras, cached outside the clone.

Stdlib only: it runs before anything is installed. The cache key is a hash of the
dependency spec (core + chosen extras) and the Python version, so a changed spec gets a
fresh environment and an unchanged one is reused across clones and runs. The project itself
is not installed into the environment (callers put the repository on PYTHONPATH), so one
cached environment serves every clone. Prints the environment's path on stdout.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> tuple[list[str], list[str]]:
    """The requirements of `extras` and the distributions to remove after installing them.

    `[tool.mlops-venv.<extra>]` in pyproject can set `core = false` (a server environment that
    needs none of the project's core dependencies) and `uninstall = [...]` (distributions pulled
    in by a dependency that break it, e.g. CUDA torchvision beside a CPU torch).
    """
    data = tomllib.loads(pyproject.read_text())
    project = data["project"]
    options = data.get("tool", {}).get("mlops-venv", {})
    with_core = all(options.get(extra, {}).get("core", True) for extra in extras)
    reqs = list(project.get("dependencies", [])) if with_core else []
    uninstall: list[str] = []
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"ensure_venv: unknown extra {extra!r}; known: {sorted(optional)}")
        reqs.extend(optional[extra])
        uninstall.extend(options.get(extra, {}).get("uninstall", []))
    return reqs, uninstall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--extras", default="training,deploy,dev", help="comma-separated extras")
    parser.add_argument("--pyproject", default=str(Path(__file__).resolve().parent.parent / "pyproject.toml"))
    parser.add_argument(
        "--cache",
        default=os.environ.get("MLOPS_VENV_CACHE", str(Path.home() / ".cache" / "mlops-k8s" / "venvs")),
    )
    args = parser.parse_args()
    extras = [e for e in args.extras.split(",") if e]
    reqs, uninstall = requirements(Path(args.pyproject), extras)
    spec: dict[str, object] = {"python": sys.version.split()[0], "requirements": reqs}
    if uninstall:
        spec["uninstall"] = uninstall
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    target = Path(args.cache) / f"{'-'.join(extras)}-{key}"
    marker = target / ".complete"
    if marker.exists():
        print(target)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    # One installer per environment: a second caller (parallel make targets, two clones) waits for
    # the first instead of deleting its half-made venv.
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            print(target)
            return 0
        return install(target, reqs, uninstall, spec)


def install(target: Path, reqs: list[str], uninstall: list[str], spec: dict[str, object]) -> int:
    marker = target / ".complete"
    if target.exists():
        shutil.rmtree(target)  # an earlier install was interrupted
    print(
        f"ensure_venv: creating {target} ({len(reqs)} requirements; torch alone takes minutes)",
        file=sys.stderr,
    )
    venv.EnvBuilder(with_pip=True).create(target)
    py = target / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, stdout=sys.stderr)
    subprocess.run(
        [py, "-m", "pip", "install", "--progress-bar", "off", *reqs], check=True, stdout=sys.stderr
    )
    if uninstall:
        subprocess.run([py, "-m", "pip", "uninstall", "-y", "-q", *uninstall], check=True, stdout=sys.stderr)
    marker.write_text(json.dumps(spec, indent=2))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
