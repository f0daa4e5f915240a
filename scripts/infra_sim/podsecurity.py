"""Pod Security Standard `restricted` (Kubernetes' pod-security admission, version latest), plus
requests and limits on every container, for platform pods and for the pods Argo makes of each
WorkflowTemplate.

A workflow pod is built as the controller builds it: the template's container merged over
`spec.templateDefaults.container` (strategic merge: maps merge, volumeMounts by mountPath, env by
name), the pod security context of the workflow (or the template's), the workflow's volumes, and
Argo's `init` and `wait` containers with the controller's `executor` settings
(workflow-controller-configmap). `podSpecPatch` is not applied: security settings must not
depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra_sim.common import WORKLOADS, Build, Finding, describe, quantity

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
ENFORCE = "pod-security.kubernetes.io/enforce"
MERGE_KEYS = {"volumeMounts": "mountPath", "env": "name", "ports": "containerPort", "volumes": "name"}


def strategic_merge(base: Any, patch: Any, key: str = "") -> Any:
    """`patch` over `base` the way Argo merges templateDefaults (Kubernetes strategic merge)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for name, value in patch.items():
            merged[name] = strategic_merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        merge_key = MERGE_KEYS[key]
        out = {item.get(merge_key): item for item in base}
        for item in patch:
            existing = out.get(item.get(merge_key))
            out[item.get(merge_key)] = strategic_merge(existing, item) if existing else item
        return list(out.values())
    return patch


def workflow_pods(
    template_doc: Mapping[str, Any], executor: Mapping[str, Any] | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(template name, pod spec) for every template of a WorkflowTemplate that runs a pod."""
    spec = template_doc["spec"]
    defaults = (spec.get("templateDefaults") or {}).get("container") or {}
    for template in spec.get("templates", []):
        body = template.get("container") or template.get("script")
        if body is None:
            continue
        main = {**strategic_merge(defaults, body), "name": "main"}
        argo = [{**(executor or {}), "name": name} for name in ("init", "wait")]
        yield (
            template["name"],
            {
                "securityContext": template.get("securityContext") or spec.get("securityContext") or {},
                "initContainers": argo[:1],
                "containers": [main, argo[1]],
                "volumes": spec.get("volumes") or [],
                "hostNetwork": template.get("hostNetwork", spec.get("hostNetwork", False)),
            },
        )


def container_problems(
    pod: Mapping[str, Any], container: Mapping[str, Any], writable_root: bool
) -> Iterator[str]:
    pod_context = pod.get("securityContext") or {}
    context = container.get("securityContext") or {}
    name = container.get("name")
    if context.get("privileged"):
        yield f"container {name}: privileged"
    if context.get("allowPrivilegeEscalation") is not False:
        yield f"container {name}: allowPrivilegeEscalation must be false"
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        yield f"container {name}: capabilities must drop ALL"
    added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
    if added:
        yield f"container {name}: adds capabilities {', '.join(sorted(added))}"
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        yield f"container {name}: runAsNonRoot must be true (container or pod)"
    if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
        yield f"container {name}: runAsUser 0"
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        yield f"container {name}: seccompProfile must be RuntimeDefault or Localhost (container or pod)"
    if not writable_root and context.get("readOnlyRootFilesystem") is not True:
        yield f"container {name}: readOnlyRootFilesystem must be true (mount an emptyDir where it writes)"
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            yield f"container {name}: hostPort {port['hostPort']}"
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in (resources.get(part) or {})]
        if missing:
            yield f"container {name}: no {part} for {', '.join(missing)}"
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for resource, requested in requests.items():
        try:
            if resource in limits and quantity(requested) > quantity(limits[resource]):
                yield f"container {name}: {resource} request {requested} exceeds its limit {limits[resource]}"
        except ValueError as exc:
            yield f"container {name}: {exc}"
        if "/" in resource and resource not in limits:
            yield f"container {name}: extended resource {resource} needs a limit (equal to the request)"


def pod_problems(pod: Mapping[str, Any], writable_root: frozenset[str] = frozenset()) -> list[str]:
    """Every `restricted` violation (and missing request or limit) of one pod spec."""
    problems = [f"{field} is true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)]
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(
                f"volume {volume.get('name')}: type {', '.join(sorted(kinds - ALLOWED_VOLUMES))} not allowed"
            )
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        problems.extend(container_problems(pod, container, container.get("name") in writable_root))
    return problems


def executor_settings(builds: list[Build]) -> dict[str, Any] | None:
    """The `executor` of workflow-controller-configmap, from the first build that renders it."""
    import yaml

    for build in builds:
        for obj in build.of_kind("ConfigMap"):
            if obj["metadata"]["name"] == "workflow-controller-configmap":
                text = (obj.get("data") or {}).get("executor")
                return yaml.safe_load(text) if text else {}
    return None


def check_pod_security(platform: list[Build], executor: Mapping[str, Any] | None) -> list[Finding]:
    """Every pod of the platform builds, workflow pods included, against `restricted`."""
    found: list[Finding] = []
    # Argo's executor stages output artifacts under /tmp on its root filesystem.
    argo_writable = frozenset({"init", "wait"})
    for build in platform:
        enforced = {
            o["metadata"]["name"]
            for o in build.of_kind("Namespace")
            if (o["metadata"].get("labels") or {}).get(ENFORCE) == "restricted"
        }
        pods: list[tuple[str, str, dict[str, Any], frozenset[str]]] = []
        for obj in build.of_kind(*WORKLOADS):
            pods.append(
                (
                    describe(obj),
                    obj["metadata"].get("namespace", ""),
                    obj["spec"]["template"]["spec"],
                    frozenset(),
                )
            )
        for obj in build.of_kind("WorkflowTemplate"):
            for template, pod in workflow_pods(obj, executor):
                pods.append(
                    (
                        f"{describe(obj)} template {template}",
                        obj["metadata"].get("namespace", ""),
                        pod,
                        argo_writable,
                    )
                )
        if executor is None and any(o.get("kind") == "WorkflowTemplate" for o in build.objects):
            found.append(
                Finding(build.path, "no workflow-controller-configmap executor settings in any build")
            )
        for namespace in sorted({namespace for _, namespace, _, _ in pods} - enforced):
            found.append(
                Finding(build.path, f"namespace {namespace} runs pods but does not set {ENFORCE}: restricted")
            )
        for what, _, pod, writable in pods:
            for problem in pod_problems(pod, writable):
                found.append(Finding(f"{build.path}: {what}", problem))
    return found
