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

Where the parts live: endpoints and address families in ``_endpoints``, one side's
NetworkPolicy decision and its nearest misses in ``_networkpolicy_side``, the admin tiers in
``_tiers``; this module keeps the order of the checks above and Services (S22).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

from kubefence.api import (
    ContainerPort,
    Inventory,
    LabelSelector,
    Pod,
    Protocol,
    Service,
    ServicePort,
)
from kubefence.errors import InputError
from kubefence.semantics._algebra import Direction, resolve_named_port
from kubefence.semantics._decision import Decision, EndpointKind, Reason, SideDecision
from kubefence.semantics._endpoints import (
    ResolvedEndpoint,
    SideQuery,
    align_families,
    pod_endpoint,
    resolve_endpoint,
    with_family,
)
from kubefence.semantics._index import PolicyIndex, index_for
from kubefence.semantics._networkpolicy_side import networkpolicy_side
from kubefence.semantics._selectors import selector_matches
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
    source, destination = align_families(source, destination)
    connection = _Connection(source, destination, wanted, proto)
    if destination.kind is EndpointKind.SERVICE:
        return _decide_service(index, connection, settings=settings)
    return _decide_pair(index, connection, settings=settings)


# --- endpoints ---------------------------------------------------------------------------------


def _destination_ports(destination: ResolvedEndpoint) -> Sequence[ContainerPort] | None:
    """The ports named policy ports resolve against: only a selectable pod's (S21, S23)."""
    if destination.kind is EndpointKind.POD and destination.pod is not None:
        return destination.pod.ports
    return None


# --- one pair ----------------------------------------------------------------------------------


class _Connection(NamedTuple):
    """What ``decide`` was asked, endpoints resolved; ``wanted`` is a port number or name.
    (A NamedTuple for the cost of building one per decision, like ``SideQuery``.)"""

    source: ResolvedEndpoint
    destination: ResolvedEndpoint
    wanted: int | str
    protocol: Protocol

    def decision(self, *, allowed: bool, reason: Reason, port: int | None) -> Decision:
        """A ``Decision`` about this connection, before any side is decided."""
        return Decision(
            allowed=allowed,
            reason=reason,
            source=self.source.public,
            destination=self.destination.public,
            protocol=self.protocol,
            port=port,
            port_name=self.wanted if isinstance(self.wanted, str) else None,
        )


def _decide_pair(index: PolicyIndex, connection: _Connection, *, settings: Settings) -> Decision:
    source, destination = connection.source, connection.destination
    wanted, protocol = connection.wanted, connection.protocol
    number: int | None = wanted if isinstance(wanted, int) else None
    if isinstance(wanted, str) and destination.pod is not None:
        number = resolve_named_port(wanted, protocol, destination.pod.ports)
    base = connection.decision(allowed=True, reason=Reason.SELF, port=number)
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
        SideQuery(Direction.EGRESS, source, destination, number, protocol, destination_ports),
        settings=settings,
    )
    ingress = _side(
        index,
        SideQuery(Direction.INGRESS, destination, source, number, protocol, destination_ports),
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


def _decide_service(index: PolicyIndex, connection: _Connection, *, settings: Settings) -> Decision:
    """Translate like kube-proxy (service port -> targetPort, selector -> pods), then decide
    per backend: policies never see the ClusterIP or the service port (S22)."""
    destination, wanted = connection.destination, connection.wanted
    assert destination.service is not None
    service = destination.service
    service_port = _service_port(service, wanted, connection.protocol)
    base = connection.decision(
        allowed=False,
        reason=Reason.UNRESOLVED_PORT,
        port=service_port.port if service_port else (wanted if isinstance(wanted, int) else None),
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
            backend = with_family(backend, destination.public.address.version)
        translated = connection._replace(destination=backend, wanted=service_port.target_port)
        decisions.append(_decide_pair(index, translated, settings=settings))
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


def _side(index: PolicyIndex, query: SideQuery, *, settings: Settings) -> SideDecision:
    """Egress of the subject towards the other endpoint, or ingress of the subject from it:
    Admin tier, then NetworkPolicy, then Baseline tier, then allowed (``_tiers``). Without
    tiered policies in the inventory, NetworkPolicy alone, exactly as before tiers existed."""
    if not index.has_tiers:  # the common case: no closure, no tier bookkeeping
        return networkpolicy_side(index, query, settings=settings)

    def decide_np() -> SideDecision:
        return networkpolicy_side(index, query, settings=settings)

    return tiered_side(index, query, decide_np=decide_np)
