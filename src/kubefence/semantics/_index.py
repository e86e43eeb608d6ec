"""Policies compiled once per inventory, with the look-ups ``decide`` needs for every pair.

Why this module exists: deciding many pairs (a CLI session, a test suite, the scenario corpus)
must not recompile every policy per question. ``index_for(inventory)`` compiles once and caches
the result for as long as the inventory object lives (inventories are immutable).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubefence.api import (
    ClusterNetworkPolicy,
    Inventory,
    IPAddress,
    Pod,
    Service,
    Tier,
    labels_of_namespace,
)
from kubefence.semantics._algebra import CompiledPolicy, compile_policy

__all__ = ["PolicyIndex", "index_for"]


@dataclass(frozen=True, slots=True)
class PolicyIndex:
    """Compiled policies by namespace (in policy-name order) and address look-ups.

    ``pod_by_ip`` holds pods that are not hostNetwork (first by ``ns/name`` on duplicates);
    ``node_ips`` are learnt from hostNetwork pods, whose addresses are their node's (S23).
    """

    pod_by_key: Mapping[str, Pod]
    pods_by_namespace: Mapping[str, tuple[Pod, ...]]
    namespace_labels: Mapping[str, Mapping[str, str]]
    policies_by_namespace: Mapping[str, tuple[CompiledPolicy, ...]]
    pod_by_ip: Mapping[IPAddress, Pod]
    service_by_ip: Mapping[IPAddress, Service]
    service_by_key: Mapping[str, Service]
    node_ips: Mapping[str, tuple[IPAddress, ...]]
    node_by_ip: Mapping[IPAddress, str]
    admin_tier: tuple[ClusterNetworkPolicy, ...] = ()  # in evaluation order (``_tiers``)
    baseline_tier: tuple[ClusterNetworkPolicy, ...] = ()
    # From Node objects, read only by the tiers' ``nodes`` peer (``_tiers``):
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    node_by_address: Mapping[IPAddress, str] = field(default_factory=dict)

    @property
    def has_tiers(self) -> bool:
        return bool(self.admin_tier or self.baseline_tier)

    def policies_in(self, namespace: str) -> tuple[CompiledPolicy, ...]:
        return self.policies_by_namespace.get(namespace, ())

    def labels_of_namespace(self, name: str) -> Mapping[str, str]:
        """Labels of a namespace; an unknown one has only its metadata.name label (S16)."""
        return labels_of_namespace(self.namespace_labels, name)

    @classmethod
    def build(cls, inventory: Inventory) -> PolicyIndex:
        grouped: dict[str, list[CompiledPolicy]] = {}
        for policy in sorted(inventory.policies, key=lambda p: (p.namespace, p.name)):
            grouped.setdefault(policy.namespace, []).append(compile_policy(policy))
        pod_by_ip: dict[IPAddress, Pod] = {}
        node_ips: dict[str, list[IPAddress]] = {}
        for pod in sorted(inventory.pods, key=lambda p: (p.namespace, p.name)):
            for ip in pod.ips:
                if pod.host_network:
                    if pod.node is not None and ip not in node_ips.setdefault(pod.node, []):
                        node_ips[pod.node].append(ip)
                else:
                    pod_by_ip.setdefault(ip, pod)
        service_by_ip: dict[IPAddress, Service] = {}
        for service in sorted(inventory.services, key=lambda s: (s.namespace, s.name)):
            for ip in service.cluster_ips:
                service_by_ip.setdefault(ip, service)
        node_by_ip: dict[IPAddress, str] = {}
        for node, ips in sorted(node_ips.items()):
            for ip in ips:
                node_by_ip.setdefault(ip, node)
        return cls(
            pod_by_key=dict(inventory.pod_by_key),
            pods_by_namespace=dict(inventory.pods_by_namespace),
            namespace_labels=inventory.labels_by_namespace,
            policies_by_namespace={ns: tuple(ps) for ns, ps in grouped.items()},
            pod_by_ip=pod_by_ip,
            service_by_ip=service_by_ip,
            service_by_key={s.key: s for s in inventory.services},
            node_ips={node: tuple(ips) for node, ips in sorted(node_ips.items())},
            node_by_ip=node_by_ip,
            admin_tier=_in_order(inventory.admin_policies, Tier.ADMIN),
            baseline_tier=_in_order(inventory.admin_policies, Tier.BASELINE),
            node_labels={n.name: n.labels for n in inventory.nodes},
            node_by_address={ip: n.name for n in reversed(inventory.nodes) for ip in n.addresses},
        )


def _in_order(
    policies: tuple[ClusterNetworkPolicy, ...], tier: Tier
) -> tuple[ClusterNetworkPolicy, ...]:
    """The policies of ``tier`` in evaluation order (priority, then name: ``order``)."""
    return tuple(sorted((p for p in policies if p.tier is tier), key=lambda p: p.order))


# Keyed by ``id``: inventories are not hashable (they hold dicts). The index keeps no reference
# to its inventory, and the finalizer drops the entry when the inventory is collected, before
# its id can be reused.
_CACHE: dict[int, PolicyIndex] = {}


def index_for(inventory: Inventory) -> PolicyIndex:
    """The compiled index of ``inventory``, built on first use and dropped with the inventory."""
    key = id(inventory)
    index = _CACHE.get(key)
    if index is None:
        index = PolicyIndex.build(inventory)
        _CACHE[key] = index
        weakref.finalize(inventory, _CACHE.pop, key, None)
    return index
