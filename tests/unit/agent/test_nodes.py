"""The agent's Nodes: the store keeps them, the plan enforces tier ``nodes`` peers from them.

Why this module exists: a ClusterNetworkPolicy ``nodes`` peer is decided on Node labels and
``status.addresses`` (T05). The agent's store must hand the planner the Nodes it watches, a
kubelet heartbeat must not count as a change, and a label or address change must change the
plan (by an update of the tier maps, not a new table) so that it agrees with the reference
evaluator for every pod -> node address pair.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from tests.builders import namespace, pod
from tests.unit.agent.test_store import server_copy

from kubefence.agent._nodes import parse_node, reduced
from kubefence.agent._store import Store
from kubefence.api import IPAddress
from kubefence.dataplane.nft import MemoisedRenderer, RulesetPlan, ruleset_update, table_change
from kubefence.semantics import decide

DENY_INFRA = {
    "apiVersion": "policy.networking.k8s.io/v1alpha2",
    "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "no-infra-nodes"},
    "spec": {
        "tier": "Admin",
        "priority": 5,
        "subject": {"namespaces": {}},
        "egress": [
            {
                "name": "infra",
                "action": "Deny",
                "to": [{"nodes": {"matchLabels": {"role": "infra"}}}],
            }
        ],
    },
}
# The addresses probed: n4's is no node's until n2 moves there.
ADDRESSES = {"n1": "198.19.255.1", "n2": "198.19.255.2", "n3": "198.19.255.3", "n4": "198.19.255.4"}


def node(name: str, address: str | None = None, **labels: str) -> dict[str, Any]:
    """A Node as the API server returns it, with the status a kubelet writes."""
    return server_copy(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": {"podCIDR": "198.18.1.0/24"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": address or ADDRESSES[name]},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}
                ],
            },
        }
    )


def cluster() -> Store:
    store = Store("n1")
    store.put("Namespace", "a", server_copy(namespace("a")))
    store.put("Pod", "a/web", server_copy(pod("a/web", ip="198.18.1.2", node="n1")))
    store.put("Pod", "a/db", server_copy(pod("a/db", ip="198.18.2.2", node="n2")))
    store.put("Node", "n1", node("n1", role="worker"))
    store.put("Node", "n2", node("n2", role="infra"))
    store.put("Node", "n3", node("n3"))
    assert store.put("ClusterNetworkPolicy", "no-infra-nodes", server_copy(DENY_INFRA)) is None
    return store


class Planner:
    """The agent's planning step (``Enforcer.install`` without the kernel)."""

    def __init__(self) -> None:
        self.renderer = MemoisedRenderer()

    def plan(self, store: Store) -> RulesetPlan:
        snapshot = store.snapshot()
        self.renderer.memo.expect(snapshot.changes)
        return self.renderer.plan(
            snapshot.inventory, addresses=snapshot.addresses, local=snapshot.local
        )


def agrees_with_the_reference(store: Store, plan: RulesetPlan) -> dict[str, bool]:
    """Each node address from a/web: the plan's verdict, checked against ``decide``."""
    inventory = store.snapshot().inventory
    found = {}
    for name, text in sorted(ADDRESSES.items()):
        address: IPAddress = ipaddress.ip_address(text)
        got = plan.verdict(ipaddress.ip_address("198.18.1.2"), address, protocol=6, port=80)
        expected = decide(inventory, "a/web", text, port=80).allowed
        assert got is expected, (name, got, expected)
        found[name] = got
    return found


def test_the_store_hands_the_planner_its_nodes_and_the_plan_follows_their_labels() -> None:
    store = cluster()
    planner = Planner()
    snapshot = store.snapshot()
    assert [n.name for n in snapshot.inventory.nodes] == ["n1", "n2", "n3"]
    assert [str(a) for a in snapshot.inventory.nodes[1].addresses] == ["198.19.255.2"]
    assert store.count("Node") == 3
    first = planner.plan(store)
    assert agrees_with_the_reference(store, first) == {
        "n1": True,
        "n2": False,
        "n3": True,
        "n4": True,
    }

    relabelled = node("n3", role="infra")
    store.put("Node", "n3", relabelled)
    second = planner.plan(store)
    assert agrees_with_the_reference(store, second) == {
        "n1": True,
        "n2": False,
        "n3": False,
        "n4": True,
    }
    change = table_change(first, second)
    assert change is not None  # the tier maps change, the table stays
    update = ruleset_update(first, second)
    assert update
    assert "delete table" not in update

    store.put("Node", "n2", node("n2", address="198.19.255.4", role="infra"))  # n2 moves
    third = planner.plan(store)
    found = agrees_with_the_reference(store, third)
    assert found == {"n1": True, "n2": True, "n3": False, "n4": False}

    store.remove("Node", "n3")
    fourth = planner.plan(store)
    found = agrees_with_the_reference(store, fourth)
    assert found == {"n1": True, "n2": True, "n3": True, "n4": False}


def test_a_kubelet_heartbeat_is_no_change() -> None:
    store = cluster()
    before = store.version
    beat = copy.deepcopy(node("n2", role="infra"))
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:00:10Z"
    beat["status"]["images"] = [{"names": ["nginx"], "sizeBytes": 1}]
    beat["metadata"]["resourceVersion"] = "7"
    assert store.put("Node", "n2", beat) is None
    assert store.version == before
    store.put("Node", "n2", node("n2", role="infra", zone="z1"))
    assert store.version == before + 1


def test_a_node_address_that_is_no_ip_is_left_out_and_reported() -> None:
    store = cluster()
    bad = node("n3", role="infra")
    bad["status"]["addresses"].append({"type": "ExternalIP", "address": "not-an-ip"})
    problem = store.put("Node", "n3", bad)
    assert problem is not None
    assert problem.kind == "Node"
    assert "status.addresses" in problem.message
    nodes = {n.name: n for n in store.snapshot().inventory.nodes}
    assert [str(a) for a in nodes["n3"].addresses] == ["198.19.255.3"]  # the valid one stays
    assert agrees_with_the_reference(store, Planner().plan(store))["n3"] is False
    store.put("Node", "n3", node("n3", role="infra"))
    assert store.snapshot().problems == ()


def test_reduced_keeps_only_what_the_nodes_peer_reads() -> None:
    manifest = reduced(node("n1", role="worker"))
    assert manifest == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "role": "worker"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "198.19.255.1"}]},
    }
    assert reduced({"metadata": None, "status": {"addresses": "x"}})["status"] == {"addresses": []}
    unreadable = parse_node({**manifest, "metadata": {"name": "n1", "labels": {"bad key!": "v"}}})
    assert unreadable.node is None
    assert unreadable.problem
