"""Which replicas to talk to: a fixed list locally, pod addresses from the Kubernetes API on a cluster.

An endpoints setting is either a comma-separated list of `host:port` / URLs, or
`k8s://<namespace>/<label-selector>:<port>` (e.g. `k8s://mlops/app=triton:8001`), resolved
through the API server with the pod's service account to the IPs of every *Running* pod
matching the selector. Pods that are not running are reported so a rollout in progress is
visible rather than silently skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlops.errors import BadInput, Transient

K8S_PREFIX = "k8s://"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class PodSelector:
    namespace: str
    selector: str
    port: int

    @classmethod
    def parse(cls, text: str) -> PodSelector:
        body = text.removeprefix(K8S_PREFIX)
        namespace, sep, rest = body.partition("/")
        selector, colon, port = rest.rpartition(":")
        if not sep or not colon or not namespace or not selector or not port.isdigit():
            raise BadInput(f"{text!r}: expected k8s://<namespace>/<label-selector>:<port>")
        return cls(namespace, selector, int(port))


def parse_endpoints(text: str) -> list[str] | PodSelector:
    """A static list (order kept, duplicates dropped) or a pod selector; BadInput when empty."""
    text = text.strip()
    if text.startswith(K8S_PREFIX):
        return PodSelector.parse(text)
    endpoints = list(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    if not endpoints:
        raise BadInput(
            "no endpoints given: expected host:port[,host:port...] or k8s://namespace/selector:port"
        )
    return endpoints


def pods_from_api(selector: PodSelector, items: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(addresses of running pods, descriptions of the others) from a PodList's items."""
    ready, other = [], []
    for pod in items:
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status", {})
        ip, phase = status.get("podIP"), status.get("phase")
        if phase == "Running" and ip and not pod.get("metadata", {}).get("deletionTimestamp"):
            ready.append(f"{ip}:{selector.port}")
        else:
            other.append(
                f"{name} ({phase or 'unknown'}{', terminating' if pod.get('metadata', {}).get('deletionTimestamp') else ''})"
            )
    return sorted(ready), other


def resolve(text: str) -> list[str]:
    """The replicas to act on; on a cluster every running pod of the selector (BadInput if none)."""
    parsed = parse_endpoints(text)
    if isinstance(parsed, list):
        return parsed
    import httpx

    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    token_file = SERVICE_ACCOUNT / "token"
    if not host or not token_file.is_file():
        raise BadInput(
            f"{text}: not running in a Kubernetes pod (no KUBERNETES_SERVICE_HOST / service account token)"
        )
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    url = f"https://{host}:{port}/api/v1/namespaces/{parsed.namespace}/pods?labelSelector={quote(parsed.selector)}"
    try:
        answer = httpx.get(
            url,
            headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
            verify=str(SERVICE_ACCOUNT / "ca.crt"),
            timeout=10.0,
        )
    except httpx.TransportError as exc:
        raise Transient(f"Kubernetes API unreachable: {exc}") from exc
    if answer.status_code >= 500:
        raise Transient(f"Kubernetes API answered {answer.status_code}")
    if answer.status_code != 200:
        raise BadInput(f"Kubernetes API refused listing pods ({answer.status_code}): {answer.text[:300]}")
    ready, other = pods_from_api(parsed, answer.json().get("items", []))
    if other:
        print(f"pods not serving yet (skipped): {', '.join(other)}", flush=True)
    if not ready:
        raise BadInput(f"no running pods match {parsed.selector} in namespace {parsed.namespace}")
    return ready
