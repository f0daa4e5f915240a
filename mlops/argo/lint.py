"""`mlops lint`: strict schema, supported subset, references and step flags for a workflows folder."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from mlops.argo.parameters import params_file_errors
from mlops.argo.process import PYTHON_COMMAND, repository_root
from mlops.argo.references import check_references
from mlops.argo.schema import WorkflowFileError, check_document
from mlops.argo.workflow import Library, WorkflowDoc, workflow_files


@contextmanager
def _importable_from(root: Path) -> Iterator[None]:
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        yield
    finally:
        if added and str(root) in sys.path:
            sys.path.remove(str(root))


def step_config(module: str, repo_root: Path) -> type[BaseModel] | str:
    """A step module's module-level `Config` class, or a sentence saying why there is none."""
    with _importable_from(repo_root):
        try:
            loaded = importlib.import_module(module)
        except Exception as exc:  # any import-time failure is a finding, not a crash of lint
            return f"cannot import {module}: {type(exc).__name__}: {exc}"
    config = getattr(loaded, "Config", None)
    if config is None:
        return f"{module} has no module-level Config (a mlops.config.StepConfig class)"
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        return f"{module}.Config is not a pydantic model (derive it from mlops.config.StepConfig)"
    return config


def _python_module_command(container: dict[str, Any]) -> tuple[str, list[str]] | None:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    if len(argv) >= 3 and PYTHON_COMMAND.match(os.path.basename(argv[0])) and argv[1] == "-m":
        return argv[2], argv[3:]
    return None


def check_step_flags(wf: WorkflowDoc, repo_root: Path) -> list[str]:
    """For `python -m <module>` containers: every `--flag` must be one the module's Config accepts."""
    from mlops.config import StepConfig, cli_flags

    errors: list[str] = []
    for name, template in wf.templates.items():
        container = template.get("container")
        found = _python_module_command(container) if isinstance(container, dict) else None
        if found is None:
            continue
        module, args = found
        config = step_config(module, repo_root)
        if isinstance(config, str):
            errors.append(f"template {name}: {config}")
            continue
        accepted = cli_flags(cast("type[StepConfig]", config))
        for arg in args:
            flag = arg.split("=", 1)[0]
            if not flag.startswith("--") or flag == "--" or "{{" in flag:
                continue
            if flag not in accepted:
                errors.append(
                    f"template {name}: arg {flag} is not accepted by {module} (accepts: {', '.join(sorted(accepted))})"
                )
    return errors


def lint_workflows(directory: str | Path, *, repo_root: Path | None = None) -> list[str]:
    """Every problem in `directory/*.yaml` and `directory/params/*.yaml`, each prefixed with its file."""
    folder = Path(directory)
    root = repo_root or repository_root()
    if not folder.is_dir():
        return [f"{folder}: not a directory"]
    library = Library(folder)
    errors: list[str] = []
    declared: set[str] = set()
    for path in workflow_files(folder):
        try:
            wf = library.load(path)
        except WorkflowFileError as exc:
            errors.append(str(exc))
            continue
        problems = check_document(wf.doc)
        if not problems:
            problems = check_references(wf, library) + check_step_flags(wf, root)
        errors.extend(f"{path}: {problem}" for problem in problems)
        declared.update(str(p.get("name")) for p in wf.parameters)
    for path in sorted([*(folder / "params").glob("*.yaml"), *(folder / "params").glob("*.yml")]):
        values, problems = params_file_errors(path)
        errors.extend(problems)
        for key in values:
            if key not in declared:
                errors.append(f"{path}: {key}: no workflow in {folder} declares this parameter")
    return errors
