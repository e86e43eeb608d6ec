"""Tier peers as addresses: what a ClusterNetworkPolicy peer matches among the sandbox's addresses.

Why this module exists: ``_tiers`` writes tier rules over address sets; this is the one place
that says which addresses a ``namespaces``, ``pods``, ``networks``, ``nodes`` or ``domainNames``
peer stands for, mirroring ``semantics.admin_peer_matches`` (T05) for every address the sandbox
knows, cached per peer (equal peers of different rules and policies are computed once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubefence.api import (
    AdminPeer,
    AdminPeerKind,
    Inventory,
    IPAddress,
    LabelSelector,
    Pod,
    Protocol,
)
from kubefence.dataplane.nft._intervals import Interval, address_interval, merge, network_interval
from kubefence.dataplane.nft._model import VERSIONS
from kubefence.dataplane.nft._peers import Context, Ranges
from kubefence.semantics import resolve_named_port, selector_matches

__all__ = ["NodeFacts", "TierPeers"]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the ``nodes`` peer reads of an inventory, as ``semantics.PolicyIndex`` holds it
    (same rules: Node objects' labels and addresses, node IPs learnt from hostNetwork pods,
    first by ``ns/name``; Services' cluster IPs), without compiling every NetworkPolicy as
    ``index_for`` does for a new inventory: a sandbox re-plans a new inventory every apply."""

    node_labels: Mapping[str, Mapping[str, str]]
    node_by_address: Mapping[IPAddress, str]
    node_by_ip: Mapping[IPAddress, str]
    service_ips: frozenset[IPAddress]

    @classmethod
    def of(cls, inventory: Inventory) -> NodeFacts:
        node_ips: dict[str, list[IPAddress]] = {}
        for pod in sorted(
            (p for p in inventory.pods if p.host_network and p.node is not None),
            key=lambda p: (p.namespace, p.name),
        ):
            assert pod.node is not None
            known = node_ips.setdefault(pod.node, [])
            known.extend(ip for ip in pod.ips if ip not in known)
        node_by_ip: dict[IPAddress, str] = {}
        for node, ips in sorted(node_ips.items()):
            for ip in ips:
                node_by_ip.setdefault(ip, node)
        return cls(
            node_labels={n.name: n.labels for n in inventory.nodes},
            node_by_address={ip: n.name for n in reversed(inventory.nodes) for ip in n.addresses},
            node_by_ip=node_by_ip,
            service_ips=frozenset(ip for s in inventory.services for ip in s.cluster_ips),
        )

    @property
    def key(self) -> tuple[object, ...]:
        """Equal keys, equal answers (what ``TierMemo`` compares between calls)."""
        return (
            tuple(self.node_labels.items()),
            tuple(self.node_by_address.items()),
            tuple(self.node_by_ip.items()),
            tuple(sorted(self.service_ips, key=lambda a: (a.version, int(a)))),
        )


class TierPeers:
    """Address ranges of tier peers over the sandbox's addresses, cached per peer."""

    def __init__(self, context: Context, facts: NodeFacts) -> None:
        self.context = context
        self.facts = facts
        self._ranges: dict[AdminPeer, Ranges] = {}
        self._pods: dict[AdminPeer, tuple[Pod, ...]] = {}
        self._namespaces: dict[LabelSelector, tuple[str, ...]] = {}
        self._owned = {a for addresses in context.addresses.values() for a in addresses}

    def pods(self, peer: AdminPeer) -> tuple[Pod, ...]:
        """Pods a ``namespaces``/``pods`` peer matches: never hostNetwork (T05)."""
        found = self._pods.get(peer)
        if found is None:
            selector = peer.namespace_selector
            assert selector is not None
            namespaces = self._namespaces.get(selector)
            if namespaces is None:
                labels = self.context.labels
                namespaces = tuple(
                    ns for ns in self.context.shapes if selector_matches(selector, labels[ns])
                )
                self._namespaces[selector] = namespaces
            pods: list[Pod] = []
            for namespace in namespaces:
                for group in self.context.shapes[namespace]:  # same labels and hostNetwork
                    first = group[0]
                    if not first.host_network and (
                        peer.pod_selector is None
                        or selector_matches(peer.pod_selector, first.labels)
                    ):
                        pods.extend(group)
            found = tuple(pods)
            self._pods[peer] = found
        return found

    def _node_matches(self, peer: AdminPeer, node: str | None) -> bool:
        """T05 ``nodes``: by the Node object's labels; without one only an empty selector is
        evaluable (anything else is "cannot tell", which never matches)."""
        assert peer.node_selector is not None
        if node is None:
            return False
        labels = self.facts.node_labels.get(node)
        if labels is not None:
            return selector_matches(peer.node_selector, labels)
        return peer.node_selector.is_empty

    def _node_addresses(self, peer: AdminPeer) -> list[tuple[int, Interval]]:
        found: list[tuple[int, Interval]] = []
        settings = self.context.settings
        for pod in self.context.addressed:
            # A hostNetwork pod stands for its node (S23), unless the setting makes it a pod.
            if (
                pod.host_network
                and not settings.host_network_selectable
                and self._node_matches(peer, pod.node)
            ):
                found.extend(
                    (a.version, address_interval(a)) for a in self.context.addresses[pod.key]
                )
        for address, node in self.facts.node_by_address.items():
            if address in self._owned or address in self.facts.service_ips:
                continue  # a pod's or a Service's address is that, not a node's
            name = self.facts.node_by_ip.get(address, node)
            if self._node_matches(peer, name):
                found.append((address.version, address_interval(address)))
        return found

    def ranges(self, peer: AdminPeer) -> Ranges:
        cached = self._ranges.get(peer)
        if cached is not None:
            return cached
        found: dict[int, list[Interval]] = {v: [] for v in VERSIONS}
        if peer.kind in (AdminPeerKind.NAMESPACES, AdminPeerKind.PODS):
            for pod in self.pods(peer):
                for a in self.context.addresses[pod.key]:
                    found[a.version].append(address_interval(a))
        elif peer.kind is AdminPeerKind.NETWORKS:
            for network in peer.networks:  # pod addresses included (T05)
                found[network.version].append(network_interval(network))
        elif peer.kind is AdminPeerKind.NODES:
            for version, interval in self._node_addresses(peer):
                found[version].append(interval)
        # domainNames: cannot be resolved offline, matches nothing (T05, T07).
        result = {v: merge(ivs) for v, ivs in found.items() if ivs}
        self._ranges[peer] = result
        return result

    def named(self, peer: AdminPeer, name: str, protocol: Protocol) -> dict[int, Ranges]:
        """Egress named port (T06): resolved number -> addresses of the peer's pods that
        declare ``name`` for ``protocol`` with that number. Only pods have ports to resolve
        (the CRD forbids named ports next to networks/nodes/domainNames peers)."""
        if peer.kind not in (AdminPeerKind.NAMESPACES, AdminPeerKind.PODS):
            return {}
        by_value: dict[int, dict[int, list[Interval]]] = {}
        for pod in self.pods(peer):
            value = resolve_named_port(name, protocol, pod.ports)
            if value is not None:
                found = by_value.setdefault(value, {v: [] for v in VERSIONS})
                for a in self.context.addresses[pod.key]:
                    found[a.version].append(address_interval(a))
        return {
            value: {v: merge(ivs) for v, ivs in found.items() if ivs}
            for value, found in sorted(by_value.items())
        }
