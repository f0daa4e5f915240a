"""Where the canary split lives, behind one small Protocol: the local router or the cluster's rewrite.

- `http://host:port` (local): `mlops.stack.router`'s admin endpoint, `PUT /admin/split/<public>
  {"candidate_weight": w}`; the router keeps it in a file across restarts.
- `k8s://<namespace>/<name>` (cluster): the InferenceModelRewrite `<name>`
  (`inference.networking.x-k8s.io/v1alpha2`, infra/inference/), whose first rule's targets are
  rewritten to `<public>-live` at `100 - w` and `<public>-candidate` at `w` (one target at 0 and
  100), replaced with the object's resourceVersion so a concurrent edit is refused, not lost.
Both mean the same thing: w percent of the requests for the public name go to the candidate slot,
on every replica.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Protocol

import httpx

from mlops.errors import BadInput, Transient
from mlops.serving.discovery import K8S_PREFIX, SERVICE_ACCOUNT

REWRITE_API = "apis/inference.networking.x-k8s.io/v1alpha2"


class TrafficSplit(Protocol):
    """The share of the public name's requests that goes to the candidate slot."""

    where: str

    def candidate_weight(self) -> int: ...
    def set_candidate_weight(self, weight: int) -> None: ...


def _check(answer: httpx.Response, what: str) -> httpx.Response:
    if answer.status_code >= 500:
        raise Transient(f"{what}: answered {answer.status_code}: {answer.text[:300]}")
    if answer.status_code >= 400:
        raise BadInput(f"{what}: refused ({answer.status_code}): {answer.text[:300]}")
    return answer


class RouterSplit:
    """The local router's admin endpoint."""

    def __init__(self, url: str, public_name: str, timeout_s: float = 10.0) -> None:
        self.where = url.rstrip("/")
        self._path = f"/admin/split/{public_name}"
        self._http = httpx.Client(base_url=self.where, timeout=timeout_s)

    def _call(self, method: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._http.request(method, self._path, **kwargs)
        except httpx.HTTPError as exc:
            raise Transient(f"router {self.where} unreachable while {what}: {exc}") from exc
        body: dict[str, Any] = _check(answer, f"router {self.where} {what}").json()
        return body

    def candidate_weight(self) -> int:
        return int(self._call("GET", "reading the split")["candidate_weight"])

    def set_candidate_weight(self, weight: int) -> None:
        self._call("PUT", f"setting the candidate weight to {weight}", json={"candidate_weight": weight})


def rewrite_targets(obj: dict[str, Any], public_name: str, weight: int) -> dict[str, Any]:
    """A copy of an InferenceModelRewrite whose rule for `public_name` splits live/candidate at `weight`."""
    live, candidate = f"{public_name}-live", f"{public_name}-candidate"
    if weight <= 0:
        targets: list[dict[str, Any]] = [{"modelRewrite": live}]
    elif weight >= 100:
        targets = [{"modelRewrite": candidate}]
    else:
        targets = [
            {"modelRewrite": live, "weight": 100 - weight},
            {"modelRewrite": candidate, "weight": weight},
        ]
    updated = copy.deepcopy(obj)
    for rule in updated.get("spec", {}).get("rules", []):
        if any(m.get("model", {}).get("value") == public_name for m in rule.get("matches", [])):
            rule["targets"] = targets
            return updated
    raise BadInput(
        f"InferenceModelRewrite {obj.get('metadata', {}).get('name')} has no rule matching {public_name}"
    )


def weight_of(obj: dict[str, Any], public_name: str) -> int:
    """The candidate's percent in a rewrite's rule for `public_name`."""
    for rule in obj.get("spec", {}).get("rules", []):
        if any(m.get("model", {}).get("value") == public_name for m in rule.get("matches", [])):
            targets = rule.get("targets", [])
            total = sum(int(t.get("weight", 1)) for t in targets) or 1
            ours = sum(
                int(t.get("weight", 1))
                for t in targets
                if t.get("modelRewrite") == f"{public_name}-candidate"
            )
            return round(100 * ours / total)
    return 0


class RewriteSplit:
    """The cluster's InferenceModelRewrite, through the API server with the pod's service account."""

    def __init__(self, namespace: str, name: str, public_name: str) -> None:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        token = SERVICE_ACCOUNT / "token"
        if not host or not token.is_file():
            raise BadInput(f"k8s://{namespace}/{name}: not running in a Kubernetes pod (no service account)")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        self.where = f"k8s://{namespace}/{name}"
        self.public_name = public_name
        self._url = (
            f"https://{host}:{port}/{REWRITE_API}/namespaces/{namespace}/inferencemodelrewrites/{name}"
        )
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {token.read_text().strip()}"},
            verify=str(SERVICE_ACCOUNT / "ca.crt"),
            timeout=10.0,
        )

    def _read(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = _check(self._http.get(self._url), f"reading {self.where}").json()
        except httpx.HTTPError as exc:
            raise Transient(f"Kubernetes API unreachable: {exc}") from exc
        return body

    def candidate_weight(self) -> int:
        return weight_of(self._read(), self.public_name)

    def set_candidate_weight(self, weight: int) -> None:
        updated = rewrite_targets(self._read(), self.public_name, weight)  # keeps metadata.resourceVersion
        try:
            _check(self._http.put(self._url, json=updated), f"updating {self.where}")
        except httpx.HTTPError as exc:
            raise Transient(f"Kubernetes API unreachable: {exc}") from exc


def connect_split(where: str, public_name: str) -> TrafficSplit:
    """`http(s)://...` the local router, `k8s://<namespace>/<name>` the cluster's rewrite."""
    if where.startswith(K8S_PREFIX):
        namespace, _, name = where.removeprefix(K8S_PREFIX).partition("/")
        if not namespace or not name:
            raise BadInput(f"{where!r}: expected k8s://<namespace>/<InferenceModelRewrite name>")
        return RewriteSplit(namespace, name, public_name)
    if where.startswith(("http://", "https://")):
        return RouterSplit(where, public_name)
    raise BadInput(f"canary split {where!r}: expected http(s)://<router> or k8s://<namespace>/<name>")
