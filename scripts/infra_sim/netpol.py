"""NetworkPolicy semantics (networking.k8s.io/v1), as the API documents them, over rendered objects.

- A pod is isolated for ingress (egress) only once a policy whose policyTypes include Ingress
  (Egress) selects it; policyTypes defaults to Ingress, plus Egress when the policy has egress
  rules. A pod no such policy selects accepts (sends) everything.
- Rules are a union: a connection is allowed when any rule of any policy that isolates the pod
  allows it, on the sender's egress side and on the receiver's ingress side both.
- A peer with only podSelector means pods of the policy's own namespace; only namespaceSelector,
  every pod of the matching namespaces; both in one peer, the matching pods of the matching
  namespaces; ipBlock, addresses (minus `except`) outside the cluster: pod traffic is matched by
  selectors here, never by ipBlock (what the API leaves to the implementation is not relied on).
  A rule with no peers matches every peer; with no ports, every port.
- A port is a number (with an optional endPort range) or a name, resolved through the receiving
  pod's containerPorts; the protocol defaults to TCP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra_sim.common import selects


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: namespace, labels, named container ports (name -> (port, protocol))."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class External:
    """An address outside the cluster (S3, STS): matched only by ipBlock peers."""

    name: str
    ip: str


Endpoint = Pod | External


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def applies_to(policy: Mapping[str, Any], pod: Pod) -> bool:
    namespace = (policy.get("metadata") or {}).get("namespace")
    return namespace == pod.namespace and selects((policy.get("spec") or {}).get("podSelector"), pod.labels)


def in_block(block: Mapping[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(block["cidr"], strict=False)
    if address.version != network.version or address not in network:
        return False
    return not any(
        address in ipaddress.ip_network(e, strict=False)
        for e in block.get("except") or []
        if ipaddress.ip_network(e, strict=False).version == address.version
    )


def peer_matches(
    peer: Mapping[str, Any],
    policy_namespace: str,
    other: Endpoint,
    namespaces: Mapping[str, Mapping[str, str]],
) -> bool:
    if "ipBlock" in peer:
        return isinstance(other, External) and in_block(peer["ipBlock"], other.ip)
    if isinstance(other, External) or not ("podSelector" in peer or "namespaceSelector" in peer):
        return False
    if "namespaceSelector" in peer:
        labels = namespaces.get(other.namespace, {"kubernetes.io/metadata.name": other.namespace})
        if not selects(peer["namespaceSelector"], labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def port_matches(
    entries: Sequence[Mapping[str, Any]] | None, port: int, protocol: str, receiver: Endpoint
) -> bool:
    if not entries:
        return True
    for entry in entries:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, int):
            if wanted <= port <= int(entry.get("endPort", wanted)):
                return True
        elif isinstance(receiver, Pod) and receiver.named_ports.get(str(wanted)) == (port, protocol):
            return True
    return False


def _side(
    direction: str,
    isolated: Endpoint,
    other: Endpoint,
    receiver: Endpoint,
    port: int,
    protocol: str,
    policies: Sequence[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
) -> Verdict:
    if not isinstance(isolated, Pod):
        return Verdict(True, f"{isolated.name} is outside the cluster")
    kind, rules_key, peers_key = (
        ("Egress", "egress", "to") if direction == "egress" else ("Ingress", "ingress", "from")
    )
    selecting = [p for p in policies if kind in policy_types(p) and applies_to(p, isolated)]
    if not selecting:
        return Verdict(True, f"{isolated.name} is not isolated for {direction}")
    for policy in selecting:
        name = policy["metadata"]["name"]
        for index, rule in enumerate((policy.get("spec") or {}).get(rules_key) or []):
            peers = rule.get(peers_key)
            if peers and not any(peer_matches(p, isolated.namespace, other, namespaces) for p in peers):
                continue
            if port_matches(rule.get("ports"), port, protocol, receiver):
                return Verdict(True, f"NetworkPolicy {isolated.namespace}/{name} {rules_key}[{index}]")
    names = ", ".join(sorted(f"{isolated.namespace}/{p['metadata']['name']}" for p in selecting))
    return Verdict(False, f"{direction} of {isolated.name} isolated by {names}; no rule allows it")


def connection(
    source: Endpoint,
    destination: Endpoint,
    port: int,
    protocol: str,
    policies: Sequence[Mapping[str, Any]],
    namespaces: Mapping[str, Mapping[str, str]],
) -> Verdict:
    """Whether `source` may open `protocol`/`port` to `destination`: its egress and their ingress."""
    egress = _side("egress", source, destination, destination, port, protocol, policies, namespaces)
    if not egress.allowed:
        return egress
    ingress = _side("ingress", destination, source, destination, port, protocol, policies, namespaces)
    if not ingress.allowed:
        return ingress
    return Verdict(True, f"{egress.reason}; {ingress.reason}")
