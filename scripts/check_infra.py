#!/usr/bin/env python3
"""Validate, offline, everything that deploys the platform: images, manifests, GitOps, CI.

Checks (all by default; `--check NAME` picks some, in this order):
  kustomize  plain `kubectl kustomize` (no flags, as Argo CD runs it) builds every overlay,
             infra/monitoring, infra/argocd/apps and infra/argo-workflows, then every other
             `kind: Kustomization` under infra/ on its own (that part only when this check is
             selected: another check that reads the builds gets the roots)
  schema     every built object, strictly (an unknown field is an error): kubernetes-validate for
             core kinds, mlops.argo.schema.check_document for Argo Workflows kinds (validate_strict
             for a CronWorkflow: the cluster runs it, `mlops run` does not), the subset
             schemas in infra/schemas/*.yaml for ServiceMonitor, PrometheusRule, Argo CD's
             Application/AppProject, Argo Rollouts' Rollout/AnalysisTemplate and the Gateway API
             routes
  refs       names resolve inside a build: service accounts, config maps, claims, Role bindings,
             Service/PDB/NetworkPolicy selectors and ports, the workflows' service URLs and
             k8s:// replica selectors, ServiceMonitor targets (and a token where the target asks for
             one: the endpoint picker), Argo CD application paths; each
             Rollout's Deployment, Services, routes, managed header routes and analysis templates
             and arguments; each route's Gateway listener and backend Service ports
  promql     every alerting/recording rule, dashboard query and AnalysisTemplate query parses
             (promql-parser); every recorded series a query uses is recorded
  images     base images pinned by digest; what each WorkflowTemplate and manifest runs is built
             by a Dockerfile in docker/ through .github/workflows/images.yml, whose path filter
             covers everything the image copies; every workflows/*.yaml is deployed
  argocd     every Application's path rendered as Argo CD does (plain kustomize), each object
             against its AppProject: sourceRepos, cluster/namespace whitelists and blacklists,
             destinations (objects without a namespace get the Application's)
  flows      infra/flows.yaml against each overlay's NetworkPolicies with Kubernetes' semantics:
             every declared connection allowed where both ends exist, every `denied` one denied
  consistency  vLLM's base is cluster training's; our images from one ECR registry, pinned, never
             `latest`; the GPU steps of infra/gpu.yaml request GPUs in the gpu overlay, nothing
             in the cpu overlay does; params/cluster.yaml says what infra/gpu.yaml needs
  podsecurity  every platform pod and every workflow pod (templateDefaults + the controller's
             executor settings) passes Pod Security `restricted`, has requests and limits; the
             namespaces enforce `restricted`
  identities every container that talks to MLflow (WorkflowTemplates, Deployments) reads
             MLFLOW_TRACKING_USERNAME/PASSWORD from one Secret, one per workflow, written by an
             ExternalSecret for a user the MLflow pods create with the same password entry; MLflow
             runs its basic-auth app
  hadolint   docker/*/Dockerfile with docker/hadolint.yaml (no ignored rule)
  gha        .github/workflows/*.yml against GitHub's workflow schema (check-jsonschema, vendored);
             every action pinned by commit SHA; AWS only through OIDC role assumption
  checkov    the rendered builds (frameworks kubernetes, argo_workflows), skips from infra/checkov.yaml

Run it in the infra environment (`make infra-check` does):
  PYTHONPATH=. "$(python3 scripts/ensure_venv.py --extras infra)/bin/python" scripts/check_infra.py
Prints one line per problem and a summary; exits 1 when anything is found, 0 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.33"
IMAGE_PREFIX = "mlops-k8s"  # repository path prefix of every image images.yml pushes
# Secrets created out of band, never committed. None today: External Secrets writes every Secret the
# pods read, and each ExternalSecret's target counts as in the build (docs/infra.md).
EXTERNAL_SECRETS: set[tuple[str | None, str]] = set()
# Namespaces whose Services another install owns (ServiceMonitor targets not checkable here).
EXTERNAL_NAMESPACES = {"argo"}
# The build Argo CD deploys beside every overlay whose Services workflows and ServiceMonitors name
# (the Pushgateway the probes push to).
MONITORING_BUILD = "infra/monitoring"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
GRAFANA_MACROS = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")


@dataclass(frozen=True)
class Finding:
    where: str
    message: str


@dataclass
class Result:
    name: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.findings.append(Finding(where, message))


@dataclass
class Build:
    """The objects one `kubectl kustomize` (or one plain manifest file) produces."""

    path: str
    objects: list[dict[str, Any]]


class Context:
    """What every check reads: the repository, and the builds the kustomize check made."""

    def __init__(
        self,
        root: Path,
        kubernetes_version: str,
        *,
        standalone_builds: bool = True,
        kustomize_cache: Path | None = None,
    ) -> None:
        self.root = root
        self.kubernetes_version = kubernetes_version
        self.builds: dict[str, Build] = {}
        # build each kustomization outside the roots on its own too: the kustomize check's own
        # finding, skipped when another check only needs the builds (`--check refs`)
        self.standalone_builds = standalone_builds
        # successful `kubectl kustomize` outputs by the content of everything the build reads
        # (`kustomize_key`); None: every build runs kubectl
        self.kustomize_cache = kustomize_cache

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def tool(self, name: str) -> str | None:
        """A command from this interpreter's environment first (the infra venv), then PATH."""
        local = Path(sys.executable).parent / name
        return str(local) if local.exists() else shutil.which(name)

    def objects(self, *kinds: str) -> Iterator[tuple[Build, dict[str, Any]]]:
        for build in self.builds.values():
            for obj in build.objects:
                if not kinds or obj.get("kind") in kinds:
                    yield build, obj

    def dockerfiles(self) -> dict[str, Path]:
        return {p.parent.name: p for p in sorted((self.root / "docker").glob("*/Dockerfile"))}


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj.get('kind')} {namespace + '/' if namespace else ''}{meta.get('name')}"


def load_yaml_documents(text: str) -> list[dict[str, Any]]:
    import yaml

    # libyaml's safe loader where PyYAML has it: the same documents, and parsing the builds no
    # longer takes most of a run (about 2 s of pure-Python YAML per run otherwise)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc]


def json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(object)"


def buildinfo(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("buildinfo", root / "docker" / "buildinfo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- kustomize --------------------------------------------------------------------------------


def kustomization_resources(directory: Path) -> list[Path]:
    import yaml

    data = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    entries = [*data.get("resources", []), *data.get("components", [])]
    return [(directory / entry).resolve() for entry in entries]


# kustomization fields whose entries may name a remote base (a URL, a git repository)
REMOTE_FIELDS = ("resources", "components", "bases", "generators", "transformers")
REMOTE = re.compile(r"^(\w+://|git@|github\.com/|gitlab\.com/|bitbucket\.org/)")


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def kustomize_inputs(directory: Path, root: Path) -> list[Path] | None:
    """Every file `kubectl kustomize DIRECTORY` can read, or None where that cannot be told.

    The folder's tree, and for every relative string of its kustomization.yaml that names an
    existing path: a folder with a kustomization.yaml is followed the same way, any other folder's
    tree and any file count as read. None for a remote base, a path outside `root`, or a folder
    whose kustomization is spelt otherwise. More than kustomize reads is fine (a change there only
    costs a build); less is not.
    """
    import yaml

    files: set[Path] = set()
    followed: set[Path] = set()
    pending = [directory.resolve()]
    while pending:
        current = pending.pop()
        if current in followed:
            continue
        kustomization = current / "kustomization.yaml"
        if not kustomization.is_file():
            return None
        followed.add(current)
        files.update(p for p in current.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        data = yaml.safe_load(kustomization.read_text()) or {}
        if not isinstance(data, dict):
            return None
        if any(REMOTE.match(s) for f in REMOTE_FIELDS for s in _strings(data.get(f, []))):
            return None
        for text in _strings(data):
            if not text or text.startswith("/") or "\n" in text:
                continue  # not a path kustomize reads (it refuses absolute ones)
            try:
                target = (current / text).resolve()
                exists = target.exists()
            except (OSError, ValueError):
                continue
            if not exists:
                continue
            if not target.is_relative_to(root):
                return None
            if target.is_file():
                files.add(target)
            elif (target / "kustomization.yaml").is_file():
                pending.append(target)
            elif any(target.glob("kustomization.*")) or (target / "Kustomization").is_file():
                return None
            else:
                files.update(p for p in target.rglob("*") if p.is_file())
    return sorted(files)


def kustomize_key(kubectl: str, root: Path, directory: Path) -> str | None:
    """What a build's output depends on, hashed: kubectl (path, size, time), the folder and every
    input file (path under `root` and content). None when the inputs cannot be told."""
    inputs = kustomize_inputs(directory, root)
    if inputs is None:
        return None
    found = shutil.which(kubectl)
    if found is None:
        return None
    digest = hashlib.sha256()
    binary = Path(found).resolve()
    stat = binary.stat()
    digest.update(f"{binary}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    try:
        digest.update(f"{directory.resolve().relative_to(root)}\0".encode())
        for path in inputs:
            content = path.read_bytes()
            digest.update(f"{path.relative_to(root)}\0{len(content)}\0".encode())
            digest.update(content)
    except ValueError:  # an input outside the repository
        return None
    return digest.hexdigest()


def kustomize(ctx: Context, kubectl: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`kubectl kustomize DIRECTORY`; with `ctx.kustomize_cache`, a build whose inputs were built
    before with the same kubectl is read back (only successful builds are kept)."""
    command = [kubectl, "kustomize", str(directory)]
    key = kustomize_key(kubectl, ctx.root, directory) if ctx.kustomize_cache else None
    stored = ctx.kustomize_cache / f"{key}.yaml" if ctx.kustomize_cache and key else None
    if stored is not None and stored.is_file():
        return subprocess.CompletedProcess(command, 0, stored.read_text(), "")
    run = subprocess.run(command, capture_output=True, text=True)
    if stored is not None and run.returncode == 0:
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_name(f"{stored.name}.{os.getpid()}.tmp")
        partial.write_text(run.stdout)
        partial.replace(stored)  # whole or absent, for a run beside this one
    return run


def build_roots(root: Path) -> list[Path]:
    overlays = sorted(p.parent for p in (root / "infra" / "overlays").glob("*/kustomization.yaml"))
    return [
        *overlays,
        root / "infra" / "monitoring",
        root / "infra" / "argocd" / "apps",
        root / "infra" / "argo-workflows",
    ]


def check_kustomize(ctx: Context) -> Result:
    result = Result("kustomize")
    kubectl = ctx.tool("kubectl")
    if not kubectl:
        result.add("kubectl", "not found on PATH: install kubectl >= 1.27 (it embeds kustomize v5)")
        return result
    reached: set[Path] = set()
    for directory in build_roots(ctx.root):
        where = ctx.rel(directory)
        run = kustomize(ctx, kubectl, directory)
        if run.returncode != 0:
            result.add(where, f"kubectl kustomize failed: {run.stderr.strip()}")
            continue
        ctx.builds[where] = Build(where, load_yaml_documents(run.stdout))
        pending = [directory]
        while pending:
            current = pending.pop()
            if current in reached or not (current / "kustomization.yaml").is_file():
                continue
            reached.add(current)
            pending.extend(p for p in kustomization_resources(current) if p.is_dir())
    root_app = ctx.root / "infra" / "argocd" / "root.yaml"
    if root_app.is_file():
        ctx.builds[ctx.rel(root_app)] = Build(ctx.rel(root_app), load_yaml_documents(root_app.read_text()))
    import yaml

    standalone = 0
    roots = {d.resolve() for d in build_roots(ctx.root)}
    for kustomization in sorted((ctx.root / "infra").rglob("kustomization.yaml")):
        if kustomization.parent.resolve() not in reached:
            result.add(
                ctx.rel(kustomization), "not part of any build (no overlay, monitoring or argocd uses it)"
            )
        kind = (yaml.safe_load(kustomization.read_text()) or {}).get("kind", "Kustomization")
        if kind != "Kustomization" or kustomization.parent.resolve() in roots or not ctx.standalone_builds:
            continue  # a Component builds only inside an overlay; roots were built above
        standalone += 1
        run = kustomize(ctx, kubectl, kustomization.parent)
        if run.returncode != 0:
            result.add(ctx.rel(kustomization), f"kubectl kustomize (no flags) failed: {run.stderr.strip()}")
    total = sum(len(b.objects) for b in ctx.builds.values())
    alone = f"{standalone} more kustomizations build on their own" if ctx.standalone_builds else "roots only"
    result.notes.append(f"{len(ctx.builds)} builds, {total} objects; {alone}")
    return result


# --- schema -----------------------------------------------------------------------------------


class KubernetesSchemas:
    """Strict JSON schemas shipped by kubernetes-validate, all errors per object (not just the first)."""

    def __init__(self, version: str) -> None:
        from kubernetes_validate import utils

        self.utils = utils
        self.version = version
        available = [v for v in utils.all_versions() if utils.major_minor(v) == version]
        if not available:
            raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {version}")
        self.directory = f"kubernetes-json-schema/v{available[-1]}-local-strict"
        self.definitions = utils.schema_contents(f"{self.directory}/_definitions.json", version)
        self.validators: dict[tuple[str, str], Any] = {}

    def validator(self, api_version: str, kind: str) -> Any | None:
        key = (api_version, kind)
        if key not in self.validators:
            import jsonschema
            from referencing import Registry, Resource

            api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = self.utils.schema_contents(
                    f"{self.directory}/{kind.lower()}-{api}.json", self.version
                )
            except FileNotFoundError:
                self.validators[key] = None
                return None
            registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
            registry = Resource.from_contents(self.definitions) @ registry
            self.validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self.validators[key]


def subset_validators(root: Path) -> dict[str, Any]:
    """One validator per `<apiVersion>/<kind>` of infra/schemas/*.yaml; the files share their $defs."""
    import jsonschema
    import yaml

    definitions: dict[str, Any] = {}
    kinds: dict[str, Any] = {}
    for path in sorted((root / "infra" / "schemas").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text()) or {}
        for table, merged in (("$defs", definitions), ("kinds", kinds)):
            for name, schema in (spec.get(table) or {}).items():
                if name in merged:
                    raise SystemExit(f"infra/schemas: {table} {name!r} defined twice ({path.name})")
                merged[name] = schema
    return {
        key: jsonschema.Draft202012Validator({**schema, "$defs": definitions})
        for key, schema in kinds.items()
    }


def check_schema(ctx: Context) -> Result:
    from mlops.argo.schema import KINDS as ARGO_KINDS
    from mlops.argo.schema import SCHEDULED_KIND, check_document, validate_strict

    result = Result("schema")
    kubernetes = KubernetesSchemas(ctx.kubernetes_version)
    subsets = subset_validators(ctx.root)
    counts = {"kubernetes": 0, "argo": 0, "subset": 0}
    subset_kinds: set[str] = set()
    for build, obj in ctx.objects():
        where = f"{build.path}: {describe(obj)}"
        api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
        if api_version == "argoproj.io/v1alpha1" and kind in ARGO_KINDS:
            counts["argo"] += 1
            for problem in check_document(obj):
                result.add(where, problem)
            continue
        if api_version == "argoproj.io/v1alpha1" and kind == SCHEDULED_KIND:
            # Argo's schema only: the cluster runs it, `mlops run` does not (not an error here)
            counts["argo"] += 1
            for problem in validate_strict(obj):
                result.add(where, problem)
            continue
        validator = subsets.get(f"{api_version}/{kind}") or kubernetes.validator(api_version, kind)
        if validator is None:
            result.add(where, f"no schema for {api_version} {kind}: add one to infra/schemas/")
            continue
        if f"{api_version}/{kind}" in subsets:
            counts["subset"] += 1
            subset_kinds.add(kind)
        else:
            counts["kubernetes"] += 1
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            result.add(where, f"{json_path(error.absolute_path)}: {error.message}")
    result.notes.append(
        f"{counts['kubernetes']} objects against Kubernetes {ctx.kubernetes_version} (strict), "
        f"{counts['argo']} Argo objects (hera models, strict), {counts['subset']} custom resources "
        f"against field subsets ({', '.join(sorted(subset_kinds))}): their CRDs' full schemas are not validated"
    )
    return result


# --- refs -------------------------------------------------------------------------------------

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


# What a ServiceMonitor endpoint may send to a target that authenticates its /metrics.
SCRAPE_CREDENTIALS = ("bearerTokenSecret", "bearerTokenFile", "authorization", "basicAuth", "oauth2")
# The Inference Extension's endpoint picker serves /metrics only to a Kubernetes token allowed to
# read it (TokenReview + SubjectAccessReview) unless this flag says otherwise.
EPP_IMAGE = "gateway-api-inference-extension/epp"
METRICS_AUTH_OFF = "--metrics-endpoint-auth=false"


def scraped_containers(ctx: Context, services: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The containers of the workloads whose pods the Services select."""
    for service in services:
        selector = service["spec"].get("selector") or {}
        namespace = service["metadata"].get("namespace")
        for _, workload in ctx.objects(*WORKLOADS):
            template = workload["spec"]["template"]
            labels = template.get("metadata", {}).get("labels", {})
            if (
                selector
                and workload["metadata"].get("namespace") == namespace
                and all(labels.get(k) == v for k, v in selector.items())
            ):
                yield from template["spec"].get("containers", [])


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def pod_templates(build: Build) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in build.objects:
        if obj.get("kind") in WORKLOADS:
            yield obj, obj["spec"]["template"]


def names(build: Build, kind: str) -> set[tuple[str | None, str]]:
    return {
        (o["metadata"].get("namespace"), o["metadata"]["name"])
        for o in build.objects
        if o.get("kind") == kind
    }


def secret_names(build: Build) -> set[tuple[str | None, str]]:
    """Secrets of a build: Secret objects, and the targets External Secrets writes from ExternalSecrets."""
    targets = {
        (o["metadata"].get("namespace"), o["spec"]["target"].get("name") or o["metadata"]["name"])
        for o in build.objects
        if o.get("kind") == "ExternalSecret"
    }
    return names(build, "Secret") | targets | EXTERNAL_SECRETS


def external_secret_refs(build: Build, obj: dict[str, Any], result: Result, where: str) -> None:
    """An ExternalSecret's store is in the build (same namespace for a SecretStore); a store's account too."""
    namespace = obj["metadata"].get("namespace")
    if obj.get("kind") == "ExternalSecret":
        store = obj["spec"]["secretStoreRef"]
        scope = namespace if store["kind"] == "SecretStore" else None
        if (scope, store["name"]) not in names(build, store["kind"]):
            result.add(where, f"{store['kind']} {store['name']!r} is not in the build")
        return
    account = obj["spec"]["provider"].get("aws", {}).get("auth", {}).get("jwt", {}).get("serviceAccountRef")
    if account and (namespace, account["name"]) not in names(build, "ServiceAccount"):
        result.add(where, f"serviceAccountRef {account['name']!r} is not a ServiceAccount in {namespace}")


def pod_spec_refs(build: Build, obj: dict[str, Any], pod: dict[str, Any], result: Result, where: str) -> None:
    namespace = obj["metadata"].get("namespace")
    spec = pod.get("spec", {})
    account = spec.get("serviceAccountName", "default")
    if account != "default" and (namespace, account) not in names(build, "ServiceAccount"):
        result.add(where, f"serviceAccountName {account!r} is not in the build")
    config_maps = names(build, "ConfigMap")
    claims = {(namespace, c["metadata"]["name"]) for c in obj["spec"].get("volumeClaimTemplates", [])}
    claims |= names(build, "PersistentVolumeClaim")
    referenced: list[tuple[str, str]] = []
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            if "configMapKeyRef" in source:
                referenced.append(("ConfigMap", source["configMapKeyRef"]["name"]))
            if "secretKeyRef" in source:
                referenced.append(("Secret", source["secretKeyRef"]["name"]))
        for env_from in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in env_from:
                    referenced.append((kind, env_from[key]["name"]))
    mounted = {
        m["name"]
        for c in spec.get("containers", []) + spec.get("initContainers", [])
        for m in c.get("volumeMounts", [])
    }
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            referenced.append(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            referenced.append(("Secret", volume["secret"]["secretName"]))
        if "persistentVolumeClaim" in volume:
            referenced.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        if volume["name"] not in mounted:
            result.add(where, f"volume {volume['name']!r} is mounted by no container")
    for kind, name in referenced:
        known = {
            "ConfigMap": config_maps,
            "Secret": secret_names(build),
            "PersistentVolumeClaim": claims,
        }[kind]
        if (namespace, name) not in known:
            result.add(where, f"{kind} {name!r} is not in the build")


def container_ports(pod: dict[str, Any]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in pod.get("spec", {}).get("containers", []):
        for port in container.get("ports", []):
            ports[port.get("name") or str(port["containerPort"])] = port["containerPort"]
    return ports


def workflow_service_refs(
    build: Build, obj: dict[str, Any], result: Result, where: str, shared: tuple[Build, ...] = ()
) -> None:
    """Default parameter values naming in-cluster services must name something this build runs, or
    a `shared` build deploys beside every overlay (infra/monitoring: the Pushgateway)."""
    services = {
        (s["metadata"].get("namespace"), s["metadata"]["name"]): {
            p["port"] for p in s["spec"].get("ports", [])
        }
        for b in (build, *shared)
        for s in b.objects
        if s.get("kind") == "Service"
    }
    for param in obj["spec"].get("arguments", {}).get("parameters", []):
        value = str(param.get("value", ""))
        url = re.match(r"^https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)", value)
        if url:
            name, namespace, port = url.group(1), url.group(2), int(url.group(3))
            if port not in services.get((namespace, name), set()):
                result.add(
                    where,
                    f"parameter {param['name']}={value}: no Service {namespace}/{name} with port {port}",
                )
        k8s = re.match(r"^k8s://([^/]+)/(.+):(\d+)$", value)
        if k8s:
            namespace, selector, port = k8s.group(1), k8s.group(2), int(k8s.group(3))
            wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
            pods = [
                pod
                for workload, pod in pod_templates(build)
                if workload["metadata"].get("namespace") == namespace
                and matches({"matchLabels": wanted}, pod["metadata"].get("labels", {}))
            ]
            if not any(port in container_ports(pod).values() for pod in pods):
                result.add(
                    where,
                    f"parameter {param['name']}={value}: no pod in {namespace} matches with port {port}",
                )


ARGS_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")


def by_name(build: Build, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    for obj in build.objects:
        meta = obj["metadata"]
        if obj.get("kind") == kind and meta.get("namespace") == namespace and meta["name"] == name:
            return obj
    return None


def rollout_analyses(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, analysis) for a canary's background analysis and each analysis step."""
    canary = spec.get("strategy", {}).get("canary", {})
    if "analysis" in canary:
        yield "background analysis", canary["analysis"]
    for index, step in enumerate(canary.get("steps", [])):
        if "analysis" in step:
            yield f"step {index} analysis", step["analysis"]


def rollout_refs(ctx: Context, build: Build, obj: dict[str, Any], result: Result, where: str) -> None:
    """A Rollout's Deployment, Services, plugin routes, managed header routes and analyses resolve."""
    namespace, spec = obj["metadata"].get("namespace"), obj["spec"]
    ref = spec.get("workloadRef", {})
    workload = by_name(build, ref.get("kind", ""), namespace, ref.get("name", ""))
    labels: dict[str, str] = {}
    if workload is None:
        result.add(where, f"workloadRef {ref.get('kind')} {ref.get('name')!r} is not in the build")
    else:
        labels = workload["spec"]["template"]["metadata"].get("labels", {})
        if not matches(spec.get("selector"), labels):
            result.add(
                where, f"selector does not match the pod template of {ref.get('kind')} {ref.get('name')}"
            )
        if workload["spec"].get("replicas", 1) != 0 and ref.get("scaleDown", "never") == "never":
            result.add(
                where,
                f"{ref.get('kind')} {ref.get('name')} keeps {workload['spec'].get('replicas', 1)} replicas "
                "beside the Rollout's (set its replicas to 0, or scaleDown)",
            )
    canary = spec.get("strategy", {}).get("canary", {})
    monitors = [m for _, m in ctx.objects("ServiceMonitor")]
    services = {}
    for role in ("stableService", "canaryService"):
        name = canary.get(role)
        service = by_name(build, "Service", namespace, name) if name else None
        if service is None:
            result.add(where, f"{role} {name!r} is not a Service in the build")
            continue
        services[role] = name
        if workload is not None and not matches({"matchLabels": service["spec"].get("selector")}, labels):
            result.add(
                where, f"{role} {name!r} does not select the pods of {ref.get('kind')} {ref.get('name')}"
            )
        for monitor in monitors:
            if namespace in monitor["spec"].get("namespaceSelector", {}).get("matchNames", []) and matches(
                monitor["spec"]["selector"], service["metadata"].get("labels", {})
            ):
                result.add(
                    where,
                    f"{role} {name!r} is selected by ServiceMonitor {monitor['metadata']['name']} (pods scraped twice)",
                )
    routing = canary.get("trafficRouting", {})
    plugin = routing.get("plugins", {}).get("argoproj-labs/gatewayAPI", {})
    header_routes = False
    for key, kind in (("httpRoutes", "HTTPRoute"), ("grpcRoutes", "GRPCRoute")):
        for route_ref in plugin.get(key, []):
            header_routes |= bool(route_ref.get("useHeaderRoutes"))
            route = by_name(build, kind, plugin.get("namespace", namespace), route_ref["name"])
            if route is None:
                result.add(where, f"{kind} {route_ref['name']!r} is not in the build")
                continue
            backends = {b["name"] for rule in route["spec"]["rules"] for b in rule.get("backendRefs", [])}
            for role, name in services.items():
                if name not in backends:
                    result.add(where, f"{kind} {route_ref['name']} has no backendRef to the {role} {name!r}")
    managed = {r["name"] for r in routing.get("managedRoutes", [])}
    used = {step["setHeaderRoute"]["name"] for step in canary.get("steps", []) if "setHeaderRoute" in step}
    for name in sorted(used - managed):
        result.add(where, f"setHeaderRoute {name!r} is not listed in trafficRouting.managedRoutes")
    for name in sorted(managed - used):
        result.add(where, f"managedRoutes {name!r} is set by no setHeaderRoute step")
    if used and not header_routes:
        result.add(where, "setHeaderRoute needs a plugin route with useHeaderRoutes: true")
    for what, analysis in rollout_analyses(spec):
        given = {a["name"] for a in analysis.get("args", [])}
        declared: set[str] = set()
        for ref_ in analysis.get("templates", []):
            template = by_name(build, "AnalysisTemplate", namespace, ref_["templateName"])
            if template is None:
                result.add(where, f"{what}: AnalysisTemplate {ref_['templateName']!r} is not in the build")
                continue
            for arg in template["spec"].get("args", []):
                declared.add(arg["name"])
                if "value" not in arg and arg["name"] not in given:
                    result.add(
                        where, f"{what}: argument {arg['name']!r} of {ref_['templateName']} is not given"
                    )
        for name in sorted(given - declared):
            result.add(where, f"{what}: argument {name!r} is declared by no template it uses")


def route_refs(build: Build, obj: dict[str, Any], result: Result, where: str) -> None:
    """Each parentRef is a Gateway listener that admits this kind; each backendRef a Service port."""
    namespace = obj["metadata"].get("namespace")
    for parent in obj["spec"].get("parentRefs", []):
        gateway = by_name(build, "Gateway", parent.get("namespace", namespace), parent["name"])
        if gateway is None:
            result.add(where, f"parentRef Gateway {parent['name']!r} is not in the build")
            continue
        listeners = [
            lst for lst in gateway["spec"]["listeners"] if parent.get("sectionName") in (None, lst["name"])
        ]
        if not listeners:
            result.add(where, f"Gateway {parent['name']} has no listener {parent.get('sectionName')!r}")
        admitting = [
            lst
            for lst in listeners
            if not lst.get("allowedRoutes", {}).get("kinds")
            or obj["kind"] in {k["kind"] for k in lst["allowedRoutes"]["kinds"]}
        ]
        if listeners and not admitting:
            result.add(where, f"no listener of Gateway {parent['name']} admits {obj['kind']}")
    for rule in obj["spec"].get("rules", []):
        for backend in rule.get("backendRefs", []):
            if backend.get("kind") == "InferencePool":
                if by_name(build, "InferencePool", namespace, backend["name"]) is None:
                    result.add(where, f"backendRef InferencePool {backend['name']!r} is not in the build")
                continue
            service = by_name(build, "Service", backend.get("namespace", namespace), backend["name"])
            if service is None:
                result.add(where, f"backendRef Service {backend['name']!r} is not in the build")
            elif backend["port"] not in {p["port"] for p in service["spec"].get("ports", [])}:
                result.add(where, f"backendRef {backend['name']}: the Service has no port {backend['port']}")


def inference_refs(build: Build, obj: dict[str, Any], result: Result, where: str) -> None:
    """An InferencePool selects pods serving its target port and names its endpoint picker's
    Service port; an InferenceModelRewrite names a pool of the build."""
    namespace, spec = obj["metadata"].get("namespace"), obj["spec"]
    if obj["kind"] == "InferenceModelRewrite":
        if by_name(build, "InferencePool", namespace, spec["poolRef"]["name"]) is None:
            result.add(where, f"poolRef InferencePool {spec['poolRef']['name']!r} is not in the build")
        return
    pods = [
        p
        for w, p in pod_templates(build)
        if w["metadata"].get("namespace") == namespace
        and matches(spec["selector"], p["metadata"].get("labels", {}))
    ]
    if not pods:
        result.add(where, "selector matches no pod template in the build")
    for port in spec["targetPorts"]:
        if pods and not any(port["number"] in container_ports(p).values() for p in pods):
            result.add(where, f"targetPort {port['number']} is no container port of the selected pods")
    picker = spec["endpointPickerRef"]
    service = by_name(build, "Service", namespace, picker["name"])
    if service is None:
        result.add(where, f"endpointPickerRef Service {picker['name']!r} is not in the build")
    elif picker["port"]["number"] not in {p["port"] for p in service["spec"].get("ports", [])}:
        result.add(
            where, f"endpointPickerRef {picker['name']}: the Service has no port {picker['port']['number']}"
        )


def analysis_template_refs(obj: dict[str, Any], result: Result, where: str) -> None:
    declared = {a["name"] for a in obj["spec"].get("args", [])}
    for metric in obj["spec"].get("metrics", []):
        for name in sorted(set(ARGS_PLACEHOLDER.findall(json.dumps(metric))) - declared):
            result.add(where, f"metric {metric.get('name')}: {{{{args.{name}}}}} is no declared argument")


def workflow_pod_labels(build: Build, namespace: str | None) -> list[dict[str, str]]:
    """The labels of each step pod a WorkflowTemplate in `namespace` runs (podMetadata + the template's)."""
    labels: list[dict[str, str]] = []
    for obj in build.objects:
        if obj.get("kind") != "WorkflowTemplate" or obj["metadata"].get("namespace") != namespace:
            continue
        common = obj["spec"].get("podMetadata", {}).get("labels", {})
        for template in obj["spec"].get("templates", []):
            if template.get("container") or template.get("script"):
                labels.append({**common, **template.get("metadata", {}).get("labels", {})})
    return labels


def cluster_params_refs(ctx: Context, platform: list[Build], result: Result) -> None:
    """Every in-cluster URL of workflows/params/cluster.yaml into a namespace the overlays deploy Services
    to names a Service port of some overlay (the judge endpoint: infra/judge, gpu overlay)."""
    import yaml

    path = ctx.root / "workflows" / "params" / "cluster.yaml"
    if not path.is_file():
        return
    ports = {
        (s["metadata"].get("namespace"), s["metadata"]["name"], p["port"])
        for build in platform
        for s in build.objects
        if s.get("kind") == "Service"
        for p in s["spec"].get("ports", [])
    }
    for name, value in (yaml.safe_load(path.read_text()) or {}).items():
        url = re.match(r"^https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)", str(value))
        owned = {namespace for namespace, _, _ in ports}  # another install's Services are not checked
        if url and url.group(2) in owned and (url.group(2), url.group(1), int(url.group(3))) not in ports:
            result.add(
                ctx.rel(path),
                f"{name}: {value}: no overlay has a Service {url.group(2)}/{url.group(1)} with port {url.group(3)}",
            )


def check_refs(ctx: Context) -> Result:
    result = Result("refs")
    platform = [b for b in ctx.builds.values() if b.path.startswith("infra/overlays/")]
    # deployed beside every overlay by its own Argo CD application (namespace monitoring)
    shared = tuple(b for b in ctx.builds.values() if b.path == MONITORING_BUILD)
    checked = 0
    for build in ctx.builds.values():
        for obj in build.objects:
            if obj.get("kind") in ("ExternalSecret", "SecretStore"):
                external_secret_refs(build, obj, result, f"{build.path}: {describe(obj)}")
    for build in platform:
        for obj in build.objects:
            kind, namespace = obj.get("kind"), obj["metadata"].get("namespace")
            where = f"{build.path}: {describe(obj)}"
            workloads = [
                (w, p) for w, p in pod_templates(build) if w["metadata"].get("namespace") == namespace
            ]
            checked += 1
            if kind in WORKLOADS:
                pod_spec_refs(build, obj, obj["spec"]["template"], result, where)
            elif kind == "Service":
                pods = [
                    p
                    for _, p in workloads
                    if matches({"matchLabels": obj["spec"].get("selector")}, p["metadata"].get("labels", {}))
                ]
                if not pods:
                    result.add(where, "selector matches no pod template in the build")
                for port in obj["spec"].get("ports", []):
                    target = port.get("targetPort", port["port"])
                    if pods and not any(
                        target in container_ports(p) or target in container_ports(p).values() for p in pods
                    ):
                        result.add(where, f"targetPort {target!r} is no container port of the selected pods")
            elif kind in ("PodDisruptionBudget", "NetworkPolicy"):
                selector = obj["spec"].get("selector") or obj["spec"].get("podSelector")
                labels = [p["metadata"].get("labels", {}) for _, p in workloads]
                if kind == "NetworkPolicy":
                    labels += workflow_pod_labels(build, namespace)
                if (
                    selector
                    and selector.get("matchLabels")
                    and not any(matches(selector, lb) for lb in labels)
                ):
                    result.add(where, "selector matches no pod template in the build")
            elif kind == "RoleBinding":
                if obj["roleRef"]["kind"] == "Role" and (namespace, obj["roleRef"]["name"]) not in names(
                    build, "Role"
                ):
                    result.add(where, f"Role {obj['roleRef']['name']!r} is not in the build")
                for subject in obj.get("subjects", []):
                    if subject["kind"] == "ServiceAccount" and (
                        subject.get("namespace"),
                        subject["name"],
                    ) not in names(build, "ServiceAccount"):
                        result.add(
                            where,
                            f"subject ServiceAccount {subject.get('namespace')}/{subject['name']} is not in the build",
                        )
            elif kind == "WorkflowTemplate":
                account = obj["spec"].get("serviceAccountName")
                if not account or (namespace, account) not in names(build, "ServiceAccount"):
                    result.add(
                        where, f"serviceAccountName {account!r} is not a ServiceAccount in {namespace}"
                    )
                workflow_service_refs(build, obj, result, where, shared)
            elif kind == "Rollout":
                rollout_refs(ctx, build, obj, result, where)
            elif kind in ROUTE_KINDS:
                route_refs(build, obj, result, where)
            elif kind in ("InferencePool", "InferenceModelRewrite"):
                inference_refs(build, obj, result, where)
            elif kind == "AnalysisTemplate":
                analysis_template_refs(obj, result, where)
            elif kind == "CronWorkflow":
                # a schedule submits a WorkflowTemplate of its own namespace: it must be deployed there
                ref = (obj["spec"].get("workflowSpec") or {}).get("workflowTemplateRef") or {}
                if ref and (namespace, ref.get("name")) not in names(build, "WorkflowTemplate"):
                    result.add(
                        where,
                        f"workflowTemplateRef {ref.get('name')!r} is not a WorkflowTemplate in {namespace}",
                    )
    services = [(b, o) for b in (*platform, *shared) for o in b.objects if o.get("kind") == "Service"]
    for build, monitor in ctx.objects("ServiceMonitor"):
        where = f"{build.path}: {describe(monitor)}"
        spec = monitor["spec"]
        namespaces = spec.get("namespaceSelector", {}).get("matchNames", [])
        if set(namespaces) <= EXTERNAL_NAMESPACES:
            result.notes.append(
                f"{describe(monitor)}: targets namespace {', '.join(namespaces)} (another install's Service, not checked)"
            )
            continue
        targets = [
            s
            for _, s in services
            if s["metadata"].get("namespace") in namespaces
            and matches(spec["selector"], s["metadata"].get("labels", {}))
        ]
        if not targets:
            result.add(where, "selects no Service of any overlay")
        for endpoint in spec["endpoints"]:
            if targets and not any(
                endpoint.get("port") in {p.get("name") for p in s["spec"]["ports"]} for s in targets
            ):
                result.add(
                    where, f"port {endpoint.get('port')!r} is not a named port of the selected Services"
                )
            if not any(key in endpoint for key in SCRAPE_CREDENTIALS):
                for container in scraped_containers(ctx, targets):
                    if EPP_IMAGE in container.get("image", "") and METRICS_AUTH_OFF not in container.get(
                        "args", []
                    ):
                        result.add(
                            where,
                            f"scrapes the endpoint picker (container {container['name']}) without a token, and "
                            f"the picker authenticates /metrics unless {METRICS_AUTH_OFF}: every scrape is refused",
                        )
    cluster_params_refs(ctx, platform, result)
    for build, app in ctx.objects("Application"):
        path = app["spec"]["source"].get("path")
        if path and not (ctx.root / path / "kustomization.yaml").is_file():
            result.add(
                f"{build.path}: {describe(app)}",
                f"source.path {path!r} is no kustomization in this repository",
            )
    result.notes.append(f"{checked} platform objects, ServiceMonitors and Applications cross-checked")
    return result


# --- promql -----------------------------------------------------------------------------------


def fill_args(text: str, values: dict[str, str]) -> str:
    """`{{args.x}}` -> values[x], or `0` for an argument without a value."""
    return ARGS_PLACEHOLDER.sub(lambda m: values.get(m.group(1), "0"), text)


def queries(ctx: Context) -> Iterator[tuple[str, str]]:
    for build, rule_set in ctx.objects("PrometheusRule"):
        for group in rule_set["spec"]["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule.get("alert")
                yield f"{build.path}: {describe(rule_set)} {group['name']}/{name}", rule["expr"]
    for build, config_map in ctx.objects("ConfigMap"):
        for key, text in (config_map.get("data") or {}).items():
            if not key.endswith(".json"):
                continue
            for panel in json.loads(text).get("panels", []):
                for target in panel.get("targets", []):
                    where = (
                        f"{build.path}: dashboard {key} panel {panel.get('title')!r} {target.get('refId')}"
                    )
                    yield where, GRAFANA_MACROS.sub("5m", target["expr"])
    for build, template in ctx.objects("AnalysisTemplate"):
        # `{{args.x}}` is filled when the AnalysisRun is made: parse with the argument's default,
        # or a number (valid in a label value and as a threshold alike).
        defaults = {a["name"]: a.get("value", "0") for a in template["spec"].get("args", [])}
        for metric in template["spec"].get("metrics", []):
            query = metric.get("provider", {}).get("prometheus", {}).get("query")
            if query is not None:
                where = f"{build.path}: {describe(template)} metric {metric.get('name')}"
                yield where, fill_args(query, defaults)


def check_promql(ctx: Context) -> Result:
    import promql_parser

    result = Result("promql")
    recorded = {
        rule["record"]
        for _, rule_set in ctx.objects("PrometheusRule")
        for group in rule_set["spec"]["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    count = 0
    for where, expr in queries(ctx):
        count += 1
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            result.add(where, f"PromQL does not parse: {exc}")
        for series in re.findall(r"\bmlops:[A-Za-z0-9_:]+", expr):
            if series not in recorded:
                result.add(where, f"uses {series}, which no recording rule records")
    result.notes.append(f"{count} expressions parsed, {len(recorded)} recording rules")
    return result


# --- images -----------------------------------------------------------------------------------


def repository_path(image: str) -> str:
    """`ghcr.io/mlops-k8s/x:tag@sha256:...` -> `mlops-k8s/x` (registry host, tag and digest dropped)."""
    name = image.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def image_filters(ctx: Context, result: Result) -> dict[str, list[str]]:
    """images.yml's path filter per image (the dorny/paths-filter `filters` block)."""
    import yaml

    path = ctx.root / ".github" / "workflows" / "images.yml"
    if not path.is_file():
        result.add(".github/workflows/images.yml", "missing: nothing builds the images")
        return {}
    workflow = yaml.safe_load(path.read_text())
    for job in workflow.get("jobs", {}).values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("dorny/paths-filter@"):
                filters: dict[str, list[str]] = yaml.safe_load(step["with"]["filters"])
                return filters
    result.add(
        ".github/workflows/images.yml", "no dorny/paths-filter step: images are not built per changed path"
    )
    return {}


def dockerfile_label(dockerfile: Path, label: str) -> str | None:
    found = re.search(rf'{re.escape(label)}="([^"]+)"', dockerfile.read_text())
    return found.group(1) if found else None


def workflow_images(ctx: Context, result: Result) -> Iterator[tuple[str, str]]:
    """(where, image) for every image a WorkflowTemplate or a cluster parameter file names."""
    from mlops.argo.schema import WorkflowFileError, load_workflow
    from mlops.argo.workflow import workflow_files

    for path in workflow_files(ctx.root / "workflows"):
        try:
            doc = load_workflow(path)
        except WorkflowFileError as exc:
            result.add(ctx.rel(path), str(exc))
            continue
        params = {
            p["name"]: p.get("value") for p in doc.get("spec", {}).get("arguments", {}).get("parameters", [])
        }
        for name, value in params.items():
            if name.endswith("-image"):
                yield f"{ctx.rel(path)}: parameter {name}", str(value)
        for template in doc.get("spec", {}).get("templates", []):
            image = (template.get("container") or template.get("script") or {}).get("image")
            if image is None:
                continue
            ref = re.fullmatch(r"\{\{\s*workflow\.parameters\.([\w-]+)\s*\}\}", image)
            where = f"{ctx.rel(path)}: template {template.get('name')}"
            if ref and ref.group(1).endswith("-image") and ref.group(1) in params:
                continue
            if ref or "{{" in image:
                result.add(where, f"image {image!r}: use one `*-image` workflow parameter per image")
            else:
                yield where, image
    for params_file in sorted((ctx.root / "workflows" / "params").glob("*.yaml")):
        if params_file.name == "local.yaml":  # local image names map to local environments
            continue
        import yaml

        for name, value in (yaml.safe_load(params_file.read_text()) or {}).items():
            if str(name).endswith("-image"):
                yield f"{ctx.rel(params_file)}: {name}", str(value)


FULL_MLFLOW = re.compile(r"^mlflow(?=\s*(?:[<>=!~;\[]|$))")  # `mlflow...`, not `mlflow-skinny`


def mlflow_requirements(ctx: Context, info: ModuleType, dockerfile: Path, result: Result, where: str) -> None:
    """An image built from pyproject's requirements gets MLflow's client (mlflow-skinny), never the
    full `mlflow`: no step needs its server stack (SQLAlchemy, Flask, the UI, pandas), whose imports
    cost every step process about half a CPU-second. The mlflow-server image pins its own."""
    text = dockerfile.read_text()
    if "buildinfo.py requirements" not in text:
        return
    found = re.search(r"^ARG EXTRAS=(\S*)", text, re.MULTILINE)
    extras = [e for e in (found.group(1) if found else "").split(",") if e]
    for req in info.requirements(ctx.root / "pyproject.toml", extras):
        if FULL_MLFLOW.match(req):
            result.add(
                where,
                f"installs the full {req!r} (pyproject.toml): images take the client, mlflow-skinny",
            )


def server_requirements(ctx: Context, info: ModuleType, result: Result) -> None:
    """docker/mlflow-server/requirements.txt pins what pyproject's `mlflow-server` extra does (the tests' server)."""
    path = ctx.root / "docker" / "mlflow-server" / "requirements.txt"
    if not path.is_file():
        return
    image = {
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    }
    try:
        tested = set(info.requirements(ctx.root / "pyproject.toml", ["mlflow-server"]))
    except SystemExit as exc:
        result.add("pyproject.toml", f"no `mlflow-server` extra for the tests' MLflow server ({exc})")
        return
    if image != tested:
        result.add(
            ctx.rel(path),
            f"differs from pyproject.toml's mlflow-server extra: only here {sorted(image - tested)}, "
            f"only there {sorted(tested - image)}",
        )


def check_images(ctx: Context) -> Result:
    result = Result("images")
    info = buildinfo(ctx.root)
    dockerfiles = ctx.dockerfiles()
    filters = image_filters(ctx, result)
    for name, dockerfile in dockerfiles.items():
        where = ctx.rel(dockerfile)
        stages: set[str] = set()
        for line in dockerfile.read_text().splitlines():
            source = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line.strip(), re.IGNORECASE)
            if not source:
                continue
            image, stage = source.group(1), source.group(2)
            if image not in stages and not DIGEST.search(image):
                result.add(where, f"base image {image} is not pinned by digest (@sha256:...)")
            if stage:
                stages.add(stage)
        mlflow_requirements(ctx, info, dockerfile, result, where)
        if name not in filters:
            result.add(
                ".github/workflows/images.yml", f"no path filter for image {name} (docker/{name}/Dockerfile)"
            )
            continue
        globs = filters[name]
        for source in [f"docker/{name}", *info.copy_sources(dockerfile)]:
            on_disk = ctx.root / source
            is_file = on_disk.is_file() if on_disk.exists() else "." in Path(source).name
            probe = source if is_file else f"{source}/x"
            if not any(fnmatch.fnmatch(probe, pattern) or probe == pattern for pattern in globs):
                result.add(
                    ".github/workflows/images.yml",
                    f"filter {name} does not cover {source}, which the image copies",
                )
        missing = info.missing_sources(dockerfile, ctx.root)
        if missing:
            result.notes.append(
                f"{name}: not buildable until {', '.join(missing)} exist (images.yml skips it)"
            )
    server_requirements(ctx, info, result)
    for name in filters:
        if name not in dockerfiles:
            result.add(".github/workflows/images.yml", f"filter {name} has no docker/{name}/Dockerfile")
    built = {f"{IMAGE_PREFIX}/{name}" for name in dockerfiles}
    named = 0
    for where, image in workflow_images(ctx, result):
        named += 1
        if repository_path(image) not in built:
            result.add(
                where,
                f"image {image}: no docker/<name>/Dockerfile builds {repository_path(image)} (built: {', '.join(sorted(built))})",
            )
    for build, obj in ctx.objects(*WORKLOADS):
        spec = obj["spec"]["template"]["spec"]
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            image = container["image"]
            where = f"{build.path}: {describe(obj)} container {container['name']}"
            repository = repository_path(image)
            if repository in built:
                version = dockerfile_label(
                    dockerfiles[repository.split("/", 1)[1]], "org.opencontainers.image.version"
                )
                tag = image.split("@", 1)[0].rsplit(":", 1)[-1]
                if version is None or tag != version:
                    result.add(
                        where,
                        f"image {image}: tag must be the Dockerfile's org.opencontainers.image.version ({version})",
                    )
            elif not DIGEST.search(image):
                result.add(where, f"image {image}: third-party images are pinned by digest (@sha256:...)")
    from mlops.argo.workflow import workflow_files

    deployed = {o["metadata"]["name"] for _, o in ctx.objects("WorkflowTemplate")}
    for workflow in workflow_files(ctx.root / "workflows"):
        doc = load_yaml_documents(workflow.read_text())
        if (
            doc
            and doc[0].get("kind") == "WorkflowTemplate"
            and doc[0]["metadata"].get("name") not in deployed
        ):
            result.add(
                ctx.rel(workflow), f"not deployed: add {workflow.name} to workflows/kustomization.yaml"
            )
    result.notes.append(f"{len(dockerfiles)} Dockerfiles, {named} image references from workflows")
    return result


# --- the cluster simulation (scripts/infra_sim) -----------------------------------------------


def render(ctx: Context, path: str, result: Result) -> list[dict[str, Any]] | None:
    """An Application's path as Argo CD renders it by default: plain kustomize, or the folder's YAML."""
    if path in ctx.builds:
        return ctx.builds[path].objects
    directory = ctx.root / path
    if (directory / "kustomization.yaml").is_file():
        run = kustomize(ctx, ctx.tool("kubectl") or "kubectl", directory)
        if run.returncode != 0:
            result.add(path, f"kubectl kustomize (no flags, as Argo CD) failed: {run.stderr.strip()}")
            return None
        return load_yaml_documents(run.stdout)
    if directory.is_dir():
        return [o for f in sorted(directory.glob("*.y*ml")) for o in load_yaml_documents(f.read_text())]
    result.add(path, "no such folder")
    return None


def check_argocd(ctx: Context) -> Result:
    from infra_sim.argocd import admit

    result = Result("argocd")
    projects = {o["metadata"]["name"]: o for _, o in ctx.objects("AppProject")}
    apps = objects = 0
    for build, app in ctx.objects("Application"):
        source = app["spec"].get("source") or {}
        if "path" not in source:
            result.add(f"{build.path}: {describe(app)}", "no source.path: not checkable here")
            continue
        rendered = render(ctx, source["path"], result)
        if rendered is None:
            continue
        apps += 1
        objects += len(rendered)
        where = f"{build.path}: {describe(app)} -> {source['path']}"
        project = projects.get(app["spec"].get("project", "default"))
        for finding in admit(app, project, rendered, where):
            result.add(finding.where, finding.message)
    result.notes.append(f"{apps} Applications, {objects} objects admitted by their AppProjects")
    return result


def sim_builds(ctx: Context, prefix: str = "infra/overlays/") -> list[Any]:
    from infra_sim.common import Build as SimBuild

    return [SimBuild(b.path, b.objects) for b in ctx.builds.values() if b.path.startswith(prefix)]


def check_flows(ctx: Context) -> Result:
    from infra_sim.flows import check_flows as evaluate_flows
    from infra_sim.flows import load_flow_file
    from pydantic import ValidationError

    result = Result("flows")
    where = "infra/flows.yaml"
    import yaml

    try:
        spec = load_flow_file(ctx.root / where)
    except (OSError, ValidationError, yaml.YAMLError) as exc:
        result.add(where, str(exc))
        return result
    findings, notes = evaluate_flows(spec, sim_builds(ctx), where)
    for finding in findings:
        result.add(finding.where, finding.message)
    result.notes.append(f"{len(spec.flows)} flows, {len(spec.denied)} denied samples; " + ", ".join(notes))
    return result


def our_images(ctx: Context) -> list[tuple[str, str]]:
    """(where, image) for every image a build's workloads run, a WorkflowTemplate defaults to, or
    params/cluster.yaml names."""
    import yaml

    found: list[tuple[str, str]] = []
    for build, obj in ctx.objects(*WORKLOADS):
        spec = obj["spec"]["template"]["spec"]
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            found.append((f"{build.path}: {describe(obj)} container {container['name']}", container["image"]))
    for build, obj in ctx.objects("WorkflowTemplate"):
        for param in obj["spec"].get("arguments", {}).get("parameters", []):
            if str(param["name"]).endswith("-image"):
                found.append(
                    (f"{build.path}: {describe(obj)} parameter {param['name']}", str(param.get("value")))
                )
    params = ctx.root / "workflows" / "params" / "cluster.yaml"
    for name, value in (yaml.safe_load(params.read_text()) or {}).items() if params.is_file() else []:
        if str(name).endswith("-image"):
            found.append((f"workflows/params/cluster.yaml: {name}", str(value)))
    return found


def check_consistency(ctx: Context) -> Result:
    import yaml
    from infra_sim import consistency
    from pydantic import ValidationError

    result = Result("consistency")
    params_where = "workflows/params/cluster.yaml"
    params_file = ctx.root / params_where
    params = yaml.safe_load(params_file.read_text()) or {} if params_file.is_file() else {}
    builds = sim_builds(ctx)
    findings = consistency.check_base(builds, params, params_where)
    images = our_images(ctx)
    versions = {
        name: dockerfile_label(path, "org.opencontainers.image.version")
        for name, path in ctx.dockerfiles().items()
    }
    findings += consistency.check_images(images, versions, IMAGE_PREFIX)
    images_yml = ctx.root / ".github" / "workflows" / "images.yml"
    if images_yml.is_file() and ":latest" in images_yml.read_text():
        result.add(".github/workflows/images.yml", "pushes a `latest` tag: a mutable tag nothing may pin")
    try:
        gpu = consistency.load_gpu_file(ctx.root / "infra" / "gpu.yaml")
    except (OSError, ValidationError) as exc:
        result.add("infra/gpu.yaml", str(exc))
    else:
        findings += consistency.check_gpu(gpu, builds, "infra/gpu.yaml")
        findings += consistency.check_cluster_params(gpu, params, params_where)
    for finding in findings:
        result.add(finding.where, finding.message)
    result.notes.append(f"{len(images)} image references, {len(builds)} overlays")
    return result


def check_podsecurity(ctx: Context) -> Result:
    from infra_sim.podsecurity import check_pod_security, executor_settings

    result = Result("podsecurity")
    executor = executor_settings(sim_builds(ctx, "infra/argo-workflows"))
    builds = sim_builds(ctx)
    for finding in check_pod_security(builds, executor):
        result.add(finding.where, finding.message)
    pods = sum(1 for b in builds for o in b.objects if o.get("kind") in (*WORKLOADS, "WorkflowTemplate"))
    result.notes.append(
        f"{pods} workloads and WorkflowTemplates in {len(builds)} overlays against `restricted`"
    )
    return result


# --- identities -------------------------------------------------------------------------------

IDENTITY_ENV = {"MLFLOW_TRACKING_USERNAME": "username", "MLFLOW_TRACKING_PASSWORD": "password"}


def mounted_identity(container: dict[str, Any], volumes: list[dict[str, Any]]) -> str | None:
    """The Secret a pod container mounts as MLflow's credentials file (`$HOME/.mlflow/credentials`)."""
    for mount in container.get("volumeMounts", []):
        if not mount["mountPath"].rstrip("/").endswith("/.mlflow"):
            continue
        volume = next((v for v in volumes if v["name"] == mount["name"]), {})
        secret = volume.get("secret", {})
        if any(item.get("path") == "credentials" for item in secret.get("items", [])):
            return str(secret["secretName"])
    return None


def container_identity(
    container: dict[str, Any], volumes: list[dict[str, Any]] | None = None
) -> tuple[str | None, list[str]]:
    """(Secret, problems) of a container that talks to MLflow: both variables from one Secret's keys
    (a pod container may mount that Secret's `credentials` as MLflow's credentials file instead)."""
    env = {e["name"]: e for e in container.get("env") or []}
    if "MLFLOW_TRACKING_URI" not in env:
        return None, []
    mounted = mounted_identity(container, volumes or [])
    if mounted and not set(IDENTITY_ENV) & set(env):
        return mounted, []
    secrets: set[str] = set()
    problems: list[str] = []
    for variable, key in IDENTITY_ENV.items():
        entry = env.get(variable)
        ref = (entry or {}).get("valueFrom", {}).get("secretKeyRef")
        if entry is None:
            problems.append(
                f"sets MLFLOW_TRACKING_URI but no {variable}: it would reach MLflow without an identity"
            )
        elif not ref:
            problems.append(f"{variable} is not read from a Secret (valueFrom.secretKeyRef)")
        elif ref.get("key") != key:
            problems.append(f"{variable} reads key {ref.get('key')!r} of {ref['name']}, not {key!r}")
        else:
            secrets.add(ref["name"])
    if len(secrets) > 1:
        problems.append(f"username and password from different Secrets ({', '.join(sorted(secrets))})")
    return (secrets.pop() if len(secrets) == 1 else None), problems


def external_secret_for(build: Build, namespace: str | None, secret: str) -> dict[str, Any] | None:
    for obj in build.objects:
        if (
            obj.get("kind") == "ExternalSecret"
            and obj["metadata"].get("namespace") == namespace
            and (obj["spec"]["target"].get("name") or obj["metadata"]["name"]) == secret
        ):
            return obj
    return None


def remote_ref(external: dict[str, Any], secret_key: str) -> tuple[str, str] | None:
    for item in external["spec"]["data"]:
        if item["secretKey"] == secret_key:
            return item["remoteRef"]["key"], item["remoteRef"].get("property", "")
    return None


def client_remote(external: dict[str, Any]) -> tuple[str | None, tuple[str, str] | None]:
    """(MLflow user name, Secrets Manager entry of its password) of a client identity's ExternalSecret."""
    data = external["spec"]["target"].get("template", {}).get("data", {})
    password = re.fullmatch(r"\{\{\s*\.(\w+)\s*\}\}", str(data.get("password", "")).strip())
    return data.get("username"), remote_ref(external, password.group(1)) if password else None


def server_users(build: Build, result: Result) -> dict[str, tuple[str, str]] | None:
    """user -> Secrets Manager entry, for the users the MLflow pods create (sync_users.py --users-dir)."""
    for obj in build.objects:
        if obj.get("kind") != "Deployment" or obj["metadata"]["name"] != "mlflow":
            continue
        where = f"{build.path}: {describe(obj)}"
        spec = obj["spec"]["template"]["spec"]
        server = next((c for c in spec["containers"] if c["name"] == "mlflow"), None)
        if server is None or "--app-name=basic-auth" not in server.get("args", []):
            result.add(
                where, "MLflow does not run its basic-auth app (--app-name=basic-auth): any pod may write"
            )
        sync = next(
            (c for c in spec["containers"] if "sync_users.py" in " ".join(c.get("command", []))), None
        )
        if sync is None:
            result.add(
                where, "no container runs sync_users.py: the workflows' MLflow users are never created"
            )
            return None
        directory = next(
            (a.split("=", 1)[1] for a in sync.get("args", []) if a.startswith("--users-dir=")), None
        )
        mount = next((m for m in sync.get("volumeMounts", []) if m["mountPath"] == directory), None)
        volume = next((v for v in spec.get("volumes", []) if mount and v["name"] == mount["name"]), None)
        secret = (volume or {}).get("secret", {}).get("secretName")
        external = external_secret_for(build, "mlops", secret) if secret else None
        if external is None:
            result.add(where, f"the users sidecar's --users-dir {directory} is no ExternalSecret's Secret")
            return None
        return {
            item["secretKey"]: (item["remoteRef"]["key"], item["remoteRef"].get("property", ""))
            for item in external["spec"]["data"]
        }
    return None


def identity_refs(
    build: Build,
    namespace: str | None,
    secret: str,
    users: dict[str, tuple[str, str]],
    result: Result,
    where: str,
) -> None:
    """The identity's Secret is written by an ExternalSecret for a user MLflow creates, with its password."""
    external = external_secret_for(build, namespace, secret)
    if external is None:
        result.add(where, f"MLflow identity Secret {secret!r} is written by no ExternalSecret in {namespace}")
        return
    username, password_ref = client_remote(external)
    if username not in users:
        result.add(where, f"MLflow user {username!r} (Secret {secret}) is not among the users MLflow creates")
    elif password_ref != users[username]:
        result.add(
            where,
            f"Secret {secret}: the password of {username} is read from {password_ref}, MLflow's from {users[username]}",
        )


def check_identities(ctx: Context) -> Result:
    result = Result("identities")
    platform = [b for b in ctx.builds.values() if b.path.startswith("infra/overlays/")]
    counted: dict[str, str] = {}
    for build in platform:
        users = server_users(build, result)
        if users is None:
            continue
        for obj in build.objects:
            kind, namespace = obj.get("kind"), obj["metadata"].get("namespace")
            if kind == "WorkflowTemplate":
                containers = [
                    (f"template {t['name']}", t["container"])
                    for t in obj["spec"]["templates"]
                    if t.get("container")
                ]
            elif kind in WORKLOADS:
                spec = obj["spec"]["template"]["spec"]
                containers = [(f"container {c['name']}", c) for c in spec.get("containers", [])]
            else:
                continue
            volumes = obj["spec"]["template"]["spec"].get("volumes", []) if kind in WORKLOADS else []
            identities: set[str] = set()
            for label, container in containers:
                where = f"{build.path}: {describe(obj)} {label}"
                secret, problems = container_identity(container, volumes)
                for problem in problems:
                    result.add(where, problem)
                if secret:
                    identities.add(secret)
                    identity_refs(build, namespace, secret, users, result, where)
            if len(identities) > 1:
                result.add(
                    f"{build.path}: {describe(obj)}",
                    f"one identity per workflow: its templates use {', '.join(sorted(identities))}",
                )
            if identities:
                counted[describe(obj)] = identities.pop()
    families = sorted(set(counted.values()))
    result.notes.append(f"{len(counted)} workflows and pods with an MLflow identity ({', '.join(families)})")
    return result


# --- hadolint, GitHub workflows, checkov ------------------------------------------------------


def missing_tool(result: Result, name: str) -> Result:
    result.add(
        name, "not found: run in the infra environment (python3 scripts/ensure_venv.py --extras infra)"
    )
    return result


def check_hadolint(ctx: Context) -> Result:
    result = Result("hadolint")
    hadolint = ctx.tool("hadolint")
    if not hadolint:
        return missing_tool(result, "hadolint")
    files = [str(p) for p in ctx.dockerfiles().values()]
    config = str(ctx.root / "docker" / "hadolint.yaml")
    run = subprocess.run([hadolint, "--no-color", "--config", config, *files], capture_output=True, text=True)
    for line in (run.stdout + run.stderr).splitlines():
        file, _, message = line.partition(" ")
        result.add(ctx.rel(Path(file.split(":")[0]).resolve()) + file[len(file.split(":")[0]) :], message)
    if run.returncode != 0 and not result.findings:
        result.add("hadolint", f"exited {run.returncode} without findings")
    result.notes.append(f"{len(files)} Dockerfiles")
    return result


def check_gha(ctx: Context) -> Result:
    import yaml

    result = Result("gha")
    files = sorted((ctx.root / ".github" / "workflows").glob("*.y*ml"))
    validator = ctx.tool("check-jsonschema")
    if not validator:
        return missing_tool(result, "check-jsonschema")
    run = subprocess.run(
        [
            validator,
            "--builtin-schema",
            "vendor.github-workflows",
            "--output-format",
            "json",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        report = {"errors": [{"filename": "check-jsonschema", "path": "", "message": run.stderr.strip()}]}
    for error in report.get("errors", []) + report.get("parse_errors", []):
        # For "not valid under any of the given schemas", the deepest sub-error is the useful one.
        best = error.get("best_deep_match") or error
        where = (
            ctx.rel(Path(error["filename"]))
            if Path(error.get("filename", "")).is_absolute()
            else "check-jsonschema"
        )
        result.add(where, f"{best.get('path', '')}: {best.get('message', error)}")
    if run.returncode != 0 and not result.findings:
        result.add("check-jsonschema", f"exited {run.returncode}: {run.stderr.strip()[-300:]}")
    for path in files:
        where = ctx.rel(path)
        text = path.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            used = re.search(r"\buses:\s*([^\s#]+)", line)
            if used and not used.group(1).startswith("./"):
                if not SHA_PINNED.match(used.group(1)):
                    result.add(f"{where}:{number}", f"{used.group(1)}: pin actions by full commit SHA")
                elif "#" not in line:
                    result.add(
                        f"{where}:{number}", f"{used.group(1)}: say the version in a comment (# vX.Y.Z)"
                    )
            if re.search(r"aws-(access-key-id|secret-access-key)|AWS_SECRET_ACCESS_KEY", line):
                result.add(f"{where}:{number}", "static AWS keys: use role-to-assume (GitHub OIDC)")
        workflow = yaml.safe_load(text)
        if "permissions" not in workflow:
            result.add(where, "no top-level `permissions`: the token would get the repository default")
    result.notes.append(f"{len(files)} workflows against the vendored GitHub workflow schema")
    return result


def checkov_skips(ctx: Context, result: Result) -> None:
    """Every skipped check needs its reason in a comment right above it."""
    lines = (ctx.root / "infra" / "checkov.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        skipped = re.match(r"^\s*-\s*(CKV\w+)", line)
        if skipped and not (index and lines[index - 1].strip().startswith("#")):
            result.add(
                "infra/checkov.yaml", f"skip {skipped.group(1)} has no reason (a comment line above it)"
            )
        elif skipped:
            result.notes.append(f"skipped {skipped.group(1)} (reason in infra/checkov.yaml)")


def check_checkov(ctx: Context) -> Result:
    import yaml

    result = Result("checkov")
    checkov = ctx.tool("checkov")
    if not checkov:
        return missing_tool(result, "checkov")
    checkov_skips(ctx, result)
    with tempfile.TemporaryDirectory(prefix="checkov-") as scratch:
        where_of: dict[str, str] = {}
        for build in ctx.builds.values():
            for index, obj in enumerate(build.objects):
                file = Path(scratch) / f"{index:03d}-{re.sub(r'[^A-Za-z0-9]+', '-', build.path)}.yaml"
                file.write_text(yaml.safe_dump(obj, sort_keys=False))
                where_of[file.name] = f"{build.path}: {describe(obj)}"
        env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
        run = subprocess.run(
            [
                checkov,
                "--directory",
                scratch,
                "--framework",
                "kubernetes",
                "argo_workflows",
                "--skip-download",
                "--config-file",
                str(ctx.root / "infra" / "checkov.yaml"),
                "--output",
                "json",
                "--compact",
            ],
            capture_output=True,
            text=True,
            env=env,
        )
    try:
        reports = json.loads(run.stdout or "[]")
    except json.JSONDecodeError:
        result.add(
            "checkov", f"unreadable output (exit {run.returncode}): {(run.stderr or run.stdout)[-500:]}"
        )
        return result
    passed = skipped = 0
    for report in reports if isinstance(reports, list) else [reports]:
        summary = report.get("summary", {})
        passed += summary.get("passed", 0)
        skipped += summary.get("skipped", 0)
        if summary.get("parsing_errors"):
            result.add(
                report.get("check_type", "checkov"), f"{summary['parsing_errors']} files could not be parsed"
            )
        for failed in report.get("results", {}).get("failed_checks", []):
            path = str(failed.get("file_path", "?"))
            where = where_of.get(Path(path).name, path)
            result.add(where, f"{failed['check_id']} {failed['check_name']}")
    if not passed:
        result.add("checkov", f"ran no check (exit {run.returncode}): {run.stderr.strip()[-300:]}")
    result.notes.append(f"{passed} passed, {skipped} skipped")
    return result


CHECKS: dict[str, Callable[[Context], Result]] = {
    "kustomize": check_kustomize,
    "schema": check_schema,
    "refs": check_refs,
    "promql": check_promql,
    "images": check_images,
    "argocd": check_argocd,
    "flows": check_flows,
    "consistency": check_consistency,
    "podsecurity": check_podsecurity,
    "identities": check_identities,
    "hadolint": check_hadolint,
    "gha": check_gha,
    "checkov": check_checkov,
}
NEEDS_BUILDS = {
    "schema",
    "refs",
    "promql",
    "images",
    "identities",
    "argocd",
    "flows",
    "consistency",
    "podsecurity",
    "checkov",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="append", choices=list(CHECKS), help="run only these (repeatable)")
    parser.add_argument("--skip", action="append", choices=list(CHECKS), default=[], help="leave these out")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this clone)")
    parser.add_argument(
        "--kubernetes-version", default=KUBERNETES_VERSION, help="schemas to validate against"
    )
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument(
        "--kustomize-cache",
        type=Path,
        help="keep each successful `kubectl kustomize` output in this folder, keyed by a hash of every "
        "file the build reads, and read it back for the same inputs (for many runs over copies of one "
        "tree, as the tests' broken copies are; off by default)",
    )
    args = parser.parse_args(argv)
    selected = [name for name in CHECKS if (not args.check or name in args.check) and name not in args.skip]
    standalone = "kustomize" in selected
    if any(name in NEEDS_BUILDS for name in selected) and not standalone:
        selected.insert(0, "kustomize")  # the builds the others read, the roots only
    ctx = Context(
        args.root.resolve(),
        args.kubernetes_version,
        standalone_builds=standalone,
        kustomize_cache=args.kustomize_cache,
    )
    results = []
    for name in selected:
        result = CHECKS[name](ctx)
        results.append(result)
        for finding in result.findings:
            print(f"[{name}] {finding.where}: {finding.message}", flush=True)
    print()
    for result in results:
        status = "ok" if not result.findings else f"{len(result.findings)} problem(s)"
        print(f"{result.name:<10} {status:<14} {'; '.join(result.notes)}")
    if args.json:
        payload = {r.name: {"findings": [f.__dict__ for f in r.findings], "notes": r.notes} for r in results}
        args.json.write_text(json.dumps(payload, indent=2))
    return 1 if any(r.findings for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
