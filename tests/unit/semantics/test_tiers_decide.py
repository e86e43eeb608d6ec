"""``decide`` with admin tiers: what the Decision records, and the edges of the tier rules.

Why this module exists: the scenarios check verdicts; these check the reasons (tier, policy,
priority, rule index and name, the Pass that handed over, unevaluated peers) and the edges:
self traffic, hostNetwork pods, Services, equal priorities, named ports of any protocol.
"""

from __future__ import annotations

import yaml

from kubefence.api import Inventory
from kubefence.semantics import ANY_INDEX, Decision, Reason, decide
from kubefence.sources.objects import inventory_from_objects

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: x, namespace: a, labels: {app: x}}
spec: {containers: [{name: c, image: i, ports: [{containerPort: 53, protocol: UDP, name: dns}]}]}
status: {podIP: 198.18.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: y, namespace: a, labels: {app: y}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 198.18.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: host, namespace: a}
spec: {hostNetwork: true, nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 198.19.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: a}
spec: {selector: {app: x}, ports: [{port: 80, targetPort: 8080}]}
"""


def _cnp(name: str, tier: str, priority: int, rules: str) -> str:
    return f"""
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {{name: {name}}}
spec:
  tier: {tier}
  priority: {priority}
  subject: {{namespaces: {{}}}}
{rules}"""


def _inventory(*extra: str) -> Inventory:
    text = BASE + "".join(extra)
    return inventory_from_objects([d for d in yaml.safe_load_all(text) if d])


def _ask(inventory: Inventory, src: str, dst: str, port: int | str, proto: str = "TCP") -> Decision:
    return decide(inventory, src, dst, port=port, protocol=proto)


DENY_ALL_INGRESS = "  ingress:\n  - {name: all, action: Deny, from: [{namespaces: {}}]}\n"


def test_the_decision_names_tier_policy_priority_and_rule() -> None:
    inventory = _inventory(_cnp("deny", "Admin", 4, DENY_ALL_INGRESS))
    decision = _ask(inventory, "a/y", "a/x", 80)
    assert not decision.allowed
    ingress = decision.ingress
    assert ingress is not None
    assert ingress.tier == "Admin"
    rule = ingress.tier_rule
    assert rule is not None
    assert (rule.tier, rule.kind, rule.policy, rule.priority) == (
        "Admin",
        "ClusterNetworkPolicy",
        "deny",
        4,
    )
    assert (rule.rule, rule.rule_name, rule.action, rule.peer, rule.port) == (
        0,
        "all",
        "Deny",
        0,
        ANY_INDEX,
    )
    assert decision.egress is not None
    assert decision.egress.tier == "Default"


def test_a_pod_to_itself_is_never_affected() -> None:
    inventory = _inventory(_cnp("deny", "Admin", 4, DENY_ALL_INGRESS))
    decision = _ask(inventory, "a/x", "a/x", 80)
    assert decision.allowed
    assert decision.reason is Reason.SELF


def test_host_network_pods_are_neither_subjects_nor_pod_peers() -> None:
    inventory = _inventory(_cnp("deny", "Admin", 4, DENY_ALL_INGRESS))
    from_host = _ask(inventory, "a/host", "a/x", 80)
    assert from_host.allowed  # the namespaces peer does not match the hostNetwork pod
    to_host = _ask(inventory, "a/y", "a/host", 80)
    assert to_host.allowed  # the hostNetwork pod is not a subject


def test_a_service_is_decided_per_backend_through_the_tiers() -> None:
    inventory = _inventory(
        _cnp("deny", "Admin", 4, "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n"
             "    protocols: [{tcp: {destinationPort: {number: 8080}}}]\n")
    )  # fmt: skip
    decision = _ask(inventory, "a/y", "svc:a/svc", 80)
    assert decision.reason is Reason.SERVICE
    assert not decision.allowed
    (backend,) = decision.backends
    assert backend.ingress is not None
    assert backend.ingress.tier == "Admin"


def test_equal_priorities_are_ordered_by_name() -> None:
    accept = "  ingress:\n  - {action: Accept, from: [{namespaces: {}}]}\n"
    inventory = _inventory(
        _cnp("b-deny", "Admin", 1, DENY_ALL_INGRESS), _cnp("a-ok", "Admin", 1, accept)
    )
    decision = _ask(inventory, "a/y", "a/x", 80)
    assert decision.allowed
    assert decision.ingress is not None
    assert decision.ingress.tier_rule is not None
    assert decision.ingress.tier_rule.policy == "a-ok"


def test_a_named_port_matches_the_declared_protocol_only() -> None:
    named = (
        "  ingress:\n  - action: Deny\n    from: [{namespaces: {}}]\n"
        "    protocols: [{destinationNamedPort: dns}]\n"
    )
    inventory = _inventory(_cnp("dns", "Admin", 1, named))
    assert not _ask(inventory, "a/y", "a/x", 53, "UDP").allowed
    assert _ask(inventory, "a/y", "a/x", 53, "TCP").allowed
    assert not _ask(inventory, "a/y", "a/x", "dns", "UDP").allowed


def test_pass_rules_are_recorded_through_both_tiers() -> None:
    passing = "  ingress:\n  - {name: hand-over, action: Pass, from: [{namespaces: {}}]}\n"
    inventory = _inventory(_cnp("admin", "Admin", 1, passing), _cnp("base", "Baseline", 1, passing))
    decision = _ask(inventory, "a/y", "a/x", 80)
    assert decision.allowed
    assert decision.ingress is not None
    assert decision.ingress.tier == "Default"
    assert [(p.tier, p.policy, p.rule_name) for p in decision.ingress.passed] == [
        ("Admin", "admin", "hand-over"),
        ("Baseline", "base", "hand-over"),
    ]


def test_unevaluable_peers_are_reported_and_do_not_match() -> None:
    rules = (
        "  egress:\n"
        "  - {action: Deny, to: [{domainNames: [example.org]}, {nodes: {matchLabels: {a: b}}}]}\n"
        "  - {action: Deny, to: [{nodes: {}}]}\n"
    )
    inventory = _inventory(_cnp("egress", "Admin", 1, rules))
    external = _ask(inventory, "a/x", "198.51.100.1", 443)
    assert external.allowed
    assert external.egress is not None
    assert [(u.peer_kind, u.rule, u.peer) for u in external.egress.unevaluated] == [
        ("domainNames", 0, 0)
    ]
    node = _ask(inventory, "a/x", "node:n1", 443)
    assert not node.allowed  # the empty node selector of rule 1
    assert node.egress is not None
    assert [(u.peer_kind, u.rule, u.peer) for u in node.egress.unevaluated] == [("nodes", 0, 1)]
    assert _ask(inventory, "a/x", "a/y", 443).allowed  # neither peer matches a pod


NODES = """
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {role: infra}}
status: {addresses: [{type: InternalIP, address: 198.19.0.1}, {type: Hostname, address: n1}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {role: worker}}
status: {addresses: [{type: InternalIP, address: 198.19.0.2}]}
"""


def test_node_objects_make_node_selectors_evaluable() -> None:
    rules = "  egress:\n  - {action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}\n"
    inventory = _inventory(NODES, _cnp("infra", "Admin", 1, rules))
    assert [n.name for n in inventory.nodes] == ["n1", "n2"]
    assert not _ask(inventory, "a/x", "node:n1", 22).allowed
    assert not _ask(inventory, "a/x", "198.19.0.1", 22).allowed  # a hostNetwork pod's IP too
    assert _ask(inventory, "a/x", "node:n2", 22).allowed
    worker = _ask(inventory, "a/x", "198.19.0.2", 22)  # known only from the Node object
    assert worker.allowed
    assert worker.egress is not None
    assert worker.egress.unevaluated == ()
    assert _ask(inventory, "a/x", "node:n3", 22).allowed  # no Node object: not evaluated
