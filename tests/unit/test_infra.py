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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "check_infra.py"
CHECKS = [
    "kustomize",
    "schema",
    "refs",
    "promql",
    "images",
    "identities",
    "argocd",
    "flows",
    "consistency",
    "podsecurity",
    "hadolint",
    "gha",
    "checkov",
]


@dataclass(frozen=True)
class InfraChecks:
    """How the tests run scripts/check_infra.py: the `infra` environment's interpreter, and one
    `--kustomize-cache` for the session. The broken copies differ from the repository in a file
    or two, so most of their kustomize builds have the repository's inputs and are read back."""

    python: Path
    kustomize_cache: Path


@pytest.fixture(scope="session")
def infra_checks(tmp_path_factory: pytest.TempPathFactory) -> InfraChecks:
    """The `infra` environment (created here on first use) and this worker's kustomize cache."""
    made = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "ensure_venv.py"), "--extras", "infra"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert made.returncode == 0, f"could not create the infra environment:\n{made.stderr[-3000:]}"
    python = Path(made.stdout.strip().splitlines()[-1]) / "bin" / "python"
    return InfraChecks(python, tmp_path_factory.mktemp("kustomize-cache"))


def run_checks(
    checks: InfraChecks, root: Path, report: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [str(checks.python), str(SCRIPT), "--root", str(root), "--json", str(report)]
    run = subprocess.run(
        [*command, "--kustomize-cache", str(checks.kustomize_cache), *args],
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
def repository_report(infra_checks: InfraChecks, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _, report = run_checks(infra_checks, REPO_ROOT, tmp_path_factory.mktemp("infra") / "report.json")
    return report


@pytest.mark.parametrize("check", CHECKS)
def test_repository_passes(repository_report: dict[str, Any], check: str) -> None:
    assert check in repository_report, f"check {check} did not run"
    findings = repository_report[check]["findings"]
    assert not findings, "\n".join(f"{f['where']}: {f['message']}" for f in findings)


def test_a_full_run_builds_each_kustomization_on_its_own_too(repository_report: dict[str, Any]) -> None:
    """`--check X` for another check builds only the roots it reads; the kustomize check itself
    (here, in a run of every check) still builds every other kustomization on its own."""
    [note] = repository_report["kustomize"]["notes"]
    assert re.search(r"; [1-9]\d* more kustomizations build on their own$", note), note


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
        "not deployed: add zz-unbuilt.yaml to workflows/kustomization.yaml",
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
    # the probes' schedules, the Pushgateway they push to, and the egress that lets them
    (
        "infra/base/workflows/probe-schedules.yaml",
        '  schedules: ["17 5 * * *"]',
        '  schedule: "17 5 * * *"',
        "schema",
        "removed in Argo v4: use 'schedules'",
    ),
    (
        "infra/base/workflows/probe-schedules.yaml",
        "    workflowTemplateRef:\n      name: llm-probe\n",
        "    workflowTemplateRef:\n      name: llm-probes\n",
        "refs",
        "workflowTemplateRef 'llm-probes' is not a WorkflowTemplate in mlops-workflows",
    ),
    (
        "infra/monitoring/pushgateway.yaml",
        "    - name: http\n      port: 9091\n",
        "    - name: http\n      port: 9092\n",
        "refs",
        "no Service monitoring/pushgateway with port 9091",
    ),
    (
        "infra/argocd/apps/project.yaml",
        "    - {group: argoproj.io, kind: CronWorkflow}\n",
        "",
        "argocd",
        "CronWorkflow mlops-workflows/llm-probe-daily (argoproj.io/CronWorkflow): kind not in namespaceResourceWhitelist",
    ),
    (
        "infra/base/network-policies.yaml",
        "              app.kubernetes.io/name: pushgateway\n      ports:\n        - {protocol: TCP, port: 9091}",
        "              app.kubernetes.io/name: pushgateway\n      ports:\n        - {protocol: TCP, port: 9093}",
        "flows",
        "Pushgateway (the probes' figures)\": workflow llm-probe -> pushgateway:9091/TCP denied",
    ),
    (
        "infra/monitoring/dashboards/mlops-drift.json",
        "max by (model) (push_time_seconds",
        "max by (model (push_time_seconds",
        "promql",
        'dashboard mlops-drift.json panel "Hours since each model\'s last probe" A: PromQL does not parse',
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


def load_check_infra(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/check_infra.py as a module (its imports at the top are the standard library's;
    its dataclasses need it in sys.modules while they are made, for this test only)."""
    spec = importlib.util.spec_from_file_location("check_infra", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "check_infra", module)
    spec.loader.exec_module(module)
    return module


def test_the_kustomize_cache_key_changes_with_every_input_and_only_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached build is read back only for the same inputs: a change to the folder, to a base it
    names (followed transitively) or to a file it names makes a new key; a change to a folder no
    build reads does not; the same tree elsewhere has the same key; a remote base is never cached."""
    check_infra = load_check_infra(monkeypatch)
    files = {
        "infra/app/kustomization.yaml": "resources: [../base]\npatches:\n  - path: patch.yaml\n",
        "infra/app/patch.yaml": "a: 1\n",
        "infra/base/kustomization.yaml": "resources: [deploy.yaml, ../../workflows]\n",
        "infra/base/deploy.yaml": "kind: Deployment\n",
        "workflows/kustomization.yaml": "resources: [flow.yaml]\n",
        "workflows/flow.yaml": "kind: WorkflowTemplate\n",
        "infra/other/kustomization.yaml": "resources: [x.yaml]\n",
        "infra/other/x.yaml": "kind: ConfigMap\n",
    }

    def key(root: Path) -> str | None:
        return check_infra.kustomize_key(sys.executable, root, root / "infra" / "app")

    def write(root: Path, changes: dict[str, str]) -> None:
        for name, text in changes.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)

    write(tmp_path / "a", files)
    write(tmp_path / "b", files)
    first = key(tmp_path / "a")
    assert first is not None and key(tmp_path / "b") == first  # where the tree lies does not count
    write(tmp_path / "b", {"infra/other/x.yaml": "kind: Secret\n"})
    assert key(tmp_path / "b") == first  # no build of app reads infra/other
    seen = {first}
    for name in ("infra/app/patch.yaml", "infra/base/deploy.yaml", "workflows/flow.yaml"):
        write(tmp_path / "b", {name: files[name] + "# changed\n"})
        changed = key(tmp_path / "b")
        assert changed is not None and changed not in seen, name
        seen.add(changed)
    write(tmp_path / "b", {"infra/app/kustomization.yaml": "resources: [../base, https://example.com/x]\n"})
    assert key(tmp_path / "b") is None
    write(
        tmp_path / "b",
        {"infra/app/kustomization.yaml": "resources: [../odd]\n", "infra/odd/kustomization.yml": ""},
    )
    assert key(tmp_path / "b") is None  # a kustomization spelt otherwise: not followed, so not cached
    write(tmp_path / "b", {"infra/app/kustomization.yaml": "resources: [../../../a/infra/base]\n"})
    assert key(tmp_path / "b") is None  # a base outside the tree: not cached
    write(tmp_path / "b", {"infra/app/kustomization.yaml": "resources: [../base]\npatches: [{path: /tmp}]\n"})
    assert key(tmp_path / "b") is not None  # an absolute string is no input (kustomize refuses it)


def copy_repository(root: Path, entries: list[str] = COPIED) -> Path:
    """What the checks read, copied to `root` (to be broken there)."""
    for entry in entries:
        source, target = REPO_ROOT / entry, root / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target)
    return root


def break_copy(root: Path, breakages: list[tuple[Any, ...]]) -> None:
    """Each (file, good, bad, check, expected): `good` replaced by `bad` (`good` None: the file is `bad`)."""
    for file, good, bad, _, _ in breakages:
        if good is None:
            (root / file).write_text(bad)
            continue
        text = (root / file).read_text()
        assert good in text, f"{file} no longer contains {good!r}: update this test's breakage"
        (root / file).write_text(text.replace(good, bad, 1))


def assert_each_break_reported(report: dict[str, Any], breakages: list[tuple[Any, ...]]) -> None:
    for file, _, _, check, expected in breakages:
        messages = [f"{f['where']}: {f['message']}" for f in report[check]["findings"]]
        assert any(expected in m for m in messages), f"{check} missed the break in {file}: {messages}"


def test_each_check_reports_a_broken_copy(infra_checks: InfraChecks, tmp_path: Path) -> None:
    root = copy_repository(tmp_path / "repo")
    break_copy(root, BREAKAGES)
    run, report = run_checks(infra_checks, root, tmp_path / "report.json")
    assert run.returncode == 1
    assert_each_break_reported(report, BREAKAGES)


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
        if doc.get("kind") == "Kustomization":
            continue
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


def test_rollout_checks_report_a_broken_copy(infra_checks: InfraChecks, tmp_path: Path) -> None:
    root = copy_repository(tmp_path / "repo")
    break_copy(root, ROLLOUT_BREAKAGES)
    checks = sorted({check for *_, check, _ in ROLLOUT_BREAKAGES})
    run, report = run_checks(
        infra_checks, root, tmp_path / "report.json", *(a for c in checks for a in ("--check", c))
    )
    assert run.returncode == 1
    assert_each_break_reported(report, ROLLOUT_BREAKAGES)


# --- the adapter canary (infra/inference): Inference Extension objects, route, dashboard -------

# (file, text in the repository, broken text, check, what its finding says)
INFERENCE_BREAKAGES: list[tuple[str, str, str, str, str]] = [
    (
        "infra/inference/pool.yaml",
        "            - --metrics-endpoint-auth=false\n",
        "",
        "refs",
        "scrapes the endpoint picker (container epp) without a token",
    ),
    (
        "infra/inference/routing.yaml",
        "        - modelRewrite: aws-rag-qa-live\n",
        "        - modelRewirte: aws-rag-qa-live\n",
        "schema",
        "'modelRewirte' was unexpected",
    ),
    (
        "infra/inference/routing.yaml",
        "  poolRef:\n    group: inference.networking.k8s.io\n    name: vllm\n",
        "  poolRef:\n    group: inference.networking.k8s.io\n    name: vllm-pool\n",
        "refs",
        "poolRef InferencePool 'vllm-pool' is not in the build",
    ),
    (
        "infra/inference/routing.yaml",
        "          kind: InferencePool\n          name: vllm\n",
        "          kind: InferencePool\n          name: vllm-gpu\n",
        "refs",
        "backendRef InferencePool 'vllm-gpu' is not in the build",
    ),
    (
        "infra/inference/pool.yaml",
        "  targetPorts:\n    - number: 8000\n",
        "  targetPorts:\n    - number: 8080\n",
        "refs",
        "targetPort 8080 is no container port of the selected pods",
    ),
    (
        "infra/inference/pool.yaml",
        "    port:\n      number: 9002\n",
        "    port:\n      number: 9020\n",
        "refs",
        "endpointPickerRef vllm-epp: the Service has no port 9020",
    ),
    (
        "infra/monitoring/dashboards/canary.json",
        "histogram_quantile(0.95, sum by (le, target_model_name) (rate(inference_objective_request_ttft",
        "histogram_quantile(0.95, sum by (le, target_model_name) (rate((inference_objective_request_ttft",
        "promql",
        "dashboard canary.json panel 'Time to first token P95 by slot' A",
    ),
]


def test_inference_checks_report_a_broken_copy(infra_checks: InfraChecks, tmp_path: Path) -> None:
    root = copy_repository(tmp_path / "repo")
    break_copy(root, INFERENCE_BREAKAGES)
    checks = sorted({check for *_, check, _ in INFERENCE_BREAKAGES})
    run, report = run_checks(
        infra_checks, root, tmp_path / "report.json", *(a for c in checks for a in ("--check", c))
    )
    assert run.returncode == 1
    assert_each_break_reported(report, INFERENCE_BREAKAGES)


# --- the cluster simulation: each defect it exists for, put back into a copy -------------------

# (id, file, text in the repository, broken text, check, what its finding says)
SIMULATION_BREAKAGES: list[tuple[str, str, str, str, str, str]] = [
    (
        "workflows-outside-the-kustomization-root",
        "infra/base/workflows/kustomization.yaml",
        "  - ../../../workflows\n",
        "  - ../../../workflows/triton-training.yaml\n",
        "kustomize",
        "is not in or below",
    ),
    (
        "appproject-lacks-rollout",
        "infra/argocd/apps/project.yaml",
        "    - {group: argoproj.io, kind: Rollout}\n",
        "",
        "argocd",
        "Rollout mlops/triton (argoproj.io/Rollout): kind not in namespaceResourceWhitelist",
    ),
    (
        "appproject-lacks-httproute",
        "infra/argocd/apps/project.yaml",
        "    - {group: gateway.networking.k8s.io, kind: HTTPRoute}\n",
        "",
        "argocd",
        "HTTPRoute mlops/vllm (gateway.networking.k8s.io/HTTPRoute): kind not in namespaceResourceWhitelist",
    ),
    (
        "appproject-lacks-inferencepool",
        "infra/argocd/apps/project.yaml",
        "    - {group: inference.networking.k8s.io, kind: InferencePool}\n",
        "",
        "argocd",
        "InferencePool mlops/vllm (inference.networking.k8s.io/InferencePool): kind not in namespaceResourceWhitelist",
    ),
    (
        "appproject-lacks-inferencemodelrewrite",
        "infra/argocd/apps/project.yaml",
        "    - {group: inference.networking.x-k8s.io, kind: InferenceModelRewrite}\n",
        "",
        "argocd",
        "InferenceModelRewrite mlops/aws-rag-qa (inference.networking.x-k8s.io/InferenceModelRewrite): kind not in",
    ),
    (
        "vllm-refuses-the-endpoint-picker",
        "infra/inference/pool.yaml",
        "              app.kubernetes.io/name: vllm-epp\n      ports:\n        - {protocol: TCP, port: 8000}\n",
        "              app.kubernetes.io/name: vllm-epp\n      ports:\n        - {protocol: TCP, port: 8001}\n",
        "flows",
        "flow 'endpoint picker -> vLLM metrics (queue, KV cache, LoRA slots)': Deployment vllm-epp -> Deployment vllm:8000/TCP denied",
    ),
    (
        "appproject-lacks-persistentvolume",
        "infra/argocd/apps/project.yaml",
        '    - {group: "", kind: PersistentVolume}\n',
        "",
        "argocd",
        "PersistentVolume vllm-adapters-serving (core/PersistentVolume): cluster-scoped kind not in clusterResourceWhitelist",
    ),
    (
        "application-outside-the-project-destinations",
        "infra/argocd/apps/monitoring.yaml",
        "    namespace: monitoring\n",
        "    namespace: observability\n",
        "argocd",
        "destination https://kubernetes.default.svc observability is not in the project's",
    ),
    (
        "mlflow-refuses-the-slots-sidecar",
        "infra/base/mlflow/mlflow.yaml",
        "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: vllm\n",
        "",
        "flows",
        "flow 'vLLM slots sidecar -> MLflow': Deployment vllm -> Deployment mlflow:5000/TCP denied: ingress of Deployment mlflow",
    ),
    (
        "workflows-cannot-reach-prometheus",
        "infra/base/network-policies.yaml",
        "        - {protocol: TCP, port: 9090}\n",
        "        - {protocol: TCP, port: 9091}\n",
        "flows",
        "flow 'workflow pods -> Prometheus (load test figures)': workflow llm-e2e -> prometheus:9090/TCP denied: egress",
    ),
    (
        "postgresql-open-to-every-namespace",
        "infra/base/mlflow/postgres.yaml",
        "    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: mlflow\n",
        "    - from:\n        - namespaceSelector: {}\n",
        "flows",
        "flow 'any namespace -> PostgreSQL': stranger -> StatefulSet mlflow-postgres:5432/TCP allowed, but it must be denied",
    ),
    (
        "vllm-serves-another-base",
        "infra/vllm/kustomization.yaml",
        "VLLM_BASE_MODEL=s3://mlops-models/base/mistral-7b-instruct\n",
        "VLLM_BASE_MODEL=s3://mlops-models/base/mistral-7b-instruct-v0.3\n",
        "consistency",
        "base-model-source s3://mlops-models/base/mistral-7b-instruct is not the base vLLM serves",
    ),
    (
        "finetune-without-a-gpu",
        "infra/overlays/gpu/kustomization.yaml",
        "  - path: finetune-gpu.yaml\n",
        "  - path: triton-gpu.yaml\n    target: {kind: Nothing}\n",
        "consistency",
        "infra/overlays/gpu: WorkflowTemplate vllm-training template finetune: requests no nvidia.com/gpu",
    ),
    (
        "cluster-trains-lora-not-qlora",
        "workflows/params/cluster.yaml",
        "lora-method: qlora\n",
        "lora-method: lora\n",
        "consistency",
        "lora-method: 'lora', the cluster needs 'qlora'",
    ),
    (
        "cluster-image-on-latest",
        "workflows/params/cluster.yaml",
        "training-image: 111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-k8s/triton-training:0.1.0\n",
        "training-image: ghcr.io/mlops-k8s/triton-training:latest\n",
        "consistency",
        "training-image: image ghcr.io/mlops-k8s/triton-training:latest: `latest` is mutable",
    ),
    (
        "workflow-namespace-not-restricted",
        "infra/base/namespaces.yaml",
        "  name: mlops-workflows\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n",
        "  name: mlops-workflows\n  labels:\n    pod-security.kubernetes.io/enforce: baseline\n",
        "podsecurity",
        "namespace mlops-workflows runs pods but does not set pod-security.kubernetes.io/enforce: restricted",
    ),
    (
        "argo-executor-without-security-context",
        "infra/argo-workflows/workflow-controller-configmap.yaml",
        "      allowPrivilegeEscalation: false\n",
        "",
        "podsecurity",
        "container wait: allowPrivilegeEscalation must be false",
    ),
    (
        "step-containers-without-template-defaults",
        "infra/base/workflows/kustomization.yaml",
        "              readOnlyRootFilesystem: true\n",
        "",
        "podsecurity",
        "WorkflowTemplate mlops-workflows/triton-training template train: container main: readOnlyRootFilesystem must be true",
    ),
]


@pytest.mark.parametrize(
    ("file", "good", "bad", "check", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in SIMULATION_BREAKAGES],
)
def test_simulation_reports_a_broken_copy(
    infra_checks: InfraChecks, tmp_path: Path, file: str, good: str, bad: str, check: str, expected: str
) -> None:
    root = copy_repository(tmp_path / "repo", ["infra", "workflows", "docker", ".github"])
    breakage = [(file, good, bad, check, expected)]
    break_copy(root, breakage)
    run, report = run_checks(infra_checks, root, tmp_path / "report.json", "--check", check)
    assert run.returncode == 1, run.stdout
    assert_each_break_reported(report, breakage)
