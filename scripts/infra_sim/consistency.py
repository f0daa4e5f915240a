"""Values that live in several files and must agree for the cluster path to work.

- the base vLLM serves (`VLLM_BASE_MODEL` of the `vllm` ConfigMap) is the base cluster training
  fine-tunes (`base-model-source` in workflows/params/cluster.yaml and the WorkflowTemplates'
  defaults): otherwise the deployment's base check refuses every adapter;
- every image of ours (`<registry>/mlops-k8s/<name>`) in manifests, WorkflowTemplate defaults and
  params/cluster.yaml comes from the one registry images.yml pushes to (ECR), pinned by the
  Dockerfile's version tag, `sha-<commit>` or a digest, never `latest`;
- the GPU steps (infra/gpu.yaml) request a GPU, tolerate the GPU taint and select GPU nodes in
  each gpu overlay; nothing in a cpu overlay requests a GPU.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from infra_sim.common import WORKLOADS, Build, Finding, describe, quantity

GPU = "nvidia.com/gpu"
ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SHA_TAG = re.compile(r"^sha-[0-9a-f]{40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuStep(Strict):
    workflow: str
    template: str


class GpuFile(Strict):
    gpu_overlays: list[str]
    cpu_overlays: list[str] = Field(default_factory=list)
    steps: list[GpuStep]
    cluster_params: dict[str, str] = Field(default_factory=dict)


def load_gpu_file(path: Path) -> GpuFile:
    import yaml

    return GpuFile.model_validate(yaml.safe_load(path.read_text()) or {})


def parameter_defaults(workflow: Mapping[str, Any]) -> dict[str, str]:
    params = ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    return {str(p["name"]): str(p.get("value", "")) for p in params}


def location(uri: str) -> str:
    """`s3://bucket/key/` -> `bucket/key`, as the deployment's base check compares them."""
    return uri.removeprefix("s3://").strip("/")


def check_base(builds: list[Build], cluster_params: Mapping[str, Any], params_where: str) -> list[Finding]:
    found: list[Finding] = []
    for build in builds:
        served = [
            (describe(o), str(o["data"]["VLLM_BASE_MODEL"]))
            for o in build.of_kind("ConfigMap")
            if "VLLM_BASE_MODEL" in (o.get("data") or {})
        ]
        for what, base in served:
            trained = str(cluster_params.get("base-model-source", ""))
            if location(trained) != location(base):
                found.append(
                    Finding(
                        params_where,
                        f"base-model-source {trained or '(unset)'} is not the base vLLM serves "
                        f"({build.path}: {what} VLLM_BASE_MODEL={base})",
                    )
                )
            for workflow in build.of_kind("WorkflowTemplate"):
                default = parameter_defaults(workflow).get("base-model-source")
                if default is not None and location(default) != location(base):
                    found.append(
                        Finding(
                            f"{build.path}: {describe(workflow)}",
                            f"base-model-source default {default} is not the base vLLM serves ({what}: {base})",
                        )
                    )
    return found


def split_image(image: str) -> tuple[str, str, str | None, str | None]:
    """(registry host, repository path, tag, digest); host '' for a Docker Hub short name."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    host = first if rest and ("." in first or ":" in first or first == "localhost") else ""
    path = rest if host else name
    tag = None
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    return host, path, tag, digest or None


def check_images(
    images: list[tuple[str, str]], versions: Mapping[str, str | None], prefix: str
) -> list[Finding]:
    """Our images: one ECR registry, pinned by version tag, sha-<commit> or digest, never latest."""
    found: list[Finding] = []
    ours = [(where, image, *split_image(image)) for where, image in images]
    ours = [entry for entry in ours if entry[3].startswith(f"{prefix}/")]
    hosts = Counter(host for _, _, host, *_ in ours)
    registry = hosts.most_common(1)[0][0] if hosts else ""
    for where, image, host, path, tag, digest in ours:
        name = path.split("/", 1)[1]
        if not ECR_HOST.match(host):
            found.append(Finding(where, f"image {image}: not from the ECR registry images.yml pushes to"))
        elif host != registry:
            found.append(Finding(where, f"image {image}: registry {host}, while the others use {registry}"))
        if digest is not None:
            if not DIGEST.match(digest):
                found.append(Finding(where, f"image {image}: malformed digest"))
            continue
        version = versions.get(name)
        if tag is None or tag == "latest":
            found.append(
                Finding(where, f"image {image}: `latest` is mutable; pin {version or 'sha-<commit>'}")
            )
        elif tag != version and not SHA_TAG.match(tag):
            found.append(
                Finding(
                    where,
                    f"image {image}: tag {tag} is neither docker/{name}'s version ({version}) nor sha-<commit>",
                )
            )
    for name, version in sorted(versions.items()):
        if version is None:
            found.append(
                Finding(
                    f"docker/{name}/Dockerfile", "no org.opencontainers.image.version: nothing to pin it by"
                )
            )
    return found


def containers(template: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    spec = template.get("spec", template)
    yield from [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def gpu_limit(container: Mapping[str, Any]) -> Any:
    resources = container.get("resources") or {}
    return (resources.get("limits") or {}).get(GPU) or (resources.get("requests") or {}).get(GPU)


def check_gpu(spec: GpuFile, builds: list[Build], where: str) -> list[Finding]:
    found: list[Finding] = []
    by_path = {b.path: b for b in builds}
    for path in [*spec.gpu_overlays, *spec.cpu_overlays]:
        if path not in by_path:
            found.append(Finding(where, f"{path}: no such build"))
    for path in spec.gpu_overlays:
        build = by_path.get(path)
        if build is None:
            continue
        workflows = {o["metadata"]["name"]: o for o in build.of_kind("WorkflowTemplate")}
        for step in spec.steps:
            at = f"{path}: WorkflowTemplate {step.workflow} template {step.template}"
            workflow_spec = workflows.get(step.workflow, {}).get("spec", {})
            template = next(
                (t for t in workflow_spec.get("templates", []) if t["name"] == step.template), None
            )
            if template is None:
                found.append(Finding(at, "not in the build: a GPU step must be deployed where the GPUs are"))
                continue
            container = template.get("container") or template.get("script") or {}
            limit = gpu_limit(container)
            if limit is None or quantity(limit) < 1:
                found.append(Finding(at, f"requests no {GPU}"))
            tolerations = template.get("tolerations") or workflow_spec.get("tolerations") or []
            if not any(
                t.get("key") == GPU
                and t.get("operator", "Equal") in ("Exists", "Equal")
                and t.get("effect") in (None, "", "NoSchedule")
                for t in tolerations
            ):
                found.append(Finding(at, f"does not tolerate the {GPU} taint (NoSchedule)"))
            placement = (
                template.get("nodeSelector")
                or template.get("affinity")
                or workflow_spec.get("nodeSelector")
                or workflow_spec.get("affinity")
            )
            if not placement:
                found.append(Finding(at, "selects no GPU node (nodeSelector or affinity)"))
    for path in spec.cpu_overlays:
        build = by_path.get(path)
        if build is None:
            continue
        for obj in build.of_kind(*WORKLOADS):
            for container in containers(obj["spec"]["template"]):
                if gpu_limit(container) is not None:
                    found.append(
                        Finding(f"{path}: {describe(obj)}", f"container {container['name']} requests a GPU")
                    )
        for obj in build.of_kind("WorkflowTemplate"):
            for template in obj["spec"].get("templates", []):
                container = template.get("container") or template.get("script") or {}
                if gpu_limit(container) is not None:
                    found.append(
                        Finding(
                            f"{path}: {describe(obj)} template {template['name']}",
                            "requests a GPU: never scheduled here",
                        )
                    )
    return found


def check_cluster_params(spec: GpuFile, params: Mapping[str, Any], where: str) -> list[Finding]:
    return [
        Finding(where, f"{key}: {params.get(key)!r}, the cluster needs {value!r} (infra/gpu.yaml)")
        for key, value in spec.cluster_params.items()
        if str(params.get(key)) != value
    ]
