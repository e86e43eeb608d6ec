"""Which pods can change a node's table: its own, and those its policies' peers can match.

Why this module exists: the planner matches every peer against every pod it is given, and a
node's table reads only some of them: its own pods (dispatched), the pods of namespaces a pod
peer of its policies can select (S11-S14: a peer's namespace part is decided per namespace),
and, where an egress rule names a port, the pods whose addresses the rule's ipBlocks cover or,
for a rule without peers, every pod (S21: the name is resolved at each destination). Handing
the planner only those keeps a change to any other pod from touching this node at all, and
makes each plan cheaper. The answer is a superset of what the table reads, never less; when
the settings make pods matter elsewhere (ipBlocks that exclude pods, selectable hostNetwork
pods) every pod is kept. ``tests/unit/agent/test_relevant.py`` holds the plans to the plans
over every pod on random clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from kubefence.api import IPNetwork, LabelSelector, NetworkPolicy, Pod, selector_matches
from kubefence.semantics import Settings

__all__ = ["relevant_pods"]


def relevant_pods(
    pods: Sequence[Pod],
    policies: Sequence[NetworkPolicy],
    *,
    local: Collection[str],
    namespace_labels: Callable[[str], Mapping[str, str]],
    settings: Settings,
) -> tuple[Pod, ...]:
    """The pods of ``pods`` a table dispatching ``local`` and planned from ``policies`` reads."""
    if not settings.ipblock_matches_pods or settings.host_network_selectable:
        return tuple(pods)
    namespaces: set[str] = set()
    selectors: set[LabelSelector] = set()
    blocks: list[IPNetwork] = []
    for policy in policies:
        for egress, rules in ((False, policy.ingress), (True, policy.egress)):
            for rule in rules:
                named = egress and any(isinstance(p.port, str) for p in rule.ports)
                if not rule.peers:
                    if named:
                        return tuple(pods)  # the name resolves at every destination
                    continue
                for peer in rule.peers:
                    if peer.ip_block is not None:
                        if named:
                            blocks.append(peer.ip_block.cidr)  # a superset of the block
                    elif peer.namespace_selector is None:
                        namespaces.add(policy.namespace)
                    else:
                        selectors.add(peer.namespace_selector)
    wanted: dict[str, bool] = {}

    def namespace_wanted(name: str) -> bool:
        found = wanted.get(name)
        if found is None:
            labels = namespace_labels(name)
            found = name in namespaces or any(selector_matches(s, labels) for s in selectors)
            wanted[name] = found
        return found

    return tuple(
        pod
        for pod in pods
        if pod.key in local
        or namespace_wanted(pod.namespace)
        or any(ip in block for block in blocks for ip in pod.ips if ip.version == block.version)
    )
