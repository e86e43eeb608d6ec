"""The one random-cluster generator reaches every feature its docstring promises.

Why this test exists: "engine == reference on random clusters" is only as strong as the
clusters. Among a few hundred clusters drawn by ``inventories()`` (derandomized, so the run is
the same every time) each feature below must appear at least once, so narrowing the generator
by accident fails here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from hypothesis import HealthCheck, Phase, given, settings
from tests.property.strategies import FIXED_BLOCKS, NAMES, inventories

from kubefence.api import (
    METADATA_NAME_LABEL,
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    NetworkPolicy,
    Operator,
    Peer,
    PolicyPort,
    PolicyType,
    Protocol,
    Rule,
    Tier,
)


def _rules(inv: Inventory) -> Iterator[tuple[NetworkPolicy, Rule]]:
    for p in inv.policies:
        for rule in (*p.ingress, *p.egress):
            yield p, rule


def _peers(inv: Inventory) -> Iterator[Peer]:
    for _, rule in _rules(inv):
        yield from rule.peers


def _ports(inv: Inventory) -> Iterator[PolicyPort]:
    for _, rule in _rules(inv):
        yield from rule.ports


def _operators(inv: Inventory) -> set[Operator]:
    selectors = [p.pod_selector for p in inv.policies]
    selectors += [s for peer in _peers(inv) for s in (peer.pod_selector, peer.namespace_selector)]
    return {r.operator for s in selectors if s is not None for r in s.match_expressions}


EXAMPLES = 150  # every feature appeared by the 78th cluster when this was written
FEATURES: dict[str, Callable[[Inventory], bool]] = {
    "no pods": lambda inv: not inv.pods,
    "pod in an undeclared namespace (S16)": lambda inv: any(
        p.namespace not in inv.namespace_by_name for p in inv.pods
    ),
    "declared namespace without pods": lambda inv: any(
        all(p.namespace != n.name for p in inv.pods) for n in inv.namespaces
    ),
    "hostNetwork pod (S23)": lambda inv: any(p.host_network for p in inv.pods),
    "pods on two nodes (S24)": lambda inv: len({p.node for p in inv.pods if p.node}) == 2,
    "pod without address (S15)": lambda inv: any(not p.ips for p in inv.pods),
    "dual-stack pod": lambda inv: any(len(p.ips) == 2 for p in inv.pods),
    "IPv6-only pod": lambda inv: any(len(p.ips) == 1 and p.ips[0].version == 6 for p in inv.pods),
    "unnamed container port": lambda inv: any(c.name is None for p in inv.pods for c in p.ports),
    "SCTP container port": lambda inv: any(
        c.protocol is Protocol.SCTP for p in inv.pods for c in p.ports
    ),
    "one port name on two numbers (S21)": lambda inv: (
        len({c.port for p in inv.pods for c in p.ports if c.name == "http"}) == 2
    ),
    "defaulted Ingress+Egress (S02)": lambda inv: any(
        p.policy_types == (PolicyType.INGRESS, PolicyType.EGRESS) and p.egress for p in inv.policies
    ),
    "Egress-only policy": lambda inv: any(
        p.policy_types == (PolicyType.EGRESS,) for p in inv.policies
    ),
    "isolating direction without rules (S08)": lambda inv: any(
        p.policy_types == (PolicyType.INGRESS,) and not p.ingress for p in inv.policies
    ),
    "rule without peers and ports (S09)": lambda inv: any(
        not r.peers and not r.ports for _, r in _rules(inv)
    ),
    "podSelector-only peer (S11)": lambda inv: any(
        p.pod_selector is not None and p.namespace_selector is None and p.ip_block is None
        for p in _peers(inv)
    ),
    "namespaceSelector-only peer (S12)": lambda inv: any(
        p.namespace_selector is not None and p.pod_selector is None for p in _peers(inv)
    ),
    "AND peer (S13)": lambda inv: any(
        p.namespace_selector is not None and p.pod_selector is not None for p in _peers(inv)
    ),
    "namespace selected by metadata.name (S16)": lambda inv: any(
        p.namespace_selector is not None
        and (
            METADATA_NAME_LABEL in p.namespace_selector.match_labels
            or any(r.key == METADATA_NAME_LABEL for r in p.namespace_selector.match_expressions)
        )
        for p in _peers(inv)
    ),
    "selector operator IN (S17)": lambda inv: Operator.IN in _operators(inv),
    "selector operator NOT_IN (S17)": lambda inv: Operator.NOT_IN in _operators(inv),
    "selector operator EXISTS (S17)": lambda inv: Operator.EXISTS in _operators(inv),
    "selector operator DOES_NOT_EXIST (S17)": lambda inv: (
        Operator.DOES_NOT_EXIST in _operators(inv)
    ),
    "ipBlock with except (S15)": lambda inv: any(
        p.ip_block is not None and p.ip_block.except_ for p in _peers(inv)
    ),
    "IPv6 ipBlock": lambda inv: any(
        p.ip_block is not None and p.ip_block.cidr.version == 6 for p in _peers(inv)
    ),
    "fixed ipBlock matching no pod": lambda inv: any(
        p.ip_block == FIXED_BLOCKS[2] for p in _peers(inv)
    ),
    "whole address space minus a range": lambda inv: any(
        p.ip_block is not None and p.ip_block.cidr == ipaddress.ip_network("0.0.0.0/0")
        for p in _peers(inv)
    ),
    "protocol-only port entry (S19)": lambda inv: any(p.port is None for p in _ports(inv)),
    "wide endPort range (S20)": lambda inv: any(
        p.end_port is not None and isinstance(p.port, int) and p.end_port - p.port > 600
        for p in _ports(inv)
    ),
    "undeclared port name (S21)": lambda inv: any(p.port == NAMES[-1] for p in _ports(inv)),
    "SCTP port entry (S18)": lambda inv: any(p.protocol is Protocol.SCTP for p in _ports(inv)),
}


def test_the_generator_reaches_every_feature() -> None:
    seen: set[str] = set()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(inventories())
    def collect(inventory: Inventory) -> None:
        seen.update(name for name, holds in FEATURES.items() if holds(inventory))

    collect()
    assert sorted(set(FEATURES) - seen) == []


def _tier_rules(inv: Inventory) -> Iterator[tuple[ClusterNetworkPolicy, AdminRule]]:
    for p in inv.admin_policies:
        for rule in (*p.ingress, *p.egress):
            yield p, rule


def _tier_peers(inv: Inventory) -> Iterator[AdminPeer]:
    for _, rule in _tier_rules(inv):
        yield from rule.peers


def _tied(inv: Inventory) -> bool:
    keys = [(p.tier, p.priority) for p in inv.admin_policies]
    return len(keys) != len(set(keys))


def _networks_hold_a_pod(inv: Inventory) -> bool:
    addresses = [ip for p in inv.pods for ip in p.ips]
    return any(
        ip in net
        for peer in _tier_peers(inv)
        for net in peer.networks
        for ip in addresses
        if ip.version == net.version
    )


TIER_EXAMPLES = 150
TIER_FEATURES: dict[str, Callable[[Inventory], bool]] = {
    "Admin ClusterNetworkPolicy": lambda inv: any(
        p.kind == "ClusterNetworkPolicy" and p.tier is Tier.ADMIN for p in inv.admin_policies
    ),
    "Baseline ClusterNetworkPolicy": lambda inv: any(
        p.kind == "ClusterNetworkPolicy" and p.tier is Tier.BASELINE for p in inv.admin_policies
    ),
    "AdminNetworkPolicy": lambda inv: any(
        p.kind == "AdminNetworkPolicy" for p in inv.admin_policies
    ),
    "BaselineAdminNetworkPolicy": lambda inv: any(
        p.kind == "BaselineAdminNetworkPolicy" for p in inv.admin_policies
    ),
    "equal priorities in a tier (T02)": _tied,
    "pods subject (T04)": lambda inv: any(p.pod_selector for p in inv.admin_policies),
    "Pass action": lambda inv: any(r.action is AdminAction.PASS for _, r in _tier_rules(inv)),
    "Accept action": lambda inv: any(r.action is AdminAction.ACCEPT for _, r in _tier_rules(inv)),
    "Deny action": lambda inv: any(r.action is AdminAction.DENY for _, r in _tier_rules(inv)),
    "every port (T06)": lambda inv: any(not r.ports for _, r in _tier_rules(inv)),
    "named port (T06)": lambda inv: any(
        e.name is not None for _, r in _tier_rules(inv) for e in r.ports
    ),
    "port range (T06)": lambda inv: any(
        e.low is not None and e.high is not None and e.high > e.low
        for _, r in _tier_rules(inv)
        for e in r.ports
    ),
    **{
        f"{kind.value} peer (T05)": (
            lambda k: lambda inv: any(p.kind is k for p in _tier_peers(inv))
        )(kind)
        for kind in AdminPeerKind
    },
    "networks holding a pod IP (T05)": _networks_hold_a_pod,
    "Node object (T05)": lambda inv: bool(inv.nodes),
    "hostNetwork pod on a node without a Node object": lambda inv: any(
        p.host_network and p.node is not None and p.node not in {n.name for n in inv.nodes}
        for p in inv.pods
    ),
}


def test_the_generator_reaches_every_tier_feature() -> None:
    seen: set[str] = set()

    @settings(
        max_examples=TIER_EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(inventories(max_cluster_policies=4))
    def collect(inventory: Inventory) -> None:
        seen.update(name for name, holds in TIER_FEATURES.items() if holds(inventory))

    collect()
    assert sorted(set(TIER_FEATURES) - seen) == []
