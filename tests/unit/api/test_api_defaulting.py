"""API-server defaulting (S02, S16, S18) and how objects become models (pods from workloads,
implicit namespaces, skipped kinds, IPs, services)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from tests.builders import policy_of as policy

from kubefence.api import ContainerPort, PolicyType, Protocol
from kubefence.errors import ValidationError
from kubefence.sources.objects import inventory_from_objects


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.25",
                "ports": [
                    {"name": "http", "containerPort": 80},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                ],
            }
        ],
        **extra,
    }


def workload(kind: str, name: str = "web", **spec: Any) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": name}}, "spec": pod_spec(hostNetwork=True)}
    api = {"Job": "batch/v1", "CronJob": "batch/v1", "ReplicationController": "v1"}.get(
        kind, "apps/v1"
    )
    body: dict[str, Any] = dict(spec)
    if kind == "CronJob":
        body.setdefault("schedule", "0 * * * *")
        body["jobTemplate"] = {"spec": {"template": template}}
    else:
        body["template"] = template
        if kind not in ("Job", "ReplicationController"):
            body.setdefault("selector", {"matchLabels": {"app": name}})
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "prod"},
        "spec": body,
    }


# --- S02 policyTypes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"podSelector": {}}, ("Ingress",)),
        ({"podSelector": {}, "policyTypes": []}, ("Ingress",)),
        ({"podSelector": {}, "egress": []}, ("Ingress",)),
        ({"podSelector": {}, "egress": [{}]}, ("Ingress", "Egress")),
        ({"podSelector": {}, "ingress": [{}], "egress": [{"to": []}]}, ("Ingress", "Egress")),
        ({"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}, ("Egress",)),
        ({"podSelector": {}, "policyTypes": ["Egress", "Ingress"]}, ("Egress", "Ingress")),
    ],
    ids=[
        "absent",
        "empty",
        "egress-empty-list",
        "egress-rule",
        "both",
        "explicit-egress",
        "explicit-both",
    ],
)
def test_s02_policy_types_defaulting(spec: dict[str, Any], expected: tuple[str, ...]) -> None:
    """policyTypes absent/empty -> [Ingress] + Egress iff egress has a rule; explicit wins."""
    [parsed] = inventory_from_objects([policy(spec)]).policies
    assert parsed.policy_types == tuple(PolicyType(t) for t in expected)


def test_s02_s08_ingress_absent_and_empty_both_allow_nothing() -> None:
    """Missing ``ingress`` and ``ingress: []`` both parse to no rules (deny, S08)."""
    inv = inventory_from_objects(
        [
            policy({"podSelector": {}}, name="a"),
            policy({"podSelector": {}, "ingress": []}, name="b"),
        ]
    )
    assert [p.ingress for p in inv.policies] == [(), ()]


def test_s09_empty_from_and_ports_mean_everything() -> None:
    """``ingress: [{}]`` is one rule with no peers and no ports (matches everything, S09)."""
    [parsed] = inventory_from_objects([policy({"podSelector": {}, "ingress": [{}]})]).policies
    assert len(parsed.ingress) == 1
    assert parsed.ingress[0].peers == ()
    assert parsed.ingress[0].ports == ()


# --- S16 namespace label ------------------------------------------------------------------------


def test_s16_declared_namespace_gets_metadata_name_label() -> None:
    """A Namespace without labels gets kubernetes.io/metadata.name=<name>."""
    [ns] = inventory_from_objects(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "prod", "labels": {"env": "prod"}},
            }
        ]
    ).namespaces
    assert dict(ns.labels) == {"env": "prod", "kubernetes.io/metadata.name": "prod"}
    assert not ns.implicit


def test_s16_metadata_name_label_is_overwritten_like_the_api_server() -> None:
    """A manifest cannot make kubernetes.io/metadata.name differ from the name."""
    [ns] = inventory_from_objects(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "prod", "labels": {"kubernetes.io/metadata.name": "other"}},
            }
        ]
    ).namespaces
    assert ns.labels["kubernetes.io/metadata.name"] == "prod"


def test_s16_implicit_namespace_has_label_and_note() -> None:
    """A namespace only referenced by a policy is created implicitly, labelled, and noted."""
    inv = inventory_from_objects([policy({"podSelector": {}}, namespace="shop")])
    [ns] = inv.namespaces
    assert ns.implicit
    assert dict(ns.labels) == {"kubernetes.io/metadata.name": "shop"}
    assert inv.notes == (
        "namespace shop was created implicitly (referenced by NetworkPolicy shop/p)",
    )


# --- S18 protocol default ------------------------------------------------------------------------


def test_s18_policy_port_protocol_defaults_to_tcp() -> None:
    """A policy port without protocol is TCP; given protocols are kept."""
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": 80}, {"protocol": "UDP"}]}]}
    [parsed] = inventory_from_objects([policy(spec)]).policies
    ports = parsed.ingress[0].ports
    assert [(p.protocol, p.port) for p in ports] == [(Protocol.TCP, 80), (Protocol.UDP, None)]


def test_s18_container_and_service_ports_default_to_tcp() -> None:
    """Container ports and service ports without protocol are TCP; targetPort defaults to port."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": pod_spec()}
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "a"},
        "spec": {"selector": {"app": "a"}, "ports": [{"port": 8080}]},
    }
    inv = inventory_from_objects([pod, svc])
    assert inv.pods[0].ports == (
        ContainerPort(80, Protocol.TCP, "http"),
        ContainerPort(53, Protocol.UDP, "dns"),
    )
    [port] = inv.services[0].ports
    assert (port.port, port.target_port, port.protocol) == (8080, 8080, Protocol.TCP)


# --- pods and workloads ---------------------------------------------------------------------------


def test_pod_ips_ipv4_and_ipv6_in_order_without_repeats() -> None:
    """podIP and podIPs combine, in order, without duplicates; IPv6 is kept."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a", "namespace": "n"},
        "spec": pod_spec(nodeName="node-1"),
        "status": {
            "phase": "Running",
            "podIP": "198.18.0.5",
            "podIPs": [{"ip": "198.18.0.5"}, {"ip": "fd00::5"}],
        },
    }
    [parsed] = inventory_from_objects([pod]).pods
    assert parsed.ips == (ipaddress.ip_address("198.18.0.5"), ipaddress.ip_address("fd00::5"))
    assert (parsed.phase, parsed.node, parsed.images) == ("Running", "node-1", ("nginx:1.25",))


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pods_are_left_out_with_a_note(phase: str) -> None:
    """Pods in phase Succeeded/Failed do not become pods (their IPs may be reused)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "done"},
        "spec": pod_spec(),
        "status": {"phase": phase, "podIP": "198.18.0.9"},
    }
    inv = inventory_from_objects([pod])
    assert inv.pods == ()
    assert f"pod default/done left out: phase {phase}" in inv.notes


@pytest.mark.parametrize(
    ("kind", "spec", "count"),
    [
        ("Deployment", {"replicas": 3}, 3),
        ("Deployment", {}, 1),
        ("Deployment", {"replicas": 0}, 0),
        ("ReplicaSet", {"replicas": 2}, 2),
        ("StatefulSet", {"replicas": 2}, 2),
        ("ReplicationController", {"replicas": 2}, 2),
        ("DaemonSet", {}, 1),
        ("Job", {}, 1),
        ("CronJob", {}, 1),
    ],
)
def test_workloads_become_pods_from_their_template(
    kind: str, spec: dict[str, Any], count: int
) -> None:
    """Workloads expand to ``<name>-<i>`` pods with the template's labels, ports and owner."""
    pods = inventory_from_objects([workload(kind, **spec)]).pods
    assert [p.name for p in pods] == [f"web-{i}" for i in range(count)]
    for pod in pods:
        assert pod.namespace == "prod"
        assert dict(pod.labels) == {"app": "web"}
        assert pod.owner == f"{kind}/web"
        assert pod.host_network
        assert pod.images == ("nginx:1.25",)
        assert [p.name for p in pod.ports] == ["http", "dns"]


def test_workload_pod_name_clash_with_a_declared_pod_is_reported() -> None:
    """A Pod named like a generated workload pod is a duplicate, reported at metadata.name."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "prod"},
        "spec": pod_spec(),
    }
    with pytest.raises(ValidationError) as caught:
        inventory_from_objects([pod, workload("Deployment")])
    [problem] = caught.value.problems
    assert problem.path == "metadata.name"
    assert "Deployment/web" in problem.message


def test_default_namespace_and_unknown_kinds() -> None:
    """Objects without namespace go to the default namespace; unknown kinds are counted."""
    objs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": pod_spec()},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}},
    ]
    inv = inventory_from_objects(objs, default_namespace="team-a")
    assert [p.key for p in inv.pods] == ["team-a/a"]
    assert dict(inv.skipped) == {"ConfigMap": 2, "Role": 1}
    assert [ns.name for ns in inv.namespaces] == ["team-a"]


def test_invalid_default_namespace_is_reported() -> None:
    """``-n Bad_NS`` is a problem like any invalid namespace."""
    with pytest.raises(ValidationError) as caught:
        inventory_from_objects([], default_namespace="Bad_NS")
    assert caught.value.problems[0].path == "-n/--namespace"


def test_kind_list_items_are_loaded() -> None:
    """``kind: List`` contributes each item as an object."""
    items = [policy({"podSelector": {}}, name=f"p{i}") for i in range(3)]
    inv = inventory_from_objects([{"apiVersion": "v1", "kind": "List", "items": items}])
    assert [p.name for p in inv.policies] == ["p0", "p1", "p2"]


def test_duplicate_objects_are_reported_with_first_location() -> None:
    """The same kind/namespace/name twice is a problem naming where it was first defined."""
    with pytest.raises(ValidationError) as caught:
        inventory_from_objects([policy({"podSelector": {}}), policy({"podSelector": {}})])
    [problem] = caught.value.problems
    assert problem.path == "metadata.name"
    assert "first defined at <objects>" in problem.message


def test_services_keep_selector_ports_cluster_ips_and_type() -> None:
    """Services keep selector, named target ports, cluster IPs (headless: none) and type."""
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "n"},
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "clusterIP": "198.19.0.10",
            "clusterIPs": ["198.19.0.10", "fd00::a"],
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
            ],
        },
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None"},
    }
    inv = inventory_from_objects([svc, headless])
    by_name = {s.name: s for s in inv.services}
    web = by_name["web"]
    assert web.type == "NodePort"
    assert web.selector is not None
    assert dict(web.selector) == {"app": "web"}
    assert [str(ip) for ip in web.cluster_ips] == ["198.19.0.10", "fd00::a"]
    assert [(p.port, p.target_port) for p in web.ports] == [(80, "http"), (53, 5353)]
    assert by_name["db"].cluster_ips == ()
    assert by_name["db"].selector is None


def test_python_tuples_count_as_lists() -> None:
    """Objects built in Python may use tuples where YAML has lists."""
    spec = {
        "podSelector": {},
        "ingress": ({"ports": ({"port": 80},)},),
        "policyTypes": ("Ingress",),
    }
    [parsed] = inventory_from_objects([policy(spec)]).policies
    assert parsed.ingress[0].ports[0].port == 80


def test_absurd_replica_counts_are_refused() -> None:
    """A replica count beyond MAX_REPLICAS is a problem, not an attempt to build that many pods."""
    with pytest.raises(ValidationError) as caught:
        inventory_from_objects([workload("Deployment", replicas=10**12)])
    [problem] = caught.value.problems
    assert problem.path == "spec.replicas"
