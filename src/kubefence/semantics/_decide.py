"""The reference evaluator: ``decide`` one connection and say why, on the compiled algebra.

Why this module exists: it is the definition every other execution (engine, data plane) is held
to. It only combines the primitives of ``_algebra`` (``selects_pod``, ``peer_matches_pod``,
``peer_matches_ip``, ``port_matches``, ``resolve_named_port``); it never matches on its own.
The explanation of a miss (which label was missing, which port entries exist) is computed only
after the primitives said "no", so the explanation can never change the verdict.

Order of the checks for one connection ``src -> dst`` on ``port``/``protocol``:

1. a Service destination is translated to its backend pods first and each backend is decided
   on the service's target port (S22); see ``Decision`` for how they combine;
2. a pod to itself: allowed when ``settings.self_traffic_allowed`` (S07), whatever the port;
3. a port name is resolved against the destination pod's ports by name and protocol (S21); a
   name it does not declare, or any name towards a non-pod, is ``Reason.UNRESOLVED_PORT``;
4. from a node (``node:NAME``, a node IP, a hostNetwork pod) to a pod on that same node:
   allowed when ``settings.allow_from_node`` (S24);
5. otherwise egress at the source AND ingress at the destination (S05), each side isolated iff
   a policy of its type selects the pod (S01-S03) and then allowed iff some rule of some such
   policy matches peer and port (S04, S08-S21). Sides that are not selectable pods (external
   addresses, nodes, hostNetwork pods, S23) impose nothing. With tiered policies
   (ClusterNetworkPolicy), each side is Admin tier, then that, then Baseline tier (``_tiers``).

Address families: when either endpoint is given as an address, pods named ``ns/pod`` on the
other side are reached at their first IP of that family; otherwise a named pod matches an
ipBlock when any of its IPs does (the algebra's rule).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from kubefence.api import (
    ContainerPort,
    Inventory,
    IPAddress,
    LabelSelector,
    Operator,
    Pod,
    Protocol,
    Service,
    ServicePort,
    rule_path,
)
from kubefence.errors import InputError
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
    Decision,
    EndpointKind,
    MissReason,
    PeerMiss,
    PolicyMiss,
    PolicyRef,
    PortEntry,
    Reason,
    RuleMiss,
    SideDecision,
    Unmet,
)
from kubefence.semantics._endpoints import ResolvedEndpoint, pod_endpoint, resolve_endpoint
from kubefence.semantics._index import PolicyIndex, index_for
from kubefence.semantics._selectors import requirement_holds, selector_matches
from kubefence.semantics._settings import DEFAULT_SETTINGS, Settings
from kubefence.semantics._tiers import tiered_side

__all__ = ["decide", "is_backend", "parse_port", "parse_protocol"]


def parse_protocol(value: Protocol | str) -> Protocol:
    """``TCP``/``UDP``/``SCTP`` in any case (S18); anything else is an ``InputError``."""
    if isinstance(value, Protocol):
        return value
    try:
        return Protocol(str(value).strip().upper())
    except ValueError:
        raise InputError(f"unknown protocol {value!r}: expected TCP, UDP or SCTP") from None


def parse_port(value: int | str) -> int | str:
    """A port number 1-65535 (digits in a string count as a number) or a port name."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise InputError("empty port: expected a number 1-65535 or a port name")
        if not text.isdigit():
            return text
        value = int(text)
    if isinstance(value, bool) or not 1 <= value <= 65535:
        raise InputError(f"port {value!r} out of range: expected 1-65535 or a port name")
    return value


def decide(
    inventory: Inventory,
    src: str,
    dst: str,
    *,
    port: int | str,
    protocol: Protocol | str = Protocol.TCP,
    settings: Settings = DEFAULT_SETTINGS,
) -> Decision:
    """May ``src`` open a connection to ``dst`` on ``port``/``protocol``? See the module docs.

    ``src``/``dst``: ``"ns/pod"``, an IPv4/IPv6 address, ``"node:NAME"``, or (destination only)
    ``"svc:ns/name"``. Raises ``InputError`` for an endpoint, port or protocol it cannot read.
    """
    index = index_for(inventory)
    proto = parse_protocol(protocol)
    wanted = parse_port(port)
    source = resolve_endpoint(index, src, settings=settings)
    destination = resolve_endpoint(index, dst, settings=settings)
    if source.kind is EndpointKind.SERVICE:
        raise InputError(f"a Service cannot open connections: name a pod instead of {src!r}")
    source, destination = _align_families(source, destination)
    if destination.kind is EndpointKind.SERVICE:
        return _decide_service(
            index, source, destination, wanted=wanted, protocol=proto, settings=settings
        )
    return _decide_pair(
        index, source, destination, wanted=wanted, protocol=proto, settings=settings
    )


# --- endpoints ---------------------------------------------------------------------------------


def _align_families(
    source: ResolvedEndpoint, destination: ResolvedEndpoint
) -> tuple[ResolvedEndpoint, ResolvedEndpoint]:
    families = {e.public.address.version for e in (source, destination) if e.public.address}
    if len(families) > 1:
        raise InputError("source and destination addresses are of different IP families")
    if not families:
        return source, destination
    (family,) = families
    return _with_family(source, family), _with_family(destination, family)


def _with_family(endpoint: ResolvedEndpoint, family: int) -> ResolvedEndpoint:
    if endpoint.pod is None or endpoint.public.address is not None:
        return endpoint
    address = next((ip for ip in endpoint.pod.ips if ip.version == family), None)
    if address is None:
        return endpoint
    public = dataclasses.replace(endpoint.public, address=address)
    return dataclasses.replace(endpoint, public=public, addresses=(address,))


def _destination_ports(destination: ResolvedEndpoint) -> Sequence[ContainerPort] | None:
    """The ports named policy ports resolve against: only a selectable pod's (S21, S23)."""
    if destination.kind is EndpointKind.POD and destination.pod is not None:
        return destination.pod.ports
    return None


# --- one pair ----------------------------------------------------------------------------------


def _decide_pair(
    index: PolicyIndex,
    source: ResolvedEndpoint,
    destination: ResolvedEndpoint,
    *,
    wanted: int | str,
    protocol: Protocol,
    settings: Settings,
) -> Decision:
    port_name = wanted if isinstance(wanted, str) else None
    number: int | None = wanted if isinstance(wanted, int) else None
    if port_name is not None and destination.pod is not None:
        number = resolve_named_port(port_name, protocol, destination.pod.ports)
    base = Decision(
        allowed=True,
        reason=Reason.SELF,
        source=source.public,
        destination=destination.public,
        protocol=protocol,
        port=number,
        port_name=port_name,
    )
    same_pod = source.pod is not None and destination.pod is not None
    if same_pod and source.public.name == destination.public.name and settings.self_traffic_allowed:
        return base  # S07
    if number is None:
        return dataclasses.replace(base, allowed=False, reason=Reason.UNRESOLVED_PORT)  # S21
    if (
        settings.allow_from_node
        and destination.kind is EndpointKind.POD
        and source.kind in (EndpointKind.NODE, EndpointKind.HOST_NETWORK_POD)
        and source.public.node is not None
        and source.public.node == destination.public.node
    ):
        return dataclasses.replace(base, reason=Reason.FROM_NODE)  # S24
    destination_ports = _destination_ports(destination)
    egress = _side(
        index,
        Direction.EGRESS,
        source,
        destination,
        port=number,
        protocol=protocol,
        destination_ports=destination_ports,
        settings=settings,
    )
    ingress = _side(
        index,
        Direction.INGRESS,
        destination,
        source,
        port=number,
        protocol=protocol,
        destination_ports=destination_ports,
        settings=settings,
    )
    host_network = EndpointKind.HOST_NETWORK_POD in (source.kind, destination.kind)
    return dataclasses.replace(
        base,
        allowed=egress.allowed and ingress.allowed,  # S05
        reason=Reason.HOST_NETWORK if host_network else Reason.POLICIES,
        egress=egress,
        ingress=ingress,
    )


# --- a Service destination (S22) ---------------------------------------------------------------


def _service_port(service: Service, wanted: int | str, protocol: Protocol) -> ServicePort | None:
    for sp in service.ports:
        if sp.protocol is protocol and (
            sp.name == wanted if isinstance(wanted, str) else sp.port == wanted
        ):
            return sp
    return None


def _decide_service(
    index: PolicyIndex,
    source: ResolvedEndpoint,
    destination: ResolvedEndpoint,
    *,
    wanted: int | str,
    protocol: Protocol,
    settings: Settings,
) -> Decision:
    """Translate like kube-proxy (service port -> targetPort, selector -> pods), then decide
    per backend: policies never see the ClusterIP or the service port (S22)."""
    assert destination.service is not None
    service = destination.service
    service_port = _service_port(service, wanted, protocol)
    base = Decision(
        allowed=False,
        reason=Reason.UNRESOLVED_PORT,
        source=source.public,
        destination=destination.public,
        protocol=protocol,
        port=service_port.port if service_port else (wanted if isinstance(wanted, int) else None),
        port_name=wanted if isinstance(wanted, str) else None,
    )
    if service_port is None:
        return base
    pods = index.pods_by_namespace.get(service.namespace, ())
    backends = tuple(p for p in pods if is_backend(service, p))
    if not backends:
        return dataclasses.replace(base, reason=Reason.NO_BACKENDS)
    decisions = []
    for pod in backends:
        backend = pod_endpoint(pod, None, settings)
        if destination.public.address is not None:
            backend = _with_family(backend, destination.public.address.version)
        decisions.append(
            _decide_pair(
                index,
                source,
                backend,
                wanted=service_port.target_port,
                protocol=protocol,
                settings=settings,
            )
        )
    return dataclasses.replace(
        base,
        allowed=all(d.allowed for d in decisions),
        reason=Reason.SERVICE,
        backends=tuple(decisions),
    )


def is_backend(service: Service, pod: Pod) -> bool:
    """Does ``service`` send its traffic to ``pod`` (S22)? Pods of its namespace that its
    selector matches; a Service without a selector (or with an empty one) has none."""
    if not service.selector or pod.namespace != service.namespace:
        return False
    return selector_matches(LabelSelector(match_labels=service.selector), pod.labels)


# --- one side ----------------------------------------------------------------------------------


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


def _side(
    index: PolicyIndex,
    direction: Direction,
    subject: ResolvedEndpoint,
    other: ResolvedEndpoint,
    *,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
    settings: Settings,
) -> SideDecision:
    """Egress of ``subject`` towards ``other``, or ingress of ``subject`` from ``other``:
    Admin tier, then NetworkPolicy, then Baseline tier, then allowed (``_tiers``). Without
    tiered policies in the inventory, NetworkPolicy alone, exactly as before tiers existed."""

    def decide_np() -> SideDecision:
        return _np_side(
            index,
            direction,
            subject,
            other,
            port=port,
            protocol=protocol,
            destination_ports=destination_ports,
            settings=settings,
        )

    if not index.has_tiers:
        return decide_np()
    return tiered_side(
        index,
        direction,
        subject,
        other,
        port=port,
        protocol=protocol,
        destination_ports=destination_ports,
        decide_np=decide_np,
    )


def _np_side(
    index: PolicyIndex,
    direction: Direction,
    subject: ResolvedEndpoint,
    other: ResolvedEndpoint,
    *,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
    settings: Settings,
) -> SideDecision:
    """The NetworkPolicy tier alone (S01-S21)."""
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
                _rule_miss(
                    index,
                    policy,
                    direction,
                    rule,
                    other,
                    port=port,
                    protocol=protocol,
                    destination_ports=destination_ports,
                    settings=settings,
                )
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
    direction: Direction,
    rule: CompiledRule,
    other: ResolvedEndpoint,
    *,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
    settings: Settings,
) -> RuleMiss:
    peer_misses = tuple(
        _peer_miss(index, peer, other, settings)
        for peer in rule.peers
        if not _peer_matches(index, peer, other, settings)
    )
    entries = tuple(_port_entry(m, port, protocol, destination_ports) for m in rule.ports)
    return RuleMiss(
        rule=rule.index,
        line=_rule_line(policy, direction, rule),
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
