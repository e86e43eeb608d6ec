"""Namespace isolation report: coverage, namespace reachability "on any port", tenant paths.

Why this module exists: "can tenant A reach tenant B?" is a question about every port, not one.
The allowed ports of a connection are a union of intervals on each side (egress at the source,
ingress at the destination, S05), so their intersection, when not empty, contains the low end of
some interval a policy names, a port the destination declares (named ports resolve to those,
S21), or any port when both sides allow a whole protocol. Asking the reference evaluator
(``decide``) at those candidate ports for every protocol is therefore exact, and each answer
carries the policy and rule that admitted it.

Pod pairs only: hostNetwork pods act as their node (S23) and are left out; a pod talking to
itself is always allowed (S07), so a namespace with a pod reaches itself. External ranges come
straight from the ipBlock peers of the rules that select the namespace's pods (they are the only
peers an external address can match, S15), or "anywhere" for pods that are not isolated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubefence.api import Inventory, Pod, Protocol
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    Decision,
    Direction,
    PeerKind,
    PortMatcher,
    Reason,
    Settings,
    SideDecision,
    compile_policy,
    decide,
    selects_pod,
)

__all__ = [
    "AuditReport",
    "ExternalAccess",
    "NamespaceReport",
    "Opening",
    "PodPath",
    "build_report",
    "describe_ports",
]

_ANYWHERE = "0.0.0.0/0, ::/0"
_PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


@dataclass(frozen=True, slots=True, order=True)
class Opening:
    """What opened one side of a path: a policy rule, or the side not being isolated."""

    direction: str  # "egress" (at the source) or "ingress" (at the destination)
    policy: str | None  # "ns/name"; None when the side is not isolated
    rule: int | None = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.policy is None:
            return f"{self.direction}: not isolated"
        where = f" ({self.file}:{self.line})" if self.file and self.line else ""
        return f"{self.direction}: {self.policy} spec.{self.direction}[{self.rule}]{where}"


@dataclass(frozen=True, slots=True)
class PodPath:
    """``source`` may connect to ``destination`` on ``ports``: "TCP/8080"; "TCP/other" (every
    port no policy or pod names); "TCP/all"; or "all ports"."""

    source: str
    destination: str
    ports: tuple[str, ...]
    opened_by: tuple[Opening, ...]


@dataclass(frozen=True, slots=True)
class ExternalAccess:
    """An address range allowed to reach the namespace (ingress) or reached by it (egress)."""

    range: str
    ports: str
    via: str  # "ns/policy spec.ingress[0]" or "N pod(s) not isolated"


@dataclass(frozen=True, slots=True)
class NamespaceReport:
    name: str
    tenant: str | None
    pods: int
    ingress_isolated: int
    egress_isolated: int
    reachable_from: tuple[str, ...]  # namespaces with a pod that may connect to a pod here
    reaches: tuple[str, ...]
    external_ingress: tuple[ExternalAccess, ...]
    external_egress: tuple[ExternalAccess, ...]


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The isolation report; ``matrix[i][j]``: namespaces[i] reaches namespaces[j]."""

    namespaces: tuple[NamespaceReport, ...]
    matrix: tuple[tuple[bool, ...], ...]
    paths: tuple[PodPath, ...]  # every allowed pod pair across namespaces
    tenant_label: str | None = None
    reachability: bool = True  # False: matrix, paths and reachable_from/reaches not computed

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.namespaces)

    @property
    def cross_tenant(self) -> tuple[PodPath, ...]:
        """Paths between namespaces of two different tenants (both labelled)."""
        tenants = {n.name: n.tenant for n in self.namespaces}
        out = []
        for path in self.paths:
            a = tenants.get(path.source.split("/", 1)[0])
            b = tenants.get(path.destination.split("/", 1)[0])
            if a is not None and b is not None and a != b:
                out.append(path)
        return tuple(out)


def describe_ports(ports: Sequence[PortMatcher]) -> str:
    """``TCP/80, TCP/8000-9000, UDP/all``; ``all ports`` for the implicit entry."""
    parts = []
    for m in ports:
        if m.protocol is None:
            return "all ports"
        if m.name is not None:
            parts.append(f"{m.protocol}/{m.name}")
        elif m.low is None:
            parts.append(f"{m.protocol}/all")
        elif m.low == m.high:
            parts.append(f"{m.protocol}/{m.low}")
        else:
            parts.append(f"{m.protocol}/{m.low}-{m.high}")
    return ", ".join(parts)


# --- candidate ports --------------------------------------------------------------------------


def _candidates(
    compiled: Sequence[CompiledPolicy], pods: Sequence[Pod]
) -> dict[tuple[Protocol, str], list[tuple[int, bool]]]:
    """Per (protocol, destination pod key): candidate ports, each flagged "stands for any port"."""
    lows: dict[Protocol, set[int]] = {p: set() for p in _PROTOCOLS}
    covered: dict[Protocol, list[tuple[int, int]]] = {p: [] for p in _PROTOCOLS}
    for policy in compiled:
        for direction in (Direction.INGRESS, Direction.EGRESS):
            for rule in policy.rules(direction) or ():
                for m in rule.ports:
                    if m.protocol is not None and m.low is not None and m.high is not None:
                        lows[m.protocol].add(m.low)
                        covered[m.protocol].append((m.low, m.high))
    out: dict[tuple[Protocol, str], list[tuple[int, bool]]] = {}
    for protocol in _PROTOCOLS:
        for pod in pods:
            declared = {cp.port for cp in pod.ports if cp.protocol is protocol}
            taken = sorted(lows[protocol] | declared)
            spans = covered[protocol] + [(p, p) for p in declared]
            other = _first_free(spans)
            ports = [(p, False) for p in taken]
            if other is not None:
                ports.append((other, True))
            out[(protocol, pod.key)] = ports
    return out


def _first_free(spans: Sequence[tuple[int, int]]) -> int | None:
    """The lowest port in 1..65535 outside every span (a port no policy or pod names)."""
    port = 1
    for low, high in sorted(spans):
        if low > port:
            return port
        port = max(port, high + 1)
    return port if port <= 65535 else None


def _port_label(protocol: Protocol, port: int, other: bool) -> str:
    return f"{protocol}/other" if other else f"{protocol}/{port}"


def _openings(side: SideDecision | None, direction: str) -> list[Opening]:
    if side is None or not side.applicable:
        return []
    if not side.isolated:
        return [Opening(direction, None)]
    return [
        Opening(direction, a.policy.key, a.rule, a.policy.file, a.line) for a in side.admitted_by
    ]


# --- external ranges --------------------------------------------------------------------------


def _external(
    namespace: str,
    pods: Sequence[Pod],
    compiled: Sequence[CompiledPolicy],
    direction: Direction,
    settings: Settings,
) -> tuple[ExternalAccess, ...]:
    found: dict[tuple[str, str, str], None] = {}
    loose = 0
    for pod in pods:
        selecting = [
            c
            for c in compiled
            if c.namespace == namespace
            and c.rules(direction) is not None
            and selects_pod(c, pod, settings=settings)
        ]
        if not selecting:
            loose += 1
            continue
        for policy in selecting:
            for rule in policy.rules(direction) or ():
                via = f"{policy.namespace}/{policy.name} spec.{direction.value}[{rule.index}]"
                for peer in rule.peers:
                    if peer.kind is PeerKind.ANY:
                        found[(_ANYWHERE, describe_ports(rule.ports), via)] = None
                    elif peer.kind is PeerKind.IP_BLOCK and peer.ip_block is not None:
                        block = peer.ip_block
                        text = str(block.cidr)
                        if block.except_:
                            text += " except " + ", ".join(str(e) for e in block.except_)
                        found[(text, describe_ports(rule.ports), via)] = None
    if loose:
        found[(_ANYWHERE, "all ports", f"{loose} pod(s) not isolated")] = None
    return tuple(ExternalAccess(r, p, v) for r, p, v in sorted(found))


# --- the report -------------------------------------------------------------------------------


def _pair(
    inventory: Inventory,
    src: Pod,
    dst: Pod,
    candidates: Mapping[tuple[Protocol, str], list[tuple[int, bool]]],
    *,
    settings: Settings,
    first_only: bool,
) -> tuple[list[str], list[Opening]]:
    ports: list[str] = []
    openings: dict[Opening, None] = {}
    whole = 0  # protocols open on every candidate port, including "any other port"
    for protocol in _PROTOCOLS:
        here: list[str] = []
        tried = candidates[(protocol, dst.key)]
        for port, other in tried:
            decision: Decision = decide(
                inventory, src.key, dst.key, port=port, protocol=protocol, settings=settings
            )
            if not decision.allowed:
                continue
            here.append(_port_label(protocol, port, other))
            if decision.reason is Reason.POLICIES:
                for o in _openings(decision.egress, "egress") + _openings(
                    decision.ingress, "ingress"
                ):
                    openings[o] = None
            if first_only:
                return here, list(openings)
        if here and len(here) == len(tried) and tried[-1][1]:
            whole += 1
            ports.append(f"{protocol}/all")
        else:
            ports.extend(here)
    if whole == len(_PROTOCOLS):
        ports = ["all ports"]
    return ports, sorted(openings)


def build_report(
    inventory: Inventory,
    *,
    tenant_label: str | None = None,
    reachability: bool = True,
    settings: Settings = DEFAULT_SETTINGS,
) -> AuditReport:
    """Coverage, reachability and external ranges for every namespace of ``inventory``."""
    compiled = tuple(compile_policy(p) for p in inventory.policies)
    pods = [p for p in inventory.pods if not p.host_network]
    names = sorted({n.name for n in inventory.namespaces} | {p.namespace for p in pods})
    by_ns: dict[str, list[Pod]] = {n: [] for n in names}
    for pod in pods:
        by_ns[pod.namespace].append(pod)
    candidates = _candidates(compiled, pods)
    reach: set[tuple[str, str]] = set()
    paths: list[PodPath] = []
    for src in pods if reachability else ():
        for dst in pods:
            same = src.namespace == dst.namespace
            if same and (src.namespace, dst.namespace) in reach:
                continue
            ports, openings = _pair(
                inventory, src, dst, candidates, settings=settings, first_only=same
            )
            if not ports:
                continue
            reach.add((src.namespace, dst.namespace))
            if not same:
                paths.append(PodPath(src.key, dst.key, tuple(ports), tuple(openings)))
    reports = []
    for name in names:
        ns_pods = by_ns[name]
        tenant = None
        if tenant_label is not None:
            tenant = inventory.namespace_labels(name).get(tenant_label)
        reports.append(
            NamespaceReport(
                name=name,
                tenant=tenant,
                pods=len(ns_pods),
                ingress_isolated=_isolated(ns_pods, compiled, Direction.INGRESS, settings),
                egress_isolated=_isolated(ns_pods, compiled, Direction.EGRESS, settings),
                reachable_from=tuple(a for a in names if (a, name) in reach),
                reaches=tuple(b for b in names if (name, b) in reach),
                external_ingress=_external(name, ns_pods, compiled, Direction.INGRESS, settings),
                external_egress=_external(name, ns_pods, compiled, Direction.EGRESS, settings),
            )
        )
    matrix = tuple(tuple((a, b) in reach for b in names) for a in names) if reachability else ()
    return AuditReport(
        namespaces=tuple(reports),
        matrix=matrix,
        paths=tuple(paths),
        tenant_label=tenant_label,
        reachability=reachability,
    )


def _isolated(
    pods: Sequence[Pod],
    compiled: Sequence[CompiledPolicy],
    direction: Direction,
    settings: Settings,
) -> int:
    return sum(
        1
        for pod in pods
        if any(
            c.rules(direction) is not None and selects_pod(c, pod, settings=settings)
            for c in compiled
        )
    )
