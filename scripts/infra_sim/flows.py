"""The platform's declared connections (infra/flows.yaml) against each build's NetworkPolicies.

Every flow in `flows` must be allowed in each build where both ends exist, and must exist in at
least one build; every flow in `denied` must be denied wherever its ends exist (and exist
somewhere, or it proves nothing). Ends: pods of the build (Deployments, StatefulSets... and one
pod per WorkflowTemplate, labelled as Argo labels workflow pods), pods of other installs declared
under `outside`, a Service (its port -> targetPort -> the selected pods' containerPorts), or an
address outside the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infra_sim.common import WORKLOADS, Build, Finding, selects
from infra_sim.netpol import Endpoint, External, Pod, connection

Protocol = Literal["TCP", "UDP", "SCTP"]
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OutsidePod(Strict):
    """A pod another install runs (Prometheus, CoreDNS, a Gateway proxy): no build renders it."""

    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = Field(default_factory=dict, description="named TCP container ports")


class Source(Strict):
    """Pods by namespace and labels (`{}`: every pod there), or a pod named under `outside`."""

    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    outside: str | None = None

    @model_validator(mode="after")
    def one_kind(self) -> Source:
        if (self.outside is None) == (self.namespace is None):
            raise ValueError("give either namespace (+ labels) or outside")
        return self


class Target(Source):
    """A Service (name, namespace, its port), pods (labels, namespace, their port), `outside`, or an ip."""

    namespace: str | None = None
    service: str | None = None
    ip: str | None = None
    port: int | str
    protocol: Protocol = "TCP"

    @model_validator(mode="after")
    def one_kind(self) -> Target:
        given = [k for k in ("service", "outside", "ip") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of service, outside, ip (found: {', '.join(given)})")
        if given in (["outside"], ["ip"]) and (self.namespace is not None or self.labels):
            raise ValueError(f"{given[0]} takes no namespace or labels")
        if given in ([], ["service"]) and self.namespace is None:
            raise ValueError("a Service or pods need their namespace")
        if given == ["service"] and (self.labels or not isinstance(self.port, int)):
            raise ValueError("a Service flow names the Service's port number, no labels")
        return self


class Flow(Strict):
    name: str
    source: Source = Field(alias="from")
    to: Target


class FlowFile(Strict):
    namespaces: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="labels of namespaces no build creates"
    )
    outside: dict[str, OutsidePod] = Field(default_factory=dict)
    flows: list[Flow]
    denied: list[Flow] = Field(default_factory=list)

    @model_validator(mode="after")
    def outside_names(self) -> FlowFile:
        for flow in [*self.flows, *self.denied]:
            for end in (flow.source, flow.to):
                if end.outside is not None and end.outside not in self.outside:
                    raise ValueError(f"flow {flow.name!r}: {end.outside!r} is not declared under outside")
        return self


def load_flow_file(path: Path) -> FlowFile:
    import yaml

    return FlowFile.model_validate(yaml.safe_load(path.read_text()) or {})


def named_ports(containers: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    return {
        port["name"]: (int(port["containerPort"]), port.get("protocol", "TCP"))
        for container in containers
        for port in container.get("ports") or []
        if port.get("name")
    }


def build_pods(build: Build) -> list[Pod]:
    """One pod per pod template: workloads, and one per WorkflowTemplate (labelled as Argo does)."""
    pods: list[Pod] = []
    for obj in build.of_kind(*WORKLOADS):
        template = obj["spec"]["template"]
        pods.append(
            Pod(
                f"{obj['kind']} {obj['metadata']['name']}",
                obj["metadata"].get("namespace", ""),
                dict(template.get("metadata", {}).get("labels") or {}),
                named_ports(template["spec"].get("containers", [])),
            )
        )
    for obj in build.of_kind("WorkflowTemplate"):
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace", "")
        argo = {WORKFLOW_LABEL: f"{name}-x7k2p"}
        pods.append(Pod(f"workflow {name}", namespace, argo))
        # a template's own metadata.labels go on its pods (Argo merges them with its own)
        for template in obj["spec"].get("templates", []):
            labels = (template.get("metadata") or {}).get("labels")
            if labels and ("container" in template or "script" in template):
                pods.append(Pod(f"workflow {name} step {template['name']}", namespace, {**labels, **argo}))
    return pods


def namespace_labels(build: Build, declared: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Labels per namespace: the build's Namespace objects, the declared ones, and the name label."""
    labels: dict[str, dict[str, str]] = {name: dict(values) for name, values in declared.items()}
    for obj in build.of_kind("Namespace"):
        labels.setdefault(obj["metadata"]["name"], {}).update(obj["metadata"].get("labels") or {})
    pods_namespaces = {p.namespace for p in build_pods(build)}
    for name in set(labels) | pods_namespaces:
        labels.setdefault(name, {})["kubernetes.io/metadata.name"] = name
    return labels


def outside_pod(name: str, pod: OutsidePod) -> Pod:
    return Pod(name, pod.namespace, pod.labels, {k: (v, "TCP") for k, v in pod.ports.items()})


def sources(end: Source, pods: list[Pod], spec: FlowFile) -> list[Pod]:
    if end.outside is not None:
        return [outside_pod(end.outside, spec.outside[end.outside])]
    return [
        p for p in pods if p.namespace == end.namespace and selects({"matchLabels": end.labels}, p.labels)
    ]


def resolve_port(pod: Pod, port: int | str, protocol: str) -> int | None:
    if isinstance(port, int):
        return port
    found = pod.named_ports.get(port)
    return found[0] if found and found[1] == protocol else None


def destinations(
    end: Target, build: Build, pods: list[Pod], spec: FlowFile
) -> tuple[list[tuple[Endpoint, int]], str | None]:
    """(endpoint, numeric port) pairs the flow reaches, or a problem with the flow's target."""
    if end.ip is not None:
        return [(External(end.ip, end.ip), int(end.port))], None
    if end.service is not None:
        service = next(
            (
                s
                for s in build.of_kind("Service")
                if s["metadata"]["name"] == end.service and s["metadata"].get("namespace") == end.namespace
            ),
            None,
        )
        if service is None:
            return [], None
        entry = next((p for p in service["spec"].get("ports", []) if p["port"] == end.port), None)
        if entry is None:
            return [], f"Service {end.namespace}/{end.service} has no port {end.port}"
        selected = [
            p
            for p in pods
            if p.namespace == end.namespace
            and selects({"matchLabels": service["spec"].get("selector")}, p.labels)
        ]
        if not selected:
            return [], f"Service {end.namespace}/{end.service} selects no pod"
        reached: list[tuple[Endpoint, int]] = []
        for pod in selected:
            number = resolve_port(pod, entry.get("targetPort", entry["port"]), entry.get("protocol", "TCP"))
            if number is None:
                return [], f"targetPort {entry.get('targetPort')!r} is no container port of {pod.name}"
            reached.append((pod, number))
        return reached, None
    targets = sources(end, pods, spec)
    reached = []
    for pod in targets:
        number = resolve_port(pod, end.port, end.protocol)
        if number is None:
            return [], f"port {end.port!r} is no container port of {pod.name}"
        reached.append((pod, number))
    return reached, None


def evaluate(flow: Flow, build: Build, spec: FlowFile) -> Iterator[tuple[str, bool, str]]:
    """(connection, allowed, reason) for every pair of ends the flow has in this build."""
    pods = build_pods(build)
    policies = list(build.of_kind("NetworkPolicy"))
    namespaces = namespace_labels(build, spec.namespaces)
    reached, problem = destinations(flow.to, build, pods, spec)
    if problem:
        yield "target", False, problem
        return
    for source in sources(flow.source, pods, spec):
        for destination, port in reached:
            verdict = connection(source, destination, port, flow.to.protocol, policies, namespaces)
            yield (
                f"{source.name} -> {destination.name}:{port}/{flow.to.protocol}",
                verdict.allowed,
                verdict.reason,
            )


def check_flows(spec: FlowFile, builds: list[Build], where: str) -> tuple[list[Finding], list[str]]:
    """Findings, and one note per build: how many connections were evaluated."""
    findings: list[Finding] = []
    notes: list[str] = []
    for wanted, flows in ((True, spec.flows), (False, spec.denied)):
        for flow in flows:
            seen = False
            for build in builds:
                for pair, allowed, reason in evaluate(flow, build, spec):
                    seen = True
                    if pair == "target":
                        findings.append(Finding(f"{where}: flow {flow.name!r}", f"{build.path}: {reason}"))
                    elif allowed != wanted:
                        verb = "denied" if wanted else "allowed, but it must be denied"
                        findings.append(
                            Finding(f"{build.path}: flow {flow.name!r}", f"{pair} {verb}: {reason}")
                        )
            if not seen:
                findings.append(
                    Finding(
                        f"{where}: flow {flow.name!r}", "neither build has both ends: nothing was checked"
                    )
                )
    for build in builds:
        count = sum(1 for flow in [*spec.flows, *spec.denied] for _ in evaluate(flow, build, spec))
        notes.append(f"{build.path}: {count} connections")
    return findings, notes
