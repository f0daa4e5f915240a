"""Build facts the Dockerfiles, images.yml and scripts/check_infra.py share (stdlib only).

    python docker/buildinfo.py requirements --extras training   # pip requirements: core + extras
    python docker/buildinfo.py sources docker/X/Dockerfile      # what the image copies from the context
    python docker/buildinfo.py missing docker/X/Dockerfile      # those not in the tree yet (exit 1 if any)

`requirements` reuses `scripts/ensure_venv.py`'s reading of pyproject.toml, so an image installs
exactly what the matching cached venv installs. `sources` lets CI skip an image whose stage
folders are not written yet, and lets the infra check prove each image's path filter covers
everything the image contains. MLflow comes as the core dependency `mlflow-skinny`, the client
without the server stack; scripts/check_infra.py's `images` check fails an image whose
requirements name the full `mlflow`.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def _ensure_venv() -> ModuleType:
    for candidate in (HERE.parent / "scripts" / "ensure_venv.py", HERE / "ensure_venv.py"):
        if candidate.is_file():
            spec = importlib.util.spec_from_file_location("ensure_venv", candidate)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("buildinfo: scripts/ensure_venv.py not found next to docker/")


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Core dependencies plus the named extras, as pip requirement lines."""
    reqs, _uninstall = _ensure_venv().requirements(pyproject, extras)
    return list(reqs)


def _logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def copy_sources(dockerfile: Path) -> list[str]:
    """Build-context paths the Dockerfile's COPY/ADD instructions read (not `--from=` stages)."""
    sources: list[str] = []
    for line in _logical_lines(dockerfile.read_text()):
        instruction, _, rest = line.partition(" ")
        if instruction.upper() not in ("COPY", "ADD"):
            continue
        words = shlex.split(rest)
        if any(word.startswith("--from=") for word in words):
            continue
        args = [word for word in words if not word.startswith("--")]
        for source in args[:-1]:
            normalised = source.rstrip("/") or "."
            if normalised not in sources:
                sources.append(normalised)
    return sources


def missing_sources(dockerfile: Path, context: Path) -> list[str]:
    return [source for source in copy_sources(dockerfile) if not (context / source).exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("requirements", help="pip requirements for core + extras, one a line")
    req.add_argument("--extras", default="", help="comma-separated extras from pyproject.toml")
    req.add_argument("--pyproject", default=str(HERE.parent / "pyproject.toml"))
    for name in ("sources", "missing"):
        cmd = sub.add_parser(name, help=f"{name} of a Dockerfile's COPY instructions")
        cmd.add_argument("dockerfile")
        cmd.add_argument("--context", default=".", help="build context (default: current directory)")
    args = parser.parse_args(argv)
    if args.command == "requirements":
        extras = [e for e in args.extras.split(",") if e]
        print("\n".join(requirements(Path(args.pyproject), extras)))
        return 0
    dockerfile = Path(args.dockerfile)
    if args.command == "sources":
        print("\n".join(copy_sources(dockerfile)))
        return 0
    missing = missing_sources(dockerfile, Path(args.context))
    for source in missing:
        print(source)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
