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
    Inventory,
    NetworkPolicy,
    Operator,
    Peer,
    PolicyPort,
    PolicyType,
    Protocol,
    Rule,
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
