"""The cluster simulation's rules (scripts/infra_sim), each on small hand-written objects.

tests/unit/test_infra.py runs the same rules on the real manifests and on broken copies of them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from infra_sim import argocd, consistency, podsecurity
from infra_sim.common import Build, quantity, selects
from infra_sim.flows import FlowFile, build_pods, check_flows, destinations
from infra_sim.netpol import External, Pod, connection

NAMESPACES = {
    "app": {"kubernetes.io/metadata.name": "app", "team": "a"},
    "other": {"kubernetes.io/metadata.name": "other", "team": "b"},
}
WEB = Pod("web", "app", {"role": "web"}, {"http": (8080, "TCP"), "dns": (53, "UDP")})
CLIENT = Pod("client", "app", {"role": "client"})
FOREIGN = Pod("foreign", "other", {"role": "client"})
S3 = External("s3", "52.217.0.10")


def policy(name: str, namespace: str = "app", **spec: Any) -> dict[str, Any]:
    spec.setdefault("podSelector", {})
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def allowed(
    source: Pod | External, target: Pod | External, port: int, *policies: Any, protocol: str = "TCP"
) -> bool:
    return connection(source, target, port, protocol, list(policies), NAMESPACES).allowed


DENY_ALL = policy("deny", policyTypes=["Ingress", "Egress"])
WEB_ONLY = {"matchLabels": {"role": "web"}}


# --- NetworkPolicy semantics -------------------------------------------------------------------


def test_a_pod_no_policy_selects_is_not_isolated() -> None:
    assert allowed(CLIENT, WEB, 8080)
    # a policy that selects another pod isolates only that one
    assert allowed(
        CLIENT,
        WEB,
        8080,
        policy("other", podSelector={"matchLabels": {"role": "db"}}, policyTypes=["Ingress"]),
    )


def test_isolation_is_per_policy_type() -> None:
    egress_only = policy("egress-only", podSelector=WEB_ONLY, policyTypes=["Egress"])
    assert allowed(CLIENT, WEB, 8080, egress_only), "an Egress policy does not isolate the pod's ingress"
    assert not allowed(WEB, CLIENT, 8080, egress_only)
    # policyTypes unset: Ingress, plus Egress only when the policy has egress rules
    ingress_rules = policy("implicit", podSelector=WEB_ONLY, ingress=[{"from": [{"podSelector": {}}]}])
    assert allowed(WEB, S3, 443, ingress_rules), "no egress key: egress not isolated"
    with_egress = policy("implicit-egress", podSelector=WEB_ONLY, egress=[])
    assert not allowed(WEB, S3, 443, with_egress)
    assert not allowed(CLIENT, WEB, 8080, with_egress), "Ingress is always a type when policyTypes is unset"


def test_rules_are_a_union_across_policies_and_both_sides_must_allow() -> None:
    ingress_web = policy(
        "web-in", podSelector=WEB_ONLY, policyTypes=["Ingress"], ingress=[{"ports": [{"port": 8080}]}]
    )
    egress_client = policy(
        "client-out",
        podSelector={"matchLabels": {"role": "client"}},
        policyTypes=["Egress"],
        egress=[{"to": [{"podSelector": WEB_ONLY}], "ports": [{"port": 8080}]}],
    )
    assert not allowed(CLIENT, WEB, 8080, DENY_ALL)
    assert not allowed(CLIENT, WEB, 8080, DENY_ALL, ingress_web), "egress still denied by deny-all"
    assert not allowed(CLIENT, WEB, 8080, DENY_ALL, egress_client), "ingress still denied by deny-all"
    assert allowed(CLIENT, WEB, 8080, DENY_ALL, ingress_web, egress_client)
    assert not allowed(CLIENT, WEB, 9090, DENY_ALL, ingress_web, egress_client)


def ingress_from(*peers: dict[str, Any]) -> dict[str, Any]:
    return policy("in", podSelector=WEB_ONLY, policyTypes=["Ingress"], ingress=[{"from": list(peers)}])


def test_pod_selector_alone_means_the_policys_own_namespace() -> None:
    rule = ingress_from({"podSelector": {"matchLabels": {"role": "client"}}})
    assert allowed(CLIENT, WEB, 8080, rule)
    assert not allowed(FOREIGN, WEB, 8080, rule), "same labels, other namespace"


def test_namespace_selector_alone_means_every_pod_there() -> None:
    rule = ingress_from({"namespaceSelector": {"matchLabels": {"team": "b"}}})
    assert allowed(FOREIGN, WEB, 8080, rule)
    assert allowed(Pod("any", "other", {}), WEB, 8080, rule)
    assert not allowed(CLIENT, WEB, 8080, rule), "its own namespace is not team b"


def test_both_selectors_in_one_peer_is_and_two_peers_is_or() -> None:
    both = ingress_from(
        {"namespaceSelector": {"matchLabels": {"team": "b"}}, "podSelector": {"matchLabels": {"role": "db"}}}
    )
    assert not allowed(FOREIGN, WEB, 8080, both), "right namespace, wrong pod"
    assert allowed(Pod("db", "other", {"role": "db"}), WEB, 8080, both)
    assert not allowed(Pod("db", "app", {"role": "db"}), WEB, 8080, both), "right pod, wrong namespace"
    either = ingress_from(
        {"namespaceSelector": {"matchLabels": {"team": "b"}}},
        {"podSelector": {"matchLabels": {"role": "db"}}},
    )
    assert allowed(FOREIGN, WEB, 8080, either)
    assert allowed(Pod("db", "app", {"role": "db"}), WEB, 8080, either)


def test_ip_block_matches_outside_addresses_minus_except_and_never_pods() -> None:
    out = policy(
        "out",
        podSelector=WEB_ONLY,
        policyTypes=["Egress"],
        egress=[
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["52.217.0.0/16"]}}],
                "ports": [{"port": 443}],
            }
        ],
    )
    assert allowed(WEB, External("sts", "3.5.0.1"), 443, out)
    assert not allowed(WEB, S3, 443, out), "excepted range"
    assert not allowed(WEB, CLIENT, 443, out), "a pod is matched by selectors, not by ipBlock"
    selector_only = policy(
        "sel", podSelector=WEB_ONLY, policyTypes=["Egress"], egress=[{"to": [{"namespaceSelector": {}}]}]
    )
    assert not allowed(WEB, S3, 443, selector_only), "selectors never match an outside address"


def test_a_rule_without_peers_or_ports_matches_all() -> None:
    open_rule = policy("open", podSelector=WEB_ONLY, policyTypes=["Ingress"], ingress=[{}])
    assert allowed(FOREIGN, WEB, 1234, open_rule)
    assert not allowed(
        FOREIGN, WEB, 1234, policy("closed", podSelector=WEB_ONLY, policyTypes=["Ingress"], ingress=[])
    )


def test_ports_by_number_range_name_and_protocol() -> None:
    def rule(*ports: dict[str, Any]) -> dict[str, Any]:
        return policy("p", podSelector=WEB_ONLY, policyTypes=["Ingress"], ingress=[{"ports": list(ports)}])

    assert allowed(CLIENT, WEB, 8080, rule({"port": "http"})), "named port resolved on the receiving pod"
    assert not allowed(CLIENT, WEB, 8081, rule({"port": "http"}))
    assert not allowed(CLIENT, CLIENT, 8080, policy("c", ingress=[{"ports": [{"port": "http"}]}])), (
        "the pod has no port named http"
    )
    assert allowed(CLIENT, WEB, 8085, rule({"port": 8080, "endPort": 8090}))
    assert not allowed(CLIENT, WEB, 8091, rule({"port": 8080, "endPort": 8090}))
    assert not allowed(CLIENT, WEB, 53, rule({"port": 53}), protocol="UDP"), "protocol defaults to TCP"
    assert allowed(CLIENT, WEB, 53, rule({"port": "dns", "protocol": "UDP"}), protocol="UDP")
    assert allowed(CLIENT, WEB, 7, rule({"protocol": "TCP"})), "no port: every port of the protocol"


def test_label_selector_expressions() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selects({}, labels)
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}, labels
    )
    assert not selects(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels
    )
    assert selects({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert selects({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert not selects(
        {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels
    )


# --- declared flows over a build -----------------------------------------------------------------


def deployment(name: str, namespace: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "ports": ports}]},
            }
        },
    }


def service(name: str, namespace: str, port: int, target: int | str) -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]},
    }


SMALL = Build(
    "small",
    [
        deployment("api", "app", [{"name": "web", "containerPort": 8080}]),
        service("api", "app", 80, "web"),
        deployment("db", "app", [{"name": "pg", "containerPort": 5432}]),
        service("db", "app", 5432, "pg"),
        policy("deny", policyTypes=["Ingress", "Egress"]),
        policy(
            "api-out",
            podSelector={"matchLabels": {"app": "api"}},
            egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}],
        ),
        policy(
            "db-in",
            podSelector={"matchLabels": {"app": "db"}},
            ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": "pg"}]}],
        ),
    ],
)


def flow_file(**extra: Any) -> FlowFile:
    spec: dict[str, Any] = {
        "flows": [
            {
                "name": "api -> db",
                "from": {"namespace": "app", "labels": {"app": "api"}},
                "to": {"service": "db", "namespace": "app", "port": 5432},
            }
        ],
        "denied": [
            {
                "name": "db -> api",
                "from": {"namespace": "app", "labels": {"app": "db"}},
                "to": {"service": "api", "namespace": "app", "port": 80},
            }
        ],
    }
    spec.update(extra)
    return FlowFile.model_validate(spec)


def test_a_service_port_resolves_through_target_port_to_the_container_port() -> None:
    spec = flow_file()
    reached, problem = destinations(spec.denied[0].to, SMALL, build_pods(SMALL), spec)
    assert problem is None
    assert [(d.name, port) for d, port in reached] == [("Deployment api", 8080)]


def test_declared_flows_pass_and_a_break_on_either_side_is_named() -> None:
    assert check_flows(flow_file(), [SMALL], "flows.yaml")[0] == []
    no_ingress = Build("broken", [o for o in SMALL.objects if o["metadata"]["name"] != "db-in"])
    findings, _ = check_flows(flow_file(), [no_ingress], "flows.yaml")
    assert [f.where for f in findings] == ["broken: flow 'api -> db'"]
    assert "ingress of Deployment db isolated by app/deny" in findings[0].message


def test_a_denied_sample_that_is_allowed_fails() -> None:
    open_api = Build(
        "open",
        [
            *SMALL.objects,
            policy("api-in", podSelector={"matchLabels": {"app": "api"}}, ingress=[{}]),
            policy("db-out", podSelector={"matchLabels": {"app": "db"}}, egress=[{}]),
        ],
    )
    findings, _ = check_flows(flow_file(), [open_api], "flows.yaml")
    assert any("allowed, but it must be denied" in f.message for f in findings), findings


def test_a_flow_whose_ends_exist_nowhere_and_a_wrong_service_port_are_findings() -> None:
    spec = flow_file(
        flows=[
            {
                "name": "gone",
                "from": {"namespace": "app", "labels": {"app": "nope"}},
                "to": {"service": "db", "namespace": "app", "port": 5432},
            },
            {
                "name": "wrong port",
                "from": {"namespace": "app", "labels": {"app": "api"}},
                "to": {"service": "db", "namespace": "app", "port": 5433},
            },
        ]
    )
    messages = [f"{f.where}: {f.message}" for f in check_flows(spec, [SMALL], "flows.yaml")[0]]
    assert any("'gone'" in m and "nothing was checked" in m for m in messages), messages
    assert any("'wrong port'" in m and "has no port 5433" in m for m in messages), messages


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ({"service": "db", "ip": "1.2.3.4", "port": 1}, "give one of service, outside, ip"),
        ({"service": "db", "port": 1}, "need their namespace"),
        ({"ip": "1.2.3.4", "namespace": "app", "port": 1}, "takes no namespace"),
        ({"service": "db", "namespace": "app", "port": "pg"}, "names the Service's port number"),
        ({"outside": "nobody", "port": 1}, "'nobody' is not declared under outside"),
        ({"namespace": "app", "port": 1, "protcol": "TCP"}, "protcol"),
    ],
)
def test_a_malformed_flow_file_is_refused_with_the_reason(target: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        flow_file(flows=[{"name": "x", "from": {"namespace": "app"}, "to": target}])


def test_the_repository_flow_file_parses() -> None:
    spec = FlowFile.model_validate(
        yaml.safe_load((Path(__file__).resolve().parents[2] / "infra" / "flows.yaml").read_text())
    )
    assert len(spec.flows) >= 10 and spec.denied


# --- Argo CD AppProject admission ----------------------------------------------------------------

PROJECT = {
    "kind": "AppProject",
    "metadata": {"name": "p"},
    "spec": {
        "sourceRepos": ["https://git.example/*"],
        "destinations": [{"server": "https://kubernetes.default.svc", "namespace": "app"}],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
        "namespaceResourceWhitelist": [{"group": "apps", "kind": "*"}, {"group": "", "kind": "Service"}],
        "namespaceResourceBlacklist": [{"group": "apps", "kind": "DaemonSet"}],
    },
}


def application(
    namespace: str | None = "app", project: str = "p", repo: str = "https://git.example/r.git"
) -> dict[str, Any]:
    destination = {
        "server": "https://kubernetes.default.svc",
        **({"namespace": namespace} if namespace else {}),
    }
    return {
        "metadata": {"name": "a"},
        "spec": {"project": project, "source": {"repoURL": repo, "path": "x"}, "destination": destination},
    }


def obj(api_version: str, kind: str, namespace: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "o", **({"namespace": namespace} if namespace else {})},
    }


def admitted(
    app: dict[str, Any], *objects: dict[str, Any], project: dict[str, Any] | None = PROJECT
) -> list[str]:
    return [f.message for f in argocd.admit(app, project, list(objects), "w")]


def test_whitelisted_kinds_in_a_project_destination_are_admitted() -> None:
    assert (
        admitted(
            application(), obj("v1", "Namespace"), obj("apps/v1", "Deployment"), obj("v1", "Service", "app")
        )
        == []
    )


def test_kinds_outside_the_whitelists_or_in_a_blacklist_are_refused() -> None:
    assert (
        "cluster-scoped kind not in clusterResourceWhitelist"
        in admitted(application(), obj("v1", "PersistentVolume"))[0]
    )
    assert (
        "not in namespaceResourceWhitelist"
        in admitted(application(), obj("argoproj.io/v1alpha1", "Rollout"))[0]
    )
    assert "in namespaceResourceBlacklist" in admitted(application(), obj("apps/v1", "DaemonSet"))[0]


def test_namespaces_are_checked_against_destinations_and_default_to_the_apps() -> None:
    assert "namespace other" in admitted(application(), obj("v1", "Service", "other"))[0]
    assert admitted(application(namespace=None), obj("v1", "Service", "app")) == []
    assert "no namespace" in admitted(application(namespace=None), obj("v1", "Service"))[0]
    assert (
        "destination https://kubernetes.default.svc elsewhere"
        in admitted(application(namespace="elsewhere"))[0]
    )


def test_repository_and_project_must_be_known_and_default_allows_all() -> None:
    assert "not in the project's sourceRepos" in admitted(application(repo="https://evil.example/r.git"))[0]
    assert "AppProject 'p' is not in any build" in admitted(application(), project=None)[0]
    assert admitted(application(project="default"), obj("v1", "PersistentVolume"), project=None) == []


# --- Pod Security `restricted`, requests and limits ----------------------------------------------

SECURE = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


def pod(**container: Any) -> dict[str, Any]:
    main = {"name": "main", "securityContext": dict(SECURE), "resources": RESOURCES, **container}
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [main],
    }


def test_a_restricted_pod_passes() -> None:
    assert podsecurity.pod_problems(pod()) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"securityContext": {**SECURE, "allowPrivilegeEscalation": True}},
            "allowPrivilegeEscalation must be false",
        ),
        (
            {"securityContext": {k: v for k, v in SECURE.items() if k != "allowPrivilegeEscalation"}},
            "allowPrivilegeEscalation must be false",
        ),
        (
            {"securityContext": {**SECURE, "capabilities": {"drop": ["NET_RAW"]}}},
            "capabilities must drop ALL",
        ),
        (
            {"securityContext": {**SECURE, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}},
            "adds capabilities SYS_ADMIN",
        ),
        ({"securityContext": {**SECURE, "runAsNonRoot": False}}, "runAsNonRoot must be true"),
        ({"securityContext": {**SECURE, "runAsUser": 0}}, "runAsUser 0"),
        ({"securityContext": {**SECURE, "seccompProfile": {"type": "Unconfined"}}}, "seccompProfile"),
        ({"securityContext": {**SECURE, "privileged": True}}, "privileged"),
        (
            {"securityContext": {**SECURE, "readOnlyRootFilesystem": False}},
            "readOnlyRootFilesystem must be true",
        ),
        ({"ports": [{"containerPort": 80, "hostPort": 80}]}, "hostPort 80"),
        ({"resources": {"requests": {"cpu": "1"}}}, "no requests for memory"),
        ({"resources": {"requests": RESOURCES["requests"]}}, "no limits for cpu, memory"),
        (
            {
                "resources": {
                    "requests": {"cpu": "2", "memory": "8Gi"},
                    "limits": {"cpu": "1", "memory": "4Gi"},
                }
            },
            "cpu request 2 exceeds its limit 1",
        ),
        (
            {"resources": {**RESOURCES, "requests": {**RESOURCES["requests"], "nvidia.com/gpu": "1"}}},
            "nvidia.com/gpu needs a limit",
        ),
    ],
)
def test_each_restricted_rule_fails_its_broken_container(change: dict[str, Any], problem: str) -> None:
    problems = podsecurity.pod_problems(pod(**change))
    assert any(problem in p for p in problems), problems


def test_pod_level_rules() -> None:
    host = {**pod(), "hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
    problems = podsecurity.pod_problems(host)
    assert "hostNetwork is true" in problems
    assert "volume h: type hostPath not allowed" in problems
    no_pod_context = {**pod(), "securityContext": {}}
    assert any("runAsNonRoot" in p for p in podsecurity.pod_problems(no_pod_context))
    assert any("seccompProfile" in p for p in podsecurity.pod_problems(no_pod_context))


WORKFLOW = {
    "kind": "WorkflowTemplate",
    "metadata": {"name": "wf", "namespace": "wf"},
    "spec": {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "templateDefaults": {
            "container": {
                "securityContext": SECURE,
                "resources": RESOURCES,
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        },
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "templates": [
            {"name": "main", "steps": [[{"name": "s", "template": "step"}]]},
            {
                "name": "step",
                "container": {
                    "image": "i",
                    "resources": {"requests": {"memory": "256Mi"}},
                    "volumeMounts": [{"name": "x", "mountPath": "/x"}],
                },
            },
        ],
    },
}
EXECUTOR = {
    "securityContext": {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    },
    "resources": RESOURCES,
}


def test_a_workflow_pod_is_the_template_merged_over_template_defaults_plus_argos_containers() -> None:
    pods = list(podsecurity.workflow_pods(WORKFLOW, EXECUTOR))
    assert [name for name, _ in pods] == ["step"], "steps templates make no pod"
    spec = pods[0][1]
    main = spec["containers"][0]
    assert main["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}, (
        "maps merge, the template wins"
    )
    assert [m["mountPath"] for m in main["volumeMounts"]] == ["/tmp", "/x"], "volumeMounts merge by mountPath"
    assert [c["name"] for c in [*spec["initContainers"], *spec["containers"]]] == ["init", "main", "wait"]
    assert podsecurity.pod_problems(spec, frozenset({"init", "wait"})) == []


def test_workflow_pods_fail_without_defaults_or_executor_settings() -> None:
    namespace = {
        "kind": "Namespace",
        "metadata": {"name": "wf", "labels": {podsecurity.ENFORCE: "restricted"}},
    }
    assert podsecurity.check_pod_security([Build("b", [namespace, WORKFLOW])], EXECUTOR) == []
    no_executor = [f.message for f in podsecurity.check_pod_security([Build("b", [namespace, WORKFLOW])], {})]
    assert "container init: allowPrivilegeEscalation must be false" in no_executor
    bare = {**WORKFLOW, "spec": {k: v for k, v in WORKFLOW["spec"].items() if k != "templateDefaults"}}
    messages = [f.message for f in podsecurity.check_pod_security([Build("b", [namespace, bare])], EXECUTOR)]
    assert "container main: capabilities must drop ALL" in messages
    unenforced = {**namespace, "metadata": {"name": "wf", "labels": {podsecurity.ENFORCE: "baseline"}}}
    messages = [
        f.message for f in podsecurity.check_pod_security([Build("b", [unenforced, WORKFLOW])], EXECUTOR)
    ]
    assert messages == [f"namespace wf runs pods but does not set {podsecurity.ENFORCE}: restricted"]


def test_quantities() -> None:
    assert quantity("250m") * 4 == quantity(1)
    assert quantity("1Gi") == quantity("1024Mi")
    with pytest.raises(ValueError, match="not a resource quantity"):
        quantity("lots")


# --- consistency -----------------------------------------------------------------------------------

ECR = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
VERSIONS = {"tools": "0.1.0", "server": "3.0-1"}


def image_problems(*images: str, versions: dict[str, str | None] = VERSIONS) -> list[str]:
    return [f.message for f in consistency.check_images([("w", i) for i in images], versions, "mlops-k8s")]


def test_our_images_pinned_in_one_ecr_registry_pass() -> None:
    assert (
        image_problems(
            f"{ECR}/mlops-k8s/tools:0.1.0",
            f"{ECR}/mlops-k8s/server:sha-{'a' * 40}",
            f"{ECR}/mlops-k8s/tools@sha256:{'b' * 64}",
            "vllm/vllm-openai:v1@sha256:" + "c" * 64,
        )
        == []
    )


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/mlops-k8s/tools:0.1.0", "not from the ECR registry"),
        (f"{ECR}/mlops-k8s/tools:latest", "`latest` is mutable"),
        (f"{ECR}/mlops-k8s/tools", "`latest` is mutable"),
        (f"{ECR}/mlops-k8s/tools:0.0.9", "neither docker/tools's version (0.1.0) nor sha-<commit>"),
        ("222233334444.dkr.ecr.eu-west-1.amazonaws.com/mlops-k8s/server:3.0-1", "registry 222233334444"),
    ],
)
def test_each_unpinned_or_foreign_image_fails(image: str, problem: str) -> None:
    problems = image_problems(f"{ECR}/mlops-k8s/tools:0.1.0", f"{ECR}/mlops-k8s/server:3.0-1", image)
    assert any(problem in p for p in problems), problems


def test_a_dockerfile_without_a_version_cannot_be_pinned() -> None:
    assert image_problems(versions={"tools": None}) == [
        "no org.opencontainers.image.version: nothing to pin it by"
    ]


def vllm_build(base: str, default: str) -> Build:
    config = {
        "kind": "ConfigMap",
        "metadata": {"name": "vllm-abc", "namespace": "mlops"},
        "data": {"VLLM_BASE_MODEL": base},
    }
    workflow = {
        "kind": "WorkflowTemplate",
        "metadata": {"name": "train", "namespace": "wf"},
        "spec": {"arguments": {"parameters": [{"name": "base-model-source", "value": default}]}},
    }
    return Build("gpu", [config, workflow])


def test_the_served_base_must_be_the_trained_base() -> None:
    same = vllm_build("s3://m/base/7b", "s3://m/base/7b/")
    assert consistency.check_base([same], {"base-model-source": "s3://m/base/7b"}, "p") == []
    messages = [
        f.message for f in consistency.check_base([same], {"base-model-source": "s3://m/7b-v0.1/"}, "p")
    ]
    assert messages and "is not the base vLLM serves" in messages[0]
    messages = [
        f.message
        for f in consistency.check_base(
            [vllm_build("s3://m/a", "s3://m/b")], {"base-model-source": "s3://m/a"}, "p"
        )
    ]
    assert messages == [
        "base-model-source default s3://m/b is not the base vLLM serves (ConfigMap mlops/vllm-abc: s3://m/a)"
    ]


def gpu_workflow(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "WorkflowTemplate",
        "metadata": {"name": "train", "namespace": "wf"},
        "spec": {"templates": [template]},
    }


GPU_STEP = {
    "name": "tune",
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "container": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
}
GPU_FILE = consistency.GpuFile(
    gpu_overlays=["gpu"], cpu_overlays=["cpu"], steps=[consistency.GpuStep(workflow="train", template="tune")]
)


def test_gpu_steps_request_a_gpu_where_gpus_are_and_nothing_else_does() -> None:
    builds = [
        Build("gpu", [gpu_workflow(GPU_STEP)]),
        Build("cpu", [gpu_workflow({**GPU_STEP, "container": {}})]),
    ]
    assert consistency.check_gpu(GPU_FILE, builds, "gpu.yaml") == []


@pytest.mark.parametrize(
    ("gpu_step", "problem"),
    [
        ({**GPU_STEP, "container": {}}, "requests no nvidia.com/gpu"),
        (
            {k: v for k, v in GPU_STEP.items() if k != "tolerations"},
            "does not tolerate the nvidia.com/gpu taint",
        ),
        ({k: v for k, v in GPU_STEP.items() if k != "nodeSelector"}, "selects no GPU node"),
        ({**GPU_STEP, "name": "renamed"}, "not in the build"),
    ],
)
def test_each_missing_gpu_setting_fails(gpu_step: dict[str, Any], problem: str) -> None:
    messages = [
        f.message
        for f in consistency.check_gpu(
            GPU_FILE, [Build("gpu", [gpu_workflow(gpu_step)]), Build("cpu", [])], "g"
        )
    ]
    assert any(problem in m for m in messages), messages


def test_a_gpu_request_in_the_cpu_overlay_fails() -> None:
    messages = [
        f.message
        for f in consistency.check_gpu(
            GPU_FILE, [Build("gpu", [gpu_workflow(GPU_STEP)]), Build("cpu", [gpu_workflow(GPU_STEP)])], "g"
        )
    ]
    assert messages == ["requests a GPU: never scheduled here"]


def test_cluster_params_say_what_the_gpu_steps_need() -> None:
    spec = GPU_FILE.model_copy(update={"cluster_params": {"lora-method": "qlora"}})
    assert consistency.check_cluster_params(spec, {"lora-method": "qlora"}, "p") == []
    assert (
        "the cluster needs 'qlora'"
        in consistency.check_cluster_params(spec, {"lora-method": "lora"}, "p")[0].message
    )


def test_a_workflow_steps_own_labels_make_a_pod_of_their_own() -> None:
    """A template's `metadata.labels` go on its pods (the judge admits only `mlops.io/judge-client`)."""
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "evaluate", "namespace": "wf"},
        "spec": {
            "templates": [
                {"name": "main", "steps": []},
                {"name": "judge", "metadata": {"labels": {"mlops.io/judge-client": "true"}}, "container": {}},
                {"name": "plain", "container": {}},
            ]
        },
    }
    pods = build_pods(Build("b", [template]))
    labelled = [p for p in pods if p.labels.get("mlops.io/judge-client") == "true"]
    assert [p.name for p in labelled] == ["workflow evaluate step judge"]
    assert len(pods) == 2 and all("workflows.argoproj.io/workflow" in p.labels for p in pods)
