"""Argo CD's admission of an Application's rendered objects by its AppProject.

What Argo CD refuses at sync time, restated (argo-cd `AppProject` semantics):
- `sourceRepos`: the Application's repoURL matches one (globs).
- `destinations`: the Application's server and namespace match one; so does every namespaced
  object's namespace (an object without one gets the Application's destination namespace).
- cluster-scoped kinds need a `clusterResourceWhitelist` entry (none: none allowed) and no
  `clusterResourceBlacklist` entry; namespaced kinds need a `namespaceResourceWhitelist` entry
  when that list is set (unset: all allowed) and no `namespaceResourceBlacklist` entry. Group and
  kind are globs.
- the built-in project `default` allows everything (unless the repository defines it).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from infra_sim.common import Finding, api_group, describe

# Cluster-scoped kinds (group, kind) a platform repository may render; anything else is namespaced.
CLUSTER_SCOPED = {
    ("", "Namespace"),
    ("", "PersistentVolume"),
    ("", "Node"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("gateway.networking.k8s.io", "GatewayClass"),
    ("argoproj.io", "ClusterWorkflowTemplate"),
    ("argoproj.io", "ClusterAnalysisTemplate"),
    ("external-secrets.io", "ClusterSecretStore"),
    ("external-secrets.io", "ClusterExternalSecret"),
    ("cert-manager.io", "ClusterIssuer"),
}


def glob(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


def listed(entries: list[Mapping[str, str]] | None, group: str, kind: str) -> bool:
    return any(glob(e.get("group", ""), group) and glob(e.get("kind", ""), kind) for e in entries or [])


def destination_allowed(project: Mapping[str, Any], server: str, namespace: str) -> bool:
    return any(
        glob(d.get("server", "*"), server) and glob(d.get("namespace", "*"), namespace)
        for d in project["spec"].get("destinations") or []
    )


def admit(
    app: Mapping[str, Any], project: Mapping[str, Any] | None, objects: list[dict[str, Any]], where: str
) -> list[Finding]:
    """Everything Argo CD would refuse when syncing `objects` (the app's rendered path)."""
    name = app["metadata"]["name"]
    spec = app["spec"]
    project_name = spec.get("project", "default")
    if project is None:
        if project_name == "default":
            return []
        return [Finding(where, f"Application {name}: AppProject {project_name!r} is not in any build")]
    found: list[Finding] = []
    destination = spec.get("destination") or {}
    server = destination.get("server", "")
    app_namespace = destination.get("namespace", "")
    repo = (spec.get("source") or {}).get("repoURL", "")
    if not any(glob(pattern, repo) for pattern in project["spec"].get("sourceRepos") or []):
        found.append(
            Finding(where, f"Application {name}: repoURL {repo} is not in the project's sourceRepos")
        )
    if app_namespace and not destination_allowed(project, server, app_namespace):
        found.append(
            Finding(
                where, f"Application {name}: destination {server} {app_namespace} is not in the project's"
            )
        )
    for obj in objects:
        group, kind = api_group(str(obj.get("apiVersion", ""))), str(obj.get("kind"))
        what = f"{describe(obj)} ({group or 'core'}/{kind})"
        if (group, kind) in CLUSTER_SCOPED:
            if not listed(project["spec"].get("clusterResourceWhitelist"), group, kind):
                found.append(Finding(where, f"{what}: cluster-scoped kind not in clusterResourceWhitelist"))
            elif listed(project["spec"].get("clusterResourceBlacklist"), group, kind):
                found.append(Finding(where, f"{what}: kind in clusterResourceBlacklist"))
            continue
        whitelist = project["spec"].get("namespaceResourceWhitelist")
        if whitelist and not listed(whitelist, group, kind):
            found.append(Finding(where, f"{what}: kind not in namespaceResourceWhitelist"))
        elif listed(project["spec"].get("namespaceResourceBlacklist"), group, kind):
            found.append(Finding(where, f"{what}: kind in namespaceResourceBlacklist"))
        namespace = (obj.get("metadata") or {}).get("namespace") or app_namespace
        if not namespace:
            found.append(
                Finding(where, f"{what}: no namespace, and the Application sets no destination.namespace")
            )
        elif not destination_allowed(project, server, namespace):
            found.append(
                Finding(where, f"{what}: namespace {namespace} on {server} is not a project destination")
            )
    return found
