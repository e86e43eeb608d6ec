"""Policies compiled into a small algebra: target -> rules -> (peer matchers, port matchers).

Why this module exists: the YAML shape of a NetworkPolicy hides its meaning in nil-vs-empty
distinctions. They are resolved here, once, so that the reference evaluator, the engine and the
nftables compiler all consume the same explicit structure and cannot disagree on them.

Nil-vs-empty, decided in ``compile_policy`` (paths relative to one rule):

| written in the manifest                       | compiled to                                     |
|-----------------------------------------------|-------------------------------------------------|
| policyTypes absent or []                      | [Ingress] + Egress if egress has a rule (S02)   |
|   (applied by ``api`` when parsing)           |                                                 |
| direction not in policyTypes                  | ``ingress``/``egress`` is None: no effect       |
| direction in policyTypes, rules absent or []  | ``()``: isolates, allows nothing (S08)          |
| from/to absent or []                          | one ``AnyPeer`` matcher, index -1 (S09)         |
| ports absent or []                            | one ``AnyPort`` matcher, index -1 (S09)         |
| peer: podSelector only                        | pods of the policy's namespace (S11)            |
| peer: namespaceSelector only                  | every pod of matching namespaces (S12)          |
| peer: both, same list item                    | matching pods inside matching namespaces (S13)  |
| selector ``{}``                               | matches everything in its scope (S14)           |
| peer: ipBlock                                 | cidr minus excepts, pod IPs included (S15)      |
| port: protocol, no port                       | every port of that protocol (S19)               |
| port: number + endPort                        | inclusive range (S20)                           |
| port: name                                    | resolved per destination pod (S21)              |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from kubefence.api import (
    ContainerPort,
    IPAddress,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Rule,
)
from kubefence.semantics._selectors import selector_matches
from kubefence.semantics._settings import DEFAULT_SETTINGS, Settings

__all__ = [
    "ANY_INDEX",
    "CompiledPolicy",
    "CompiledRule",
    "Direction",
    "PeerKind",
    "PeerMatcher",
    "PortMatcher",
    "compile_policies",
    "compile_policy",
    "ip_in_block",
    "isolating_policies",
    "peer_matches_ip",
    "peer_matches_pod",
    "port_matches",
    "resolve_named_port",
    "selects_pod",
]

ANY_INDEX = -1  # index of the implicit matcher an absent/empty list compiles to


class Direction(Enum):
    INGRESS = "ingress"
    EGRESS = "egress"


class PeerKind(Enum):
    ANY = "any"  # from/to absent or empty: every pod and every IP
    PODS = "pods"  # namespace scope + pod selector
    IP_BLOCK = "ipBlock"


@dataclass(frozen=True, slots=True)
class PeerMatcher:
    """One peer of a rule. For PODS: ``namespace`` is set when the scope is the policy's own
    namespace (no namespaceSelector), else ``namespace_selector`` is set."""

    kind: PeerKind
    index: int = ANY_INDEX
    namespace: str | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None  # None: every pod in scope
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class PortMatcher:
    """One port entry. ``protocol`` None: every protocol and port (absent ``ports``).

    Exactly one of: (``low``, ``high``) an inclusive numeric range, ``name`` a named port, or
    neither (every port of ``protocol``).
    """

    index: int = ANY_INDEX
    protocol: Protocol | None = None
    low: int | None = None
    high: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    peers: tuple[PeerMatcher, ...]
    ports: tuple[PortMatcher, ...]


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy ready to evaluate. ``ingress``/``egress`` None: the policy does not isolate
    that direction; ``()``: it isolates and allows nothing."""

    source: NetworkPolicy
    namespace: str
    name: str
    pod_selector: LabelSelector
    ingress: tuple[CompiledRule, ...] | None
    egress: tuple[CompiledRule, ...] | None

    def rules(self, direction: Direction) -> tuple[CompiledRule, ...] | None:
        return self.ingress if direction is Direction.INGRESS else self.egress


def _compile_peer(policy_namespace: str, index: int, peer: Peer) -> PeerMatcher:
    # Positional arguments in field order (kind, index, namespace, namespace_selector,
    # pod_selector, ip_block): a large analysis compiles tens of thousands of policies.
    if peer.ip_block is not None:
        return PeerMatcher(_IP_BLOCK, index, None, None, None, peer.ip_block)
    if peer.namespace_selector is None:
        # podSelector only (S11): the policy's own namespace.
        return PeerMatcher(_PODS, index, policy_namespace, None, peer.pod_selector)
    # namespaceSelector only (S12) or both in one item (S13, AND).
    return PeerMatcher(_PODS, index, None, peer.namespace_selector, peer.pod_selector)


def _compile_port(index: int, port: PolicyPort) -> PortMatcher:
    # Positional arguments in field order (index, protocol, low, high, name).
    number = port.port
    if number is None:
        return PortMatcher(index, port.protocol)  # S19
    if isinstance(number, str):
        return PortMatcher(index, port.protocol, None, None, number)  # S21
    high = port.end_port if port.end_port is not None else number  # S20
    return PortMatcher(index, port.protocol, number, high)


_IP_BLOCK, _PODS = PeerKind.IP_BLOCK, PeerKind.PODS
# The matchers of an absent or empty list; immutable, so every rule shares them (each rule
# still gets its own tuple).
_ANY_PEER = PeerMatcher(kind=PeerKind.ANY)
_ANY_PORT = PortMatcher()


def _compile_rule(policy_namespace: str, index: int, rule: Rule) -> CompiledRule:
    peers = (
        tuple([_compile_peer(policy_namespace, i, p) for i, p in enumerate(rule.peers)])
        if rule.peers
        else (_ANY_PEER,)
    )
    ports = (
        tuple([_compile_port(i, p) for i, p in enumerate(rule.ports)])
        if rule.ports
        else (_ANY_PORT,)
    )
    return CompiledRule(index, peers, ports)


def compile_policy(policy: NetworkPolicy) -> CompiledPolicy:
    """Resolve every nil-vs-empty case of one (already defaulted) policy; see the table above."""
    ns = policy.namespace
    types = policy.policy_types
    ingress = (
        tuple([_compile_rule(ns, i, r) for i, r in enumerate(policy.ingress)])
        if PolicyType.INGRESS in types  # policy.affects_ingress
        else None
    )
    egress = (
        tuple([_compile_rule(ns, i, r) for i, r in enumerate(policy.egress)])
        if PolicyType.EGRESS in types  # policy.affects_egress
        else None
    )
    return CompiledPolicy(policy, ns, policy.name, policy.pod_selector, ingress, egress)


def compile_policies(policies: Iterable[NetworkPolicy]) -> tuple[CompiledPolicy, ...]:
    return tuple(compile_policy(p) for p in policies)


# --- matching primitives, shared by every evaluator -------------------------------------------


def selects_pod(policy: CompiledPolicy, pod: Pod, *, settings: Settings = DEFAULT_SETTINGS) -> bool:
    """S01: same namespace and podSelector matches; S23: hostNetwork pods are not targets."""
    if pod.namespace != policy.namespace:
        return False
    if pod.host_network and not settings.host_network_selectable:
        return False
    return selector_matches(policy.pod_selector, pod.labels)


def isolating_policies(
    policies: Iterable[CompiledPolicy],
    pod: Pod,
    direction: Direction,
    *,
    settings: Settings = DEFAULT_SETTINGS,
) -> tuple[CompiledPolicy, ...]:
    """S03: the ``policies`` that isolate ``pod`` in ``direction`` (they select it and have that
    policy type). The one definition of "which policies isolate this pod"."""
    ingress = direction is Direction.INGRESS
    return tuple(
        [
            p
            for p in policies
            if (p.ingress if ingress else p.egress) is not None
            and selects_pod(p, pod, settings=settings)
        ]
    )


def ip_in_block(ip: IPAddress, block: IPBlock) -> bool:
    """S15: inside ``cidr`` and outside every ``except``; other address families never match."""
    if ip.version != block.cidr.version or ip not in block.cidr:
        return False
    return not any(ip in ex for ex in block.except_)


def peer_matches_pod(
    peer: PeerMatcher,
    pod: Pod,
    namespace_labels: Mapping[str, str],
    *,
    address: IPAddress | None = None,
    settings: Settings = DEFAULT_SETTINGS,
) -> bool:
    """Does ``peer`` match ``pod`` (reached at ``address``, one of its IPs, when known)?

    ipBlock peers match pod IPs (S15) but never a pod with no known IP. With ``address`` None
    the pod matches an ipBlock when any of its IPs does.
    """
    if peer.kind is PeerKind.ANY:
        return True
    if peer.kind is PeerKind.IP_BLOCK:
        assert peer.ip_block is not None
        if not settings.ipblock_matches_pods and not pod.host_network:
            return False
        addresses: Sequence[IPAddress] = (address,) if address is not None else pod.ips
        return any(ip_in_block(ip, peer.ip_block) for ip in addresses)
    if pod.host_network and not settings.host_network_selectable:
        return False  # S23: a hostNetwork pod acts as its node's IP, not as a pod
    if peer.namespace is not None:
        if pod.namespace != peer.namespace:
            return False
    elif peer.namespace_selector is not None and not selector_matches(
        peer.namespace_selector, namespace_labels
    ):
        return False
    return peer.pod_selector is None or selector_matches(peer.pod_selector, pod.labels)


def peer_matches_ip(peer: PeerMatcher, ip: IPAddress) -> bool:
    """An address outside every known pod: only ``ANY`` and ipBlock peers can match it."""
    if peer.kind is PeerKind.ANY:
        return True
    if peer.kind is PeerKind.IP_BLOCK:
        assert peer.ip_block is not None
        return ip_in_block(ip, peer.ip_block)
    return False


def resolve_named_port(name: str, protocol: Protocol, ports: Sequence[ContainerPort]) -> int | None:
    """S21: a name resolves by name AND protocol; the first declared wins on duplicates."""
    for cp in ports:
        if cp.name == name and cp.protocol is protocol:
            return cp.port
    return None


def port_matches(
    matcher: PortMatcher,
    port: int,
    protocol: Protocol,
    destination_ports: Sequence[ContainerPort] | None,
) -> bool:
    """Does a connection to ``port``/``protocol`` match? ``destination_ports`` are the container
    ports of the destination pod, or None when the destination is not a pod (then a named port
    matches nothing, S21)."""
    if matcher.protocol is None:
        return True
    if matcher.protocol is not protocol:
        return False
    if matcher.name is not None:
        if destination_ports is None:
            return False
        return resolve_named_port(matcher.name, protocol, destination_ports) == port
    if matcher.low is None:
        return True
    assert matcher.high is not None
    return matcher.low <= port <= matcher.high
