"""One side of a connection under NetworkPolicy: the verdict, and the nearest misses.

Why this module exists: it is the NetworkPolicy tier of ``decide`` for one side (egress of the
source, ingress of the destination; S01-S21), kept apart from the top-level order of checks
(``_decide``) and from the admin tiers (``_tiers``). It only combines the primitives of
``_algebra``; the explanation of a miss (which label was missing, which port entries exist) is
computed only after the primitives said "no", so the explanation can never change the verdict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from kubefence.api import ContainerPort, IPAddress, LabelSelector, Operator, Protocol, rule_path
from kubefence.semantics._algebra import (
    CompiledPolicy,
    CompiledRule,
    Direction,
    PeerKind,
    PeerMatcher,
    PortMatcher,
    ip_in_block,
    isolating_policies,
    peer_matches_ip,
    peer_matches_pod,
    port_matches,
    resolve_named_port,
)
from kubefence.semantics._decision import (
    Admission,
    EndpointKind,
    MissReason,
    PeerMiss,
    PolicyMiss,
    PolicyRef,
    PortEntry,
    RuleMiss,
    SideDecision,
    Unmet,
)
from kubefence.semantics._endpoints import ResolvedEndpoint, SideQuery
from kubefence.semantics._index import PolicyIndex
from kubefence.semantics._selectors import requirement_holds
from kubefence.semantics._settings import Settings

__all__ = ["networkpolicy_side"]


def _peer_matches(
    index: PolicyIndex, peer: PeerMatcher, other: ResolvedEndpoint, settings: Settings
) -> bool:
    if other.pod is not None:
        return peer_matches_pod(
            peer,
            other.pod,
            index.labels_of_namespace(other.pod.namespace),
            address=other.public.address,
            settings=settings,
        )
    if peer.kind is PeerKind.ANY:
        return True
    return any(peer_matches_ip(peer, ip) for ip in other.addresses)


def _policy_ref(policy: CompiledPolicy) -> PolicyRef:
    origin = policy.source.origin
    return PolicyRef(
        namespace=policy.namespace,
        name=policy.name,
        file=origin.file if origin else None,
        line=origin.line if origin else None,
    )


def _rule_line(policy: CompiledPolicy, direction: Direction, rule: CompiledRule) -> int | None:
    return policy.source.line_of(rule_path(direction.value, rule.index))


def networkpolicy_side(index: PolicyIndex, query: SideQuery, *, settings: Settings) -> SideDecision:
    """The NetworkPolicy tier alone (S01-S21) for ``query``'s side: not applicable to an
    endpoint that is not a selectable pod; otherwise isolated iff a policy of the direction
    selects the pod, then allowed iff some rule of such a policy matches peer AND port."""
    direction, subject, other = query.direction, query.subject, query.other
    port, protocol, destination_ports = query.port, query.protocol, query.destination_ports
    name = subject.public.name
    pod = subject.pod
    if subject.kind is not EndpointKind.POD or pod is None:
        return SideDecision(direction, name, applicable=False, isolated=False, allowed=True)
    selecting = isolating_policies(
        index.policies_in(pod.namespace), pod, direction, settings=settings
    )  # S01, S03
    if not selecting:
        return SideDecision(direction, name, applicable=True, isolated=False, allowed=True)
    admitted: list[Admission] = []
    for policy in selecting:
        for rule in policy.rules(direction) or ():
            peer = next((p for p in rule.peers if _peer_matches(index, p, other, settings)), None)
            if peer is None:
                continue
            entry = next(
                (m for m in rule.ports if port_matches(m, port, protocol, destination_ports)), None
            )
            if entry is not None:  # S10: peer AND port within one rule
                admitted.append(
                    Admission(
                        policy=_policy_ref(policy),
                        rule=rule.index,
                        peer=peer.index,
                        port=entry.index,
                        line=_rule_line(policy, direction, rule),
                    )
                )
    refs = tuple(_policy_ref(p) for p in selecting)
    if admitted:  # S04
        return SideDecision(
            direction,
            name,
            applicable=True,
            isolated=True,
            allowed=True,
            isolating=refs,
            admitted_by=tuple(admitted),
        )
    misses = tuple(
        PolicyMiss(
            policy=_policy_ref(policy),
            rules=tuple(
                _rule_miss(index, policy, rule, query, settings=settings)
                for rule in policy.rules(direction) or ()
            ),
        )
        for policy in selecting
    )
    return SideDecision(
        direction,
        name,
        applicable=True,
        isolated=True,
        allowed=False,
        isolating=refs,
        misses=misses,
    )


# --- explaining a miss (only after the primitives said no) --------------------------------------


def _rule_miss(
    index: PolicyIndex,
    policy: CompiledPolicy,
    rule: CompiledRule,
    query: SideQuery,
    *,
    settings: Settings,
) -> RuleMiss:
    other = query.other
    peer_misses = tuple(
        _peer_miss(index, peer, other, settings)
        for peer in rule.peers
        if not _peer_matches(index, peer, other, settings)
    )
    entries = tuple(
        _port_entry(m, query.port, query.protocol, query.destination_ports) for m in rule.ports
    )
    return RuleMiss(
        rule=rule.index,
        line=_rule_line(policy, query.direction, rule),
        peer_matched=len(peer_misses) < len(rule.peers),
        port_matched=any(e.matched for e in entries),
        peers=peer_misses if len(peer_misses) == len(rule.peers) else (),
        ports=entries,
    )


def _port_entry(
    matcher: PortMatcher,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
) -> PortEntry:
    resolved = None
    if matcher.name is not None and matcher.protocol is not None and destination_ports is not None:
        resolved = resolve_named_port(matcher.name, matcher.protocol, destination_ports)
    return PortEntry(
        index=matcher.index,
        protocol=matcher.protocol,
        low=matcher.low,
        high=matcher.high,
        name=matcher.name,
        resolved=resolved,
        matched=port_matches(matcher, port, protocol, destination_ports),
    )


def _unmet(selector: LabelSelector | None, labels: Mapping[str, str]) -> tuple[Unmet, ...]:
    if selector is None:
        return ()
    found = [
        Unmet(key=k, operator=Operator.IN, values=(v,), actual=labels.get(k))
        for k, v in selector.match_labels.items()
        if labels.get(k) != v
    ]
    found.extend(
        Unmet(key=r.key, operator=r.operator, values=r.values, actual=labels.get(r.key))
        for r in selector.match_expressions
        if not requirement_holds(r, labels)
    )
    return tuple(found)


def _peer_miss(
    index: PolicyIndex, peer: PeerMatcher, other: ResolvedEndpoint, settings: Settings
) -> PeerMiss:
    subject = other.public.name
    pod = other.pod
    if peer.kind is PeerKind.IP_BLOCK:
        assert peer.ip_block is not None
        block = peer.ip_block
        miss = PeerMiss(
            index=peer.index,
            kind=peer.kind,
            reason=MissReason.OUTSIDE_CIDR,
            subject=subject,
            cidr=block.cidr,
        )
        if other.kind is EndpointKind.POD and not settings.ipblock_matches_pods:
            return dataclasses.replace(miss, reason=MissReason.IPBLOCK_IGNORES_PODS)
        addresses: tuple[IPAddress, ...]
        if other.public.address is not None:
            addresses = (other.public.address,)
        elif pod is not None:
            addresses = pod.ips
        else:
            addresses = other.addresses
        if not addresses:
            return dataclasses.replace(miss, reason=MissReason.NO_ADDRESS)
        same_family = [ip for ip in addresses if ip.version == block.cidr.version]
        for ip in same_family:
            if ip in block.cidr and not ip_in_block(ip, block):
                excluding = next(ex for ex in block.except_ if ip in ex)
                return dataclasses.replace(
                    miss, reason=MissReason.IN_EXCEPT, address=ip, except_=excluding
                )
        return dataclasses.replace(miss, address=(same_family or list(addresses))[0])
    miss = PeerMiss(index=peer.index, kind=peer.kind, reason=MissReason.NOT_A_POD, subject=subject)
    if pod is None:
        return miss
    if other.kind is EndpointKind.HOST_NETWORK_POD:
        return dataclasses.replace(miss, reason=MissReason.HOST_NETWORK)
    if peer.namespace is not None and pod.namespace != peer.namespace:
        return dataclasses.replace(
            miss,
            reason=MissReason.OTHER_NAMESPACE,
            expected_namespace=peer.namespace,
            namespace=pod.namespace,
        )
    return dataclasses.replace(
        miss,
        reason=MissReason.LABELS,
        namespace=pod.namespace,
        namespace_unmet=_unmet(peer.namespace_selector, index.labels_of_namespace(pod.namespace)),
        pod_unmet=_unmet(peer.pod_selector, pod.labels),
    )
