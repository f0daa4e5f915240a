"""Images, manifests, GitOps and CI workflows, checked offline by scripts/check_infra.py.

The checks need tools the main environment does not carry (kubernetes-validate, check-jsonschema,
hadolint, checkov, promql-parser: the `infra` extra). They run in that extra's own cached
environment, created on first use by scripts/ensure_venv.py (about 2 minutes, once per spec). A
tool missing there fails the check that needs it, with the check's message; nothing is skipped.
`kubectl` (with kustomize v5) comes from the machine, like `make`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "check_infra.py"
CHECKS = ["kustomize", "schema", "refs", "promql", "images", "identities", "hadolint", "gha", "checkov"]


@pytest.fixture(scope="session")
def infra_python() -> Path:
    """The interpreter of the `infra` environment (created here on first use)."""
    made = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "ensure_venv.py"), "--extras", "infra"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert made.returncode == 0, f"could not create the infra environment:\n{made.stderr[-3000:]}"
    return Path(made.stdout.strip().splitlines()[-1]) / "bin" / "python"


def run_checks(
    python: Path, root: Path, report: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(
        [str(python), str(SCRIPT), "--root", str(root), "--json", str(report), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert report.is_file(), (
        f"check_infra.py wrote no report (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    )
    return run, json.loads(report.read_text())


@pytest.fixture(scope="session")
def repository_report(infra_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _, report = run_checks(infra_python, REPO_ROOT, tmp_path_factory.mktemp("infra") / "report.json")
    return report


@pytest.mark.parametrize("check", CHECKS)
def test_repository_passes(repository_report: dict[str, Any], check: str) -> None:
    assert check in repository_report, f"check {check} did not run"
    findings = repository_report[check]["findings"]
    assert not findings, "\n".join(f"{f['where']}: {f['message']}" for f in findings)


# --- the checks catch what they claim to -------------------------------------------------------

# A workflow nobody deploys, naming an image nothing builds.
UNBUILT_WORKFLOW = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: zz-unbuilt
spec:
  entrypoint: main
  serviceAccountName: mlops-workflow
  arguments:
    parameters:
      - name: step-image
        value: ghcr.io/mlops-k8s/nowhere:1
  templates:
    - name: main
      container:
        image: "{{workflow.parameters.step-image}}"
        command: [python, -m, mlops]
"""
# (file, text in the repository or None for a new file, broken text, check, what its finding says)
BREAKAGES: list[tuple[str, str | None, str, str, str]] = [
    (
        "infra/base/triton/triton.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesytem: true",
        "schema",
        "'readOnlyRootFilesytem' was unexpected",
    ),
    ("infra/base/workflows/kustomization.yaml", "podGC:", "podGc:", "schema", "spec.podGc: unknown field"),
    (
        "infra/base/rbac.yaml",
        "  name: triton\n",
        "  name: triton-server\n",
        "refs",
        "serviceAccountName 'triton'",
    ),
    (
        "infra/monitoring/service-monitors.yaml",
        "    - port: metrics\n      path: /metrics\n      interval: 15s",
        "    - port: metric\n      path: /metrics\n      interval: 15s",
        "refs",
        "port 'metric' is not a named port",
    ),
    (
        "infra/monitoring/prometheus-rules.yaml",
        "> (14.4 * 0.01)\n",
        "> (14.4 * 0.01\n",
        "promql",
        "does not parse",
    ),
    (
        "workflows/zz-unbuilt.yaml",
        None,
        UNBUILT_WORKFLOW,
        "images",
        "no docker/<name>/Dockerfile builds mlops-k8s/nowhere",
    ),
    (
        "workflows/zz-unbuilt.yaml",
        None,
        UNBUILT_WORKFLOW,
        "images",
        "not deployed: add ../../../workflows/zz-unbuilt.yaml",
    ),
    (
        "docker/mlops-deployment-tools/Dockerfile",
        "ARG EXTRAS=deploy\n",
        "ARG EXTRAS=deploy\nRUN pip install flask\n",
        "hadolint",
        "DL3013",
    ),
    (
        ".github/workflows/images.yml",
        "docker/setup-buildx-action@e468171a9de216ec08956ac3ada2f0791b6bd435 # v3.11.1",
        "docker/setup-buildx-action@v3",
        "gha",
        "pin actions by full commit SHA",
    ),
    (
        "infra/vllm/vllm.yaml",
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
        "checkov",
        "CKV_K8S_20",
    ),
]
COPIED = [
    "infra",
    "docker",
    "workflows",
    ".github",
    "pyproject.toml",
    "scripts/ensure_venv.py",
    "mlops",
    "training",
    "deployment",
]


def test_each_check_reports_a_broken_copy(infra_python: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for entry in COPIED:
        source, target = REPO_ROOT / entry, root / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target)
    for file, good, bad, _, _ in BREAKAGES:
        if good is None:
            (root / file).write_text(bad)
            continue
        text = (root / file).read_text()
        assert good in text, f"{file} no longer contains {good!r}: update this test's breakage"
        (root / file).write_text(text.replace(good, bad, 1))
    run, report = run_checks(infra_python, root, tmp_path / "report.json")
    assert run.returncode == 1
    for file, _, _, check, expected in BREAKAGES:
        messages = [f"{f['where']}: {f['message']}" for f in report[check]["findings"]]
        assert any(expected in m for m in messages), f"{check} missed the break in {file}: {messages}"


# --- each image carries the code its workflow steps import -------------------------------------


def buildinfo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("buildinfo", REPO_ROOT / "docker" / "buildinfo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step_modules_by_image() -> dict[str, set[str]]:
    """image name (docker/<name>) -> the `python -m` modules WorkflowTemplates run in it."""
    modules: dict[str, set[str]] = {}
    for path in sorted((REPO_ROOT / "workflows").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        params = {
            p["name"]: str(p.get("value")) for p in doc["spec"].get("arguments", {}).get("parameters", [])
        }
        for template in doc["spec"]["templates"]:
            container = template.get("container")
            if not container:
                continue
            ref = re.fullmatch(r"\{\{workflow\.parameters\.([\w-]+)\}\}", container["image"])
            image = params[ref.group(1)] if ref else container["image"]
            name = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
            command = container.get("command", [])
            if command[:2] == ["python", "-m"]:
                modules.setdefault(name, set()).add(command[2])
    return modules


@pytest.mark.parametrize("image", sorted(step_modules_by_image()))
def test_image_contents_import_every_step_it_runs(image: str, tmp_path: Path) -> None:
    dockerfile = REPO_ROOT / "docker" / image / "Dockerfile"
    assert dockerfile.is_file(), f"no docker/{image}/Dockerfile"
    for source in buildinfo().copy_sources(dockerfile):
        if source.startswith(("docker/", "scripts/")) or source == "pyproject.toml":
            continue  # build tooling of the builder stage, not the runtime's code
        target = tmp_path / source
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO_ROOT / source).is_dir():
            shutil.copytree(REPO_ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / source, target)
    modules = sorted(step_modules_by_image()[image])
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)",
            *modules,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, (
        f"{image} lacks code its steps import ({', '.join(modules)}):\n{run.stderr[-2000:]}"
    )


# --- canary releases (infra/rollouts): Argo Rollouts, Gateway API routes, analysis ------------

# (file, text in the repository, broken text, check, what its finding says)
ROLLOUT_BREAKAGES: list[tuple[str, str, str, str, str]] = [
    (
        "infra/rollouts/triton/rollout.yaml",
        "progressDeadlineAbort: true",
        "progressDeadlineAbrot: true",
        "schema",
        "'progressDeadlineAbrot' was unexpected",
    ),
    (
        "infra/rollouts/vllm/analysis-template.yaml",
        "histogram_quantile(0.95, sum by (le) (rate(",
        "histogram_quantile(0.95, sum by (le) (rate((",
        "promql",
        "AnalysisTemplate mlops/vllm-canary metric p95-latency: PromQL does not parse",
    ),
    (
        "infra/rollouts/vllm/rollout.yaml",
        "templateName: vllm-canary",
        "templateName: vllm-canry",
        "refs",
        "AnalysisTemplate 'vllm-canry' is not in the build",
    ),
    (
        "infra/rollouts/triton/rollout.yaml",
        "            name: candidate-header\n            match:",
        "            name: candidate-headers\n            match:",
        "refs",
        "setHeaderRoute 'candidate-headers' is not listed in trafficRouting.managedRoutes",
    ),
    (
        "infra/rollouts/triton/rollout.yaml",
        "        - name: triton-canary\n          port: 8001",
        "        - name: triton-canary\n          port: 8002",
        "refs",
        "backendRef triton-canary: the Service has no port 8002",
    ),
]


def test_rollout_checks_report_a_broken_copy(infra_python: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for entry in COPIED:
        source, target = REPO_ROOT / entry, root / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target)
    for file, good, bad, _, _ in ROLLOUT_BREAKAGES:
        text = (root / file).read_text()
        assert good in text, f"{file} no longer contains {good!r}: update this test's breakage"
        (root / file).write_text(text.replace(good, bad, 1))
    checks = sorted({check for *_, check, _ in ROLLOUT_BREAKAGES})
    run, report = run_checks(
        infra_python, root, tmp_path / "report.json", *(a for c in checks for a in ("--check", c))
    )
    assert run.returncode == 1
    for file, _, _, check, expected in ROLLOUT_BREAKAGES:
        messages = [f"{f['where']}: {f['message']}" for f in report[check]["findings"]]
        assert any(expected in m for m in messages), f"{check} missed the break in {file}: {messages}"
