"""`mlops lint`: strict schema, supported subset, references, step flags and params files of a folder or a file."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from mlops.argo.parameters import params_file_errors, unknown_file_keys
from mlops.argo.process import PYTHON_COMMAND, repository_root
from mlops.argo.references import reference_findings
from mlops.argo.schema import WorkflowFileError, check_document
from mlops.argo.workflow import Library, WorkflowDoc, workflow_files

if TYPE_CHECKING:
    from mlops.config import StepConfig


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
    """For `python -m <module>` containers: every `--flag` must be one the module's Config accepts,
    and every required field of the Config must be given, as a flag or as its `MLOPS_*` env."""
    from mlops.config import cli_flags

    errors: list[str] = []
    for name, template in wf.templates.items():
        container = template.get("container")
        found = _python_module_command(container) if isinstance(container, dict) else None
        if found is None or not isinstance(container, dict):
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
        errors += [
            f"template {name}: {module} requires {flag}, which the container passes neither as an arg nor as env"
            for flag in _missing_required(cast("type[StepConfig]", config), container, args)
        ]
    return errors


def _missing_required(config: type[StepConfig], container: dict[str, Any], args: list[str]) -> list[str]:
    """The required flags a container gives neither as an arg nor as `MLOPS_<NAME>` in its env.

    A container that reads `--config FILE`, takes env from `envFrom`, or builds an arg from a
    template expression may give them where lint cannot see: it is not judged.
    """
    from mlops.config import ENV_PREFIX, flag_name, required_fields

    given = {arg.split("=", 1)[0] for arg in args}
    if "--config" in given or container.get("envFrom") or any(arg.startswith("{{") for arg in args):
        return []
    env = {str(item.get("name")) for item in container.get("env") or [] if isinstance(item, dict)}
    return [
        flag_name(field)
        for field in required_fields(config)
        if flag_name(field) not in given and f"{ENV_PREFIX}{field.upper()}" not in env
    ]


@dataclass
class LintReport:
    """What `mlops lint` found: errors fail it, warnings (project policies) only under `--strict`."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    workflow_files: list[Path] = field(default_factory=list)
    params_files: list[Path] = field(default_factory=list)

    def failed(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))


def lint(
    target: str | Path, *, params_files: Sequence[str | Path] = (), repo_root: Path | None = None
) -> LintReport:
    """Lint a workflows folder (its *.yaml and params/*.yaml) or one workflow file, plus any params files.

    A params file's keys are checked against every parameter declared by a workflow in the
    folder the workflows live in (one params file serves all of them, as workflows/params/local.yaml
    does); a key none declares is an error naming the closest declared parameter.
    """
    path = Path(target)
    root = repo_root or repository_root()
    report = LintReport()
    if path.is_dir():
        folder, files = path, workflow_files(path)
        params = [*_params_files(path / "params")]
    elif path.is_file():
        folder, files, params = path.parent, [path], []
    else:
        report.errors.append(f"{path}: no such file or directory")
        return report
    params += [Path(p) for p in params_files if Path(p).resolve() not in {q.resolve() for q in params}]
    report.workflow_files, report.params_files = files, params
    library = Library(folder)
    declared = library.declared_parameters()
    for file in files:
        try:
            documents = library.load_all(file)
        except WorkflowFileError as exc:
            report.errors.append(str(exc))
            continue
        for wf in documents:
            where = f"{file} ({wf.kind} {wf.name})" if len(documents) > 1 else str(file)
            problems = check_document(wf.doc)
            warnings: list[str] = []
            if not problems:
                problems, warnings = reference_findings(wf, library)
                problems += check_step_flags(wf, root)
            report.errors.extend(f"{where}: {problem}" for problem in problems)
            report.warnings.extend(f"{where}: {warning}" for warning in warnings)
            declared |= {str(p.get("name")) for p in wf.parameters}
    for file in params:
        values, problems = params_file_errors(file)
        report.errors.extend(problems)
        report.errors.extend(unknown_file_keys(values, declared, source=str(file), where=str(folder)))
    return report


def _params_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]) if directory.is_dir() else []


def lint_workflows(
    directory: str | Path,
    *,
    repo_root: Path | None = None,
    params_files: Sequence[str | Path] = (),
    strict: bool = False,
) -> list[str]:
    """Every error in a folder (`*.yaml`, `params/*.yaml`) or one file; with `strict`, the warnings too."""
    report = lint(directory, params_files=params_files, repo_root=repo_root)
    return report.errors + (report.warnings if strict else [])
