"""The agent's admin tiers without a server: the store keeps them, the agent asks politely.

Why this module exists: ClusterNetworkPolicy (and v1alpha1 ANP/BANP) reach the planner
through the store like NetworkPolicies do, and an API server that does not serve a tier
kind (404) must neither block the agent's first sync nor be asked more than every 30 s.
"""

from __future__ import annotations

from typing import Any

from tests.builders import namespace, pod
from tests.unit.agent.test_store import server_copy

import kubefence.agent._agent as agent_module
from kubefence.agent._agent import ADMIN_RESOURCES, Agent, Options
from kubefence.agent._store import Store
from kubefence.client import ApiError

BASELINE = {
    "apiVersion": "policy.networking.k8s.io/v1alpha2",
    "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "tenants"},
    "spec": {
        "tier": "Baseline",
        "priority": 10,
        "subject": {"namespaces": {"matchLabels": {"tenant": "red"}}},
        "ingress": [
            {
                "name": "others",
                "action": "Deny",
                "from": [{"namespaces": {"matchLabels": {"tenant": "blue"}}}],
            }
        ],
    },
}


def test_the_store_keeps_admin_tiers_and_plans_every_pod_with_them() -> None:
    store = Store("n1")
    store.put("Namespace", "red", server_copy(namespace("red", tenant="red")))
    store.put("Pod", "red/a", server_copy(pod("red/a", ip="198.18.1.2", node="n1")))
    store.put("Pod", "blue/b", server_copy(pod("blue/b", ip="198.18.2.2", node="n2")))
    assert [p.key for p in store.snapshot().inventory.pods] == ["red/a"]  # no peer reads blue
    assert store.put("ClusterNetworkPolicy", "tenants", server_copy(BASELINE)) is None
    snap = store.snapshot()
    assert [p.name for p in snap.inventory.admin_policies] == ["tenants"]
    assert [p.key for p in snap.inventory.pods] == ["blue/b", "red/a"]
    assert snap.policies_total == 1
    bad = server_copy(BASELINE)
    bad["spec"] = {**BASELINE["spec"], "priority": -1}  # type: ignore[dict-item]
    problem = store.put("ClusterNetworkPolicy", "tenants", bad)
    assert problem is not None
    assert "priority" in problem.message
    assert store.snapshot().inventory.admin_policies == ()
    store.remove("ClusterNetworkPolicy", "tenants")
    assert store.snapshot().problems == ()


class _NotServed:
    host = "https://198.18.255.1:6443"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, path: str, **query: str) -> dict[str, Any]:
        self.asked.append(path)
        raise ApiError(404, {"reason": "NotFound"}, "")


def test_kinds_not_served_are_not_watched_and_asked_again_after_30_seconds(
    monkeypatch: Any,
) -> None:
    kube = _NotServed()
    agent = Agent(Options(node="n1", unsupported=()), kube=kube)  # type: ignore[arg-type]
    clock = [1000.0]
    monkeypatch.setattr(agent_module.time, "monotonic", lambda: clock[0])
    assert agent._watch_admin_tiers() == []
    assert len(kube.asked) == len(ADMIN_RESOURCES)
    assert not set(ADMIN_RESOURCES) & set(agent.informers)
    clock[0] += 29.0
    agent._watch_admin_tiers()
    assert len(kube.asked) == len(ADMIN_RESOURCES)
    clock[0] += 2.0
    agent._watch_admin_tiers()
    assert len(kube.asked) == 2 * len(ADMIN_RESOURCES)
