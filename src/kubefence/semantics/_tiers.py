"""The admin tiers: matching ClusterNetworkPolicy rules, and the first match of a tier.

Why this module exists: it is the one definition of how tiered policies (ClusterNetworkPolicy
v1alpha2, AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1) match, kept apart from the
NetworkPolicy algebra because their logic differs: ordered rules with actions instead of a union
of allows, and no implicit isolation. ``decide`` (``_decide``) combines it with NetworkPolicy;
the per-direction order is documented in ``docs/admin-tiers.md``:

    Admin (first matching rule of the first policy in order decides; Pass leaves the tier)
    -> NetworkPolicy (decides if the pod is isolated for the direction)
    -> Baseline (first matching rule decides; Pass leaves the tier) -> allowed.

Matching (facts of the upstream API):

- subjects and ``namespaces``/``pods`` peers select pods by namespace labels AND pod labels;
  hostNetwork pods are never subjects nor pod peers (whatever ``Settings`` say);
- ``networks`` match any address in a CIDR, pods' IPs included;
- ``nodes`` match nodes (``node:NAME``, node IPs, hostNetwork pods) by the labels of the
  input's Node objects (and an address in a Node's ``status.addresses`` is that node); a node
  without a Node object has no known labels: only an empty selector is evaluable for it,
  any other is ``None``;
- ``domainNames`` cannot be resolved offline: ``None`` towards an external address, no match
  towards pods, nodes and Services;
- no ``protocols`` matches every port; a number/range matches its protocol; a named port
  matches when the destination pod declares that name for the connection's protocol and port.

``None`` ("cannot tell") is treated as "does not match" and reported as ``Unevaluated``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kubefence.api import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    ContainerPort,
    Inventory,
    IPAddress,
    Pod,
    Protocol,
    rule_path,
)
from kubefence.errors import InputError
from kubefence.semantics._algebra import ANY_INDEX, Direction, resolve_named_port
from kubefence.semantics._decision import EndpointKind, SideDecision, TierRule, Unevaluated
from kubefence.semantics._endpoints import ResolvedEndpoint, SideQuery
from kubefence.semantics._index import PolicyIndex
from kubefence.semantics._selectors import selector_matches

__all__ = [
    "TierMatch",
    "admin_peer_matches",
    "admin_port_matches",
    "admin_selects",
    "first_match",
    "require_no_tiers",
    "tiered_side",
]


def admin_selects(
    policy: ClusterNetworkPolicy, pod: Pod, namespace_labels: Mapping[str, str]
) -> bool:
    """Is ``pod`` a subject of ``policy``? Never a hostNetwork pod."""
    if pod.host_network:
        return False
    if not selector_matches(policy.namespace_selector, namespace_labels):
        return False
    return policy.pod_selector is None or selector_matches(policy.pod_selector, pod.labels)


def _addresses(other: ResolvedEndpoint) -> tuple[IPAddress, ...]:
    if other.public.address is not None:
        return (other.public.address,)
    if other.pod is not None:
        return other.pod.ips
    return other.addresses


def admin_peer_matches(
    peer: AdminPeer,
    other: ResolvedEndpoint,
    namespace_labels: Mapping[str, str] | None,
    *,
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
    node_by_address: Mapping[IPAddress, str] | None = None,
) -> bool | None:
    """Does ``peer`` match the other endpoint? None when it cannot be told offline.
    ``namespace_labels`` are those of the other endpoint's pod's namespace (None: not a pod);
    ``node_labels``/``node_by_address`` come from the input's Node objects."""
    kind = peer.kind
    if kind in (AdminPeerKind.NAMESPACES, AdminPeerKind.PODS):
        pod = other.pod
        if pod is None or other.kind is not EndpointKind.POD or pod.host_network:
            return False
        assert peer.namespace_selector is not None
        assert namespace_labels is not None
        if not selector_matches(peer.namespace_selector, namespace_labels):
            return False
        return peer.pod_selector is None or selector_matches(peer.pod_selector, pod.labels)
    if kind is AdminPeerKind.NETWORKS:
        return any(ip in net for ip in _addresses(other) for net in peer.networks)
    if kind is AdminPeerKind.NODES:
        assert peer.node_selector is not None
        node = other.public.node
        if other.kind is EndpointKind.EXTERNAL and other.public.address is not None:
            node = (node_by_address or {}).get(other.public.address)
        elif other.kind not in (EndpointKind.NODE, EndpointKind.HOST_NETWORK_POD):
            return False
        labels = (node_labels or {}).get(node) if node is not None else None
        if labels is not None:
            return selector_matches(peer.node_selector, labels)
        if node is None:
            return False  # an address of no known node
        return True if peer.node_selector.is_empty else None
    return None if other.kind is EndpointKind.EXTERNAL else False  # domainNames


def admin_port_matches(
    entry: AdminPort,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
) -> bool:
    """Does one ``protocols``/``ports`` entry match the connection? A named port resolves only
    against a pod destination's declared ports (``destination_ports``)."""
    if entry.name is not None:
        if destination_ports is None:
            return False
        return resolve_named_port(entry.name, protocol, destination_ports) == port
    if entry.protocol is not protocol or entry.low is None or entry.high is None:
        return False
    return entry.low <= port <= entry.high


@dataclass(frozen=True, slots=True)
class TierMatch:
    """The first rule of a tier that matched (None: none did) and the peers skipped on the
    way because they cannot be evaluated."""

    rule: TierRule | None
    unevaluated: tuple[Unevaluated, ...] = ()

    @property
    def decides(self) -> bool:
        return self.rule is not None and self.rule.action != AdminAction.PASS.value


def _tier_rule(
    policy: ClusterNetworkPolicy, direction: Direction, rule: AdminRule, peer: int, port: int
) -> TierRule:
    origin = policy.origin
    return TierRule(
        tier=policy.tier.value,
        kind=policy.kind,
        policy=policy.name,
        priority=policy.priority,
        rule=rule.index,
        rule_name=rule.name,
        action=rule.action.value,
        peer=peer,
        port=port,
        file=origin.file if origin else None,
        line=policy.line_of(rule_path(direction.value, rule.index)),
    )


def _why(peer: AdminPeer) -> str:
    if peer.kind is AdminPeerKind.DOMAIN_NAMES:
        return "domain names cannot be resolved offline"
    return "no Node object gives this node's labels, so only an empty node selector is evaluable"


def first_match(
    policies: Sequence[ClusterNetworkPolicy],
    direction: Direction,
    subject: Pod,
    subject_namespace_labels: Mapping[str, str],
    other: ResolvedEndpoint,
    other_namespace_labels: Mapping[str, str] | None,
    *,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
    node_labels: Mapping[str, Mapping[str, str]] | None = None,
    node_by_address: Mapping[IPAddress, str] | None = None,
) -> TierMatch:
    """The first rule, in ``policies`` order then rule order, whose peer AND port match."""
    skipped: list[Unevaluated] = []
    for policy in policies:
        if not admin_selects(policy, subject, subject_namespace_labels):
            continue
        rules = policy.ingress if direction is Direction.INGRESS else policy.egress
        for rule in rules:
            entry = (
                ANY_INDEX
                if not rule.ports
                else next(
                    (
                        p.index
                        for p in rule.ports
                        if admin_port_matches(p, port, protocol, destination_ports)
                    ),
                    None,
                )
            )
            if entry is None:
                continue
            unknown: list[AdminPeer] = []
            for peer in rule.peers:
                verdict = admin_peer_matches(
                    peer,
                    other,
                    other_namespace_labels,
                    node_labels=node_labels,
                    node_by_address=node_by_address,
                )
                if verdict:
                    return TierMatch(
                        _tier_rule(policy, direction, rule, peer.index, entry), tuple(skipped)
                    )
                if verdict is None:
                    unknown.append(peer)
            skipped.extend(
                Unevaluated(
                    tier=policy.tier.value,
                    kind=policy.kind,
                    policy=policy.name,
                    rule=rule.index,
                    peer=peer.index,
                    peer_kind=peer.kind.value,
                    why=_why(peer),
                )
                for peer in unknown
            )
    return TierMatch(None, tuple(skipped))


def tiered_side(
    index: PolicyIndex, query: SideQuery, *, decide_np: Callable[[], SideDecision]
) -> SideDecision:
    """One side through the tiers: Admin, then NetworkPolicy (``decide_np``), then Baseline,
    then allowed. Only pods are subjects; other endpoints are decided by ``decide_np`` alone
    (which finds them not applicable)."""
    direction, subject, other = query.direction, query.subject, query.other
    pod = subject.pod
    if subject.kind is not EndpointKind.POD or pod is None:
        return decide_np()
    subject_labels = index.labels_of_namespace(pod.namespace)
    other_labels = index.labels_of_namespace(other.pod.namespace) if other.pod is not None else None

    def match(policies: tuple[ClusterNetworkPolicy, ...]) -> TierMatch:
        return first_match(
            policies,
            direction,
            pod,
            subject_labels,
            other,
            other_labels,
            port=query.port,
            protocol=query.protocol,
            destination_ports=query.destination_ports,
            node_labels=index.node_labels,
            node_by_address=index.node_by_address,
        )

    admin = match(index.admin_tier)
    unevaluated = admin.unevaluated
    if admin.rule is not None and admin.decides:
        return SideDecision(
            direction,
            subject.public.name,
            applicable=True,
            isolated=False,
            allowed=admin.rule.action == AdminAction.ACCEPT.value,
            tier="Admin",
            tier_rule=admin.rule,
            unevaluated=unevaluated,
        )
    passed: tuple[TierRule, ...] = () if admin.rule is None else (admin.rule,)
    np_side = decide_np()
    if np_side.isolated:
        return dataclasses.replace(
            np_side, tier="NetworkPolicy", passed=passed, unevaluated=unevaluated
        )
    baseline = match(index.baseline_tier)
    unevaluated += baseline.unevaluated
    if baseline.rule is not None and baseline.decides:
        return dataclasses.replace(
            np_side,
            allowed=baseline.rule.action == AdminAction.ACCEPT.value,
            tier="Baseline",
            tier_rule=baseline.rule,
            passed=passed,
            unevaluated=unevaluated,
        )
    if baseline.rule is not None:
        passed += (baseline.rule,)
    return dataclasses.replace(np_side, tier="Default", passed=passed, unevaluated=unevaluated)


def require_no_tiers(inventory: Inventory, *, by: str) -> None:
    """Refuse (``InputError``, exit 2) to analyse tiered policies with an execution that does
    not evaluate them yet (the engine, the data plane): ignoring them would be silently wrong."""
    found = inventory.admin_policies
    if not found:
        return
    kinds = sorted({p.kind for p in found})
    names = ", ".join(p.name for p in found[:5]) + (", ..." if len(found) > 5 else "")
    raise InputError(
        f"{by} does not evaluate admin tiers yet, and the input has {len(found)} "
        f"{'/'.join(kinds)} object{'s' if len(found) != 1 else ''} ({names}); "
        "'kubefence explain' evaluates them, or remove them from the input"
    )
