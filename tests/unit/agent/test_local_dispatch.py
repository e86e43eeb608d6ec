"""``plan_ruleset(local=...)``: a node's agent dispatches only its own pods, peers stay global.

A packet between pods on nodes X and Y crosses X's table (the source's egress) and Y's table
(the destination's ingress). These tests hold the two node tables, together, to the table that
dispatches every pod, on every pair and port, and check that non-local pods get no chain.
"""

from __future__ import annotations

import itertools

from tests.builders import inventory, namespace, pod, policy

from kubefence.api import Inventory, IPAddress, Protocol
from kubefence.dataplane.nft import PROTOCOL_NUMBERS, plan_ruleset, render_ruleset

PODS = [
    pod("a/web", ip="198.18.1.2", node="n1", app="web", ports=[{"containerPort": 80}]),
    pod("a/db", ip="198.18.2.2", node="n2", app="db", ports=[{"containerPort": 5432}]),
    pod("b/client", ip="198.18.1.3", node="n1", app="client"),
    pod("b/other", ip="198.18.2.3", node="n2", app="other"),
]
POLICIES = [
    policy(
        "a/db-from-web",
        {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [
            {"podSelector": {"matchLabels": {"app": "web"}}}]}]},
    ),
    policy(
        "a/web-egress",
        {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
         "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                     "ports": [{"port": 5432}]}]},
    ),
    policy(
        "b/client-egress",
        {"podSelector": {}, "policyTypes": ["Egress", "Ingress"], "egress": [{"to": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}}]}]},
    ),
]  # fmt: skip


def cluster() -> Inventory:
    return inventory(namespace("a"), namespace("b"), *PODS, *POLICIES)


def addresses(inv: Inventory) -> dict[str, tuple[IPAddress, ...]]:
    return {p.key: p.ips for p in inv.pods}


def test_only_local_pods_are_dispatched_and_peers_stay_cluster_wide() -> None:
    inv = cluster()
    local = {"a/web", "b/client"}
    plan = plan_ruleset(inv, addresses=addresses(inv), local=local)
    assert {d.pod for d in plan.egress_dispatch} == {"a/web", "b/client"}
    assert {d.pod for d in plan.ingress_dispatch} == {"b/client"}  # a/web: no ingress policy
    # a/db (on n2) is still a peer: the atom map knows its address.
    db = inv.pod_by_key["a/db"].ips[0]
    web = inv.pod_by_key["a/web"].ips[0]
    assert plan.atom_of(db) != 0
    assert plan.atom_of(db) != plan.atom_of(web)


def test_two_node_tables_together_decide_as_the_whole_table() -> None:
    inv = cluster()
    whole = plan_ruleset(inv, addresses=addresses(inv))
    node_of = {p.key: p.node for p in inv.pods}
    tables = {
        node: plan_ruleset(
            inv, addresses=addresses(inv), local={k for k, n in node_of.items() if n == node}
        )
        for node in ("n1", "n2")
    }
    checked = 0
    for src, dst in itertools.permutations(inv.pods, 2):
        for port in (80, 5432, 9999):
            for protocol in (Protocol.TCP, Protocol.UDP):
                number = PROTOCOL_NUMBERS[protocol]
                s, d = src.ips[0], dst.ips[0]
                expected = whole.verdict(s, d, protocol=number, port=port)
                nodes = {node_of[src.key], node_of[dst.key]}
                got = all(tables[str(n)].verdict(s, d, protocol=number, port=port) for n in nodes)
                assert got == expected, (src.key, dst.key, port, protocol)
                checked += 1
    assert checked == 12 * 6


def test_local_none_is_the_whole_table_and_empty_local_dispatches_nothing() -> None:
    inv = cluster()
    assert render_ruleset(inv, addresses=addresses(inv), local=None) == render_ruleset(
        inv, addresses=addresses(inv)
    )
    nothing = plan_ruleset(inv, addresses=addresses(inv), local=())
    assert nothing.egress_dispatch == ()
    assert nothing.ingress_dispatch == ()
