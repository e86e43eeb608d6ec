"""The engine on small hand-written clusters, one NetworkPolicy rule per test.

Why this module exists: the differential tests say the engine equals the reference; these pin
the expected verdicts themselves for each rule the engine implements on vectors (so a bug shared
by both executions, or a case random clusters rarely reach, still fails here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from tests.builders import inventory as cluster
from tests.builders import namespace as ns
from tests.builders import policy

from kubefence.api import Inventory, Protocol
from kubefence.engine import ReachabilityAnalysis, ReachabilityModel, compute_matrix
from kubefence.errors import InputError
from kubefence.semantics import Settings


def pod(
    key: str,
    labels: Mapping[str, str] | None = None,
    *,
    ports: Sequence[tuple[int, str | None, str]] = (),
    ip: str | None = None,
    host: bool = False,
    node: str | None = None,
) -> dict[str, Any]:
    namespace, name = key.split("/")
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if ports:
        container["ports"] = [
            {"containerPort": n, "protocol": proto, **({"name": pn} if pn else {})}
            for n, pn, proto in ports
        ]
    spec: dict[str, Any] = {"containers": [container], "hostNetwork": host}
    if node:
        spec["nodeName"] = node
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": spec,
    }
    if ip:
        obj["status"] = {"podIP": ip}
    return obj


def allowed(inv: Inventory, src: str, dst: str, port: int | str = 80, **kw: Any) -> bool:
    return compute_matrix(inv, port=port, **kw).allowed(src, dst)


def test_s01_s03_policy_isolates_only_selected_pods_of_its_namespace() -> None:
    """A deny-all ingress policy in ``a`` isolates ``a``'s selected pods and nothing else."""
    inv = cluster(
        pod("a/web", {"app": "web"}),
        pod("a/db", {"app": "db"}),
        pod("b/web", {"app": "web"}),
        policy("a/deny", {"podSelector": {"matchLabels": {"app": "web"}}}),
    )
    assert not allowed(inv, "a/db", "a/web")
    assert not allowed(inv, "b/web", "a/web")
    assert allowed(inv, "a/web", "a/db")
    assert allowed(inv, "a/web", "b/web")


def test_s02_s08_empty_egress_list_does_not_isolate_egress() -> None:
    """``egress: []`` without policyTypes leaves egress open (S02); explicit Egress denies (S08)."""
    base = [pod("a/x"), pod("b/y")]
    open_egress = cluster(*base, policy("a/p", {"podSelector": {}, "egress": []}))
    assert allowed(open_egress, "a/x", "b/y")
    closed = cluster(*base, policy("a/p", {"podSelector": {}, "policyTypes": ["Egress"]}))
    assert not allowed(closed, "a/x", "b/y")
    assert allowed(closed, "b/y", "a/x")


def test_s05_connection_needs_egress_and_ingress() -> None:
    """Egress allowed at the source but ingress denied at the destination: denied."""
    inv = cluster(
        pod("a/x"),
        pod("b/y"),
        policy("a/out", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
        policy("b/in", {"podSelector": {}, "policyTypes": ["Ingress"]}),
    )
    assert not allowed(inv, "a/x", "b/y")
    assert allowed(inv, "b/y", "a/x")


def test_s07_self_traffic_is_always_allowed_unless_the_setting_says_no() -> None:
    """The diagonal is 1 under deny-all; with the setting off it follows the policies."""
    inv = cluster(pod("a/x"), pod("a/y"), policy("a/deny", {"podSelector": {}}))
    matrix = compute_matrix(inv, port=80)
    assert matrix.rows() == ["10", "01"]
    strict = compute_matrix(inv, port=80, settings=Settings(self_traffic_allowed=False))
    assert strict.rows() == ["00", "00"]


def test_s07_two_pods_of_one_class_are_not_self_traffic() -> None:
    """Pods with identical labels share a class, yet only each pod's own cell is forced to 1."""
    inv = cluster(
        pod("a/x", {"app": "w"}), pod("a/y", {"app": "w"}), policy("a/d", {"podSelector": {}})
    )
    analysis = ReachabilityAnalysis(inv)
    assert analysis.classes.count == 1
    assert analysis.matrix(80).rows() == ["10", "01"]


def test_s09_s10_empty_from_matches_every_peer_but_ports_still_apply() -> None:
    """``from`` absent matches all sources; peer AND port must hold in one rule."""
    inv = cluster(
        pod("a/x"),
        pod("b/y"),
        policy("a/p", {"podSelector": {}, "ingress": [{"ports": [{"port": 443}]}]}),
    )
    assert allowed(inv, "b/y", "a/x", 443)
    assert not allowed(inv, "b/y", "a/x", 80)


def test_s11_s12_s13_and_peer_differs_from_two_or_peers() -> None:
    """One item with both selectors is AND; two items are OR (the classic trap)."""
    objs = [
        ns("a"),
        ns("b", team="x"),
        ns("c", team="x"),
        pod("a/target"),
        pod("a/web", {"app": "web"}),
        pod("b/web", {"app": "web"}),
        pod("c/db", {"app": "db"}),
    ]
    both = {
        "namespaceSelector": {"matchLabels": {"team": "x"}},
        "podSelector": {"matchLabels": {"app": "web"}},
    }
    and_inv = cluster(*objs, policy("a/p", {"podSelector": {}, "ingress": [{"from": [both]}]}))
    assert allowed(and_inv, "b/web", "a/target")
    assert not allowed(and_inv, "c/db", "a/target")
    assert not allowed(and_inv, "a/web", "a/target")  # a lacks team=x
    split = [
        {"namespaceSelector": {"matchLabels": {"team": "x"}}},
        {"podSelector": {"matchLabels": {"app": "web"}}},
    ]
    or_inv = cluster(*objs, policy("a/p", {"podSelector": {}, "ingress": [{"from": split}]}))
    assert allowed(or_inv, "c/db", "a/target")  # S12: any pod of a team=x namespace
    assert allowed(or_inv, "a/web", "a/target")  # S11: own namespace only
    assert allowed(or_inv, "b/web", "a/target")


def test_s14_s17_match_expressions_and_empty_selectors() -> None:
    """NotIn holds for an absent key; ``{}`` namespaceSelector means every namespace."""
    inv = cluster(
        pod("a/target"),
        pod("b/plain"),
        pod("b/prod", {"env": "prod"}),
        pod("b/dev", {"env": "dev"}),
        policy(
            "a/p",
            {
                "podSelector": {},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {},
                                "podSelector": {
                                    "matchExpressions": [
                                        {"key": "env", "operator": "NotIn", "values": ["prod"]}
                                    ]
                                },
                            }
                        ]
                    }
                ],
            },
        ),
    )
    assert allowed(inv, "b/plain", "a/target")
    assert allowed(inv, "b/dev", "a/target")
    assert not allowed(inv, "b/prod", "a/target")


def test_s15_ipblock_with_except_matches_pod_ips_per_setting() -> None:
    """cidr minus except matches pods by IP; pods without IPs never; the setting turns it off."""
    inv = cluster(
        pod("a/target"),
        pod("b/in", ip="10.0.0.70"),
        pod("b/excepted", ip="10.0.0.5"),
        pod("b/no-ip"),
        policy(
            "a/p",
            {
                "podSelector": {},
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/24", "except": ["10.0.0.0/28"]}}]}
                ],
            },
        ),
    )
    assert allowed(inv, "b/in", "a/target")
    assert not allowed(inv, "b/excepted", "a/target")
    assert not allowed(inv, "b/no-ip", "a/target")
    off = Settings(ipblock_matches_pods=False)
    assert not allowed(inv, "b/in", "a/target", settings=off)


def test_s18_s19_protocol_only_port_entry_matches_every_port_of_that_protocol() -> None:
    """``ports: [{protocol: UDP}]`` allows any UDP port and no TCP port."""
    inv = cluster(
        pod("a/x"),
        pod("b/y"),
        policy("a/p", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}]}]}),
    )
    assert allowed(inv, "b/y", "a/x", 5353, protocol=Protocol.UDP)
    assert not allowed(inv, "b/y", "a/x", 5353, protocol=Protocol.TCP)


def test_s20_end_port_is_an_inclusive_range() -> None:
    """port 8000 endPort 8080 allows 8000 and 8080, not 7999 or 8081."""
    inv = cluster(
        pod("a/x"),
        pod("b/y"),
        policy(
            "a/p",
            {"podSelector": {}, "ingress": [{"ports": [{"port": 8000, "endPort": 8080}]}]},
        ),
    )
    verdicts = {p: allowed(inv, "b/y", "a/x", p) for p in (7999, 8000, 8080, 8081)}
    assert verdicts == {7999: False, 8000: True, 8080: True, 8081: False}


def test_s21_named_port_resolves_per_destination_with_clashing_numbers() -> None:
    """``http`` is 80 on one pod and 8080 on another: each destination uses its own number."""
    inv = cluster(
        pod("a/eighty", {"app": "w"}, ports=[(80, "http", "TCP")]),
        pod("a/alt", {"app": "w"}, ports=[(8080, "http", "TCP")]),
        pod("a/none", {"app": "w"}),
        pod("b/client"),
        policy("a/p", {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}),
    )
    assert allowed(inv, "b/client", "a/eighty", 80)
    assert not allowed(inv, "b/client", "a/eighty", 8080)
    assert allowed(inv, "b/client", "a/alt", 8080)
    assert not allowed(inv, "b/client", "a/alt", 80)
    assert not allowed(inv, "b/client", "a/none", 80)
    # A named query port: resolved per destination, unresolvable where it is not declared.
    named = compute_matrix(inv, port="http")
    assert named.allowed("b/client", "a/alt")
    assert not named.allowed("b/client", "a/none")
    assert named.allowed("a/none", "a/none")  # S07 still holds


def test_s21_named_port_in_egress_resolves_against_the_peer_pod() -> None:
    """An egress rule's named port is looked up on the destination (peer) pod, by protocol."""
    inv = cluster(
        pod("a/client"),
        pod("b/dns", ports=[(53, "dns", "UDP")]),
        pod("b/tcp-dns", ports=[(53, "dns", "TCP")]),
        policy(
            "a/p",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}],
            },
        ),
    )
    assert allowed(inv, "a/client", "b/dns", 53, protocol=Protocol.UDP)
    assert not allowed(inv, "a/client", "b/tcp-dns", 53, protocol=Protocol.UDP)
    assert not allowed(inv, "a/client", "b/tcp-dns", 53, protocol=Protocol.TCP)


def test_s23_host_network_pods_are_neither_targets_nor_pod_peers() -> None:
    """A hostNetwork pod escapes isolation, is not a pod peer, matches ipBlocks by its IP, and
    a named port towards it matches nothing."""
    inv = cluster(
        pod("a/host", {"app": "w"}, ports=[(80, "http", "TCP")], ip="192.168.1.1", host=True),
        pod("a/client", {"app": "c"}),
        policy("a/deny", {"podSelector": {}}),
        policy(
            "a/out",
            {
                "podSelector": {"matchLabels": {"app": "c"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"podSelector": {"matchLabels": {"app": "w"}}}]},
                    {"to": [{"ipBlock": {"cidr": "192.168.1.0/24"}}], "ports": [{"port": "http"}]},
                ],
            },
        ),
    )
    assert allowed(inv, "a/client", "a/host", 80) is False
    assert allowed(inv, "a/host", "a/client", 80) is False  # the client is ingress-isolated
    selectable = Settings(host_network_selectable=True)
    assert allowed(inv, "a/client", "a/host", 80, settings=selectable) is False  # deny-all now


def test_s24_traffic_from_a_pods_own_node_is_allowed() -> None:
    """A hostNetwork pod reaches isolated pods on its own node only (and not with the setting
    off)."""
    inv = cluster(
        pod("kube/agent", host=True, node="n1", ip="192.168.1.1"),
        pod("a/same", node="n1"),
        pod("a/other", node="n2"),
        policy("a/deny", {"podSelector": {}}),
    )
    assert allowed(inv, "kube/agent", "a/same")
    assert not allowed(inv, "kube/agent", "a/other")
    assert not allowed(inv, "kube/agent", "a/same", settings=Settings(allow_from_node=False))
    summary = compute_matrix(inv, port=80).namespace_summary()
    assert summary.namespaces == ("a", "kube")
    assert summary.allowed[1][0] == 1


def test_s24_s21_from_node_on_a_port_name_only_to_pods_declaring_it() -> None:
    """On a port name, a hostNetwork pod reaches the pods of its node that declare the name,
    not one that does not (an undeclared name stays unreachable even from the node); the
    incremental model agrees."""
    inv = cluster(
        pod("kube/agent", host=True, node="n1", ip="192.168.1.1"),
        pod("a/web", node="n1", ports=[(8080, "http", "TCP")]),
        pod("a/db", node="n1"),
        policy("a/deny", {"podSelector": {}}),
    )
    matrix = compute_matrix(inv, port="http")
    assert matrix.allowed("kube/agent", "a/web")
    assert not matrix.allowed("kube/agent", "a/db")
    assert matrix.overrides == ((2, (1,)),)  # endpoints: a/db, a/web, kube/agent
    model = ReachabilityModel(inv, port="http")
    assert model.matrix().rows() == matrix.rows()


def test_matrix_json_shape_matches_design() -> None:
    """``to_json`` is exactly {port, protocol, endpoints, rows} with '0'/'1' rows."""
    inv = cluster(
        pod("default/busybox"), pod("test/nginx"), policy("default/d", {"podSelector": {}})
    )
    doc = compute_matrix(inv, port="80").to_json()
    assert doc == {
        "port": "80",
        "protocol": "TCP",
        "endpoints": ["default/busybox", "test/nginx"],
        "rows": ["11", "01"],
    }


def test_unknown_endpoint_is_an_input_error() -> None:
    """Asking about a pod that is not in the inventory raises InputError, not KeyError."""
    inv = cluster(pod("a/x"))
    with pytest.raises(InputError, match="a/nope"):
        compute_matrix(inv, port=80).allowed("a/x", "a/nope")


def test_classes_collapse_replicas_and_expand_correctly() -> None:
    """Replicas with equal labels and ports form one class; rows are expanded per pod."""
    objs = [pod(f"a/web-{i}", {"app": "web"}, ports=[(80, "http", "TCP")]) for i in range(5)]
    objs += [pod(f"b/db-{i}", {"app": "db"}) for i in range(3)]
    objs.append(
        policy(
            "a/p",
            {
                "podSelector": {},
                "ingress": [
                    {
                        "from": [
                            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}}
                        ]
                    }
                ],
            },
        )
    )
    analysis = ReachabilityAnalysis(cluster(*objs))
    assert analysis.classes.count == 2
    dense = analysis.matrix(80).dense()
    assert dense.shape == (8, 8)
    assert dense[5:, :5].all()  # db -> web allowed
    assert not dense[:5, :5][~np.eye(5, dtype=bool)].any()  # web -> web denied


def test_s21_named_query_port_undeclared_at_destination_is_denied_without_policies() -> None:
    """With no policy at all, a port name the destination does not declare cannot be reached."""
    inv = cluster(pod("a/x", ports=[(80, "http", "TCP")]), pod("a/y"))
    matrix = compute_matrix(inv, port="http")
    assert matrix.rows() == ["10", "11"]
    assert compute_matrix(inv, port="http", protocol=Protocol.UDP).rows() == ["10", "01"]


def test_namespace_summary_is_read_only_int_arrays_and_plain_json() -> None:
    """The summary holds namespaces x namespaces int64 arrays that callers cannot change,
    totals as Python ints, and a JSON form of plain lists of ints."""
    import json

    inv = cluster(
        pod("a/web", {"app": "web"}),
        pod("a/db", {"app": "db"}),
        pod("b/client"),
        policy("a/deny", {"podSelector": {"matchLabels": {"app": "db"}}}),
    )
    summary = compute_matrix(inv, port=80).namespace_summary()
    assert summary.allowed.dtype == np.int64
    assert summary.allowed.shape == summary.pairs.shape == (2, 2)
    with pytest.raises(ValueError, match="read-only"):
        summary.allowed[0, 0] = 7
    assert summary.pairs.tolist() == [[2, 2], [2, 0]]
    assert summary.allowed.tolist() == [[1, 2], [1, 0]]  # nothing reaches a/db
    assert summary.total_allowed() == 4
    assert summary.total_pairs() == 6
    assert type(summary.total_allowed()) is int
    assert json.loads(json.dumps(summary.to_json())) == summary.to_json()
