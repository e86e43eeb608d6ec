"""Namespace isolation report: coverage, namespace reachability "on any port", tenant paths.

Why this module exists: "can tenant A reach tenant B?" is a question about every port, not one.
The engine's port classes (``kubefence.engine.port_classes``, the one definition shared with
``matrix`` and ``diff``) split each protocol's ports into intervals on which every port matcher
of every policy answers the same (named ports at the numbers they resolve to, S21), plus one
class for the ports no policy names; asking once per class, for TCP, UDP and SCTP, is therefore
exact. The engine answers every pair for every class (pod classes, vectorised); the reference
evaluator (``decide``) then names the policy and rule that open each cross-tenant path, so the
report carries provenance.

A pod talking to itself is always allowed (S07), so a namespace with a pod reaches itself.
External ranges come straight from the ipBlock peers of the rules that select the namespace's
pods (the only peers an external address can match, S15), or "anywhere" for pods that are not
isolated. Cross-tenant paths join two namespaces whose tenant labels are both set and differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from kubefence.api import Inventory, Pod, Protocol, port_label, rule_path
from kubefence.audit._common import describe_block, describe_ports, isolated_count, range_label
from kubefence.engine import Matrix, PortClass, ReachabilityAnalysis, port_classes
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    Decision,
    Direction,
    PeerKind,
    Reason,
    Settings,
    SideDecision,
    decide,
    index_for,
    isolating_policies,
    merge,
)

__all__ = [
    "AuditReport",
    "ExternalAccess",
    "NamespaceReport",
    "Opening",
    "PodPath",
    "build_report",
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
        path = rule_path(self.direction, self.rule if self.rule is not None else 0)
        return f"{self.direction}: {self.policy} {path}{where}"


@dataclass(frozen=True, slots=True)
class PodPath:
    """``source`` may connect to ``destination`` on ``ports``: "8080/TCP", "8000-9000/TCP"
    (adjacent port classes merged); "other/TCP" (every port no policy names); "all/TCP"; or
    "all ports"."""

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
    cross_tenant: tuple[PodPath, ...]  # pod pairs of two different (labelled) tenants
    tenant_label: str | None = None
    reachability: bool = True  # False: matrix, paths and reachable_from/reaches not computed

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.namespaces)


# --- port classes -----------------------------------------------------------------------------


def _port_labels(allowed: Sequence[PortClass], classes: Sequence[PortClass]) -> list[str]:
    """Labels of the allowed port classes: adjacent ranges merged (``8000-9000/TCP``), every port
    no policy names as ``other/TCP``, a protocol open on all its classes as ``all/TCP``, and
    ``all ports`` when every protocol is."""
    labels: list[str] = []
    whole = 0
    for protocol in _PROTOCOLS:
        tried = [c for c in classes if c.protocol is protocol]
        here = [c for c in allowed if c.protocol is protocol]
        if here and len(here) == len(tried):
            whole += 1
            labels.append(port_label("all", protocol.value))
            continue
        for low, high in merge((c.low, c.high) for c in here if not c.other):
            labels.append(range_label(protocol, low, high))
        labels += [port_label("other", protocol.value) for c in here if c.other]
    return ["all ports"] if whole == len(_PROTOCOLS) else labels


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
    pods: Sequence[Pod],
    compiled: Sequence[CompiledPolicy],
    direction: Direction,
    settings: Settings,
) -> tuple[ExternalAccess, ...]:
    """The ranges ``pods`` (of one namespace) reach or are reached by; ``compiled``: the
    namespace's policies."""
    found: dict[tuple[str, str, str], None] = {}
    loose = 0
    for pod in pods:
        selecting = isolating_policies(compiled, pod, direction, settings=settings)
        if not selecting:
            loose += 1
            continue
        for policy in selecting:
            for rule in policy.rules(direction) or ():
                via = f"{policy.namespace}/{policy.name} {rule_path(direction.value, rule.index)}"
                for peer in rule.peers:
                    if peer.kind is PeerKind.ANY:
                        found[(_ANYWHERE, describe_ports(rule.ports), via)] = None
                    elif peer.kind is PeerKind.IP_BLOCK and peer.ip_block is not None:
                        text = describe_block(peer.ip_block)
                        found[(text, describe_ports(rule.ports), via)] = None
    if loose:
        found[(_ANYWHERE, "all ports", f"{loose} pod(s) not isolated")] = None
    return tuple(ExternalAccess(r, p, v) for r, p, v in sorted(found))


# --- the report -------------------------------------------------------------------------------


def _explain(
    inventory: Inventory,
    src: str,
    dst: str,
    allowed: Sequence[PortClass],
    classes: Sequence[PortClass],
    settings: Settings,
) -> tuple[tuple[str, ...], tuple[Opening, ...]]:
    """Port labels of an allowed pair, and the rules the reference evaluator says open them."""
    openings: dict[Opening, None] = {}
    for c in allowed:
        decision: Decision = decide(
            inventory, src, dst, port=c.port, protocol=c.protocol, settings=settings
        )
        if decision.reason is Reason.POLICIES:
            for o in _openings(decision.egress, "egress") + _openings(decision.ingress, "ingress"):
                openings[o] = None
    return tuple(_port_labels(allowed, classes)), tuple(sorted(openings))


def _cross_tenant_paths(
    inventory: Inventory,
    analysis: ReachabilityAnalysis,
    classes: Sequence[PortClass],
    matrices: Sequence[Matrix],
    tenants: Mapping[str, str | None],
    *,
    settings: Settings,
) -> list[PodPath]:
    """Every allowed pod pair whose namespaces belong to two different tenants.

    Pods of one engine class are alike to every policy (namespace, labels, ports, ipBlock
    membership), so the port classes a pair may use are read from the class matrices, in
    blocks of source pods, and each class pair is explained by ``decide`` once. Traffic from a
    node (S24) is per pod, so hostNetwork sources are asked pod by pod.
    """
    pods = inventory.pods
    of_pod = analysis.classes.of_pod
    members = [i for i, p in enumerate(pods) if tenants[p.namespace] is not None]
    if not members:
        return []
    tenant_ids = {
        t: k for k, t in enumerate(sorted({tenants[pods[i].namespace] or "" for i in members}))
    }
    idx = np.asarray(members, dtype=np.int64)
    cls = of_pod[idx]
    tenant_of = np.asarray([tenant_ids[tenants[pods[i].namespace] or ""] for i in members])
    cache: dict[tuple[int, int], tuple[tuple[str, ...], tuple[Opening, ...]]] = {}
    found: list[PodPath] = []

    def explain(
        src: int, dst: int, mask: Sequence[int]
    ) -> tuple[tuple[str, ...], tuple[Opening, ...]]:
        key = (int(of_pod[src]), int(of_pod[dst]))
        hit = None if pods[src].host_network else cache.get(key)
        if hit is None:
            allowed = [classes[k] for k in mask]
            hit = _explain(inventory, pods[src].key, pods[dst].key, allowed, classes, settings)
            if not pods[src].host_network:
                cache[key] = hit
        return hit

    step = max(1, 4_000_000 // max(1, len(members) * len(matrices)))
    for start in range(0, len(members), step):
        rows = slice(start, start + step)
        block = np.stack([m.class_allowed[np.ix_(cls[rows], cls)] for m in matrices])
        cross = tenant_of[rows, None] != tenant_of[None, :]
        for a, b in zip(*np.nonzero(block.any(axis=0) & cross), strict=True):
            src, dst = members[start + int(a)], members[int(b)]
            if pods[src].host_network:
                continue  # asked pod by pod below
            labels, openings = explain(src, dst, np.nonzero(block[:, a, b])[0].tolist())
            found.append(PodPath(pods[src].key, pods[dst].key, labels, openings))
    for src in (i for i in members if pods[i].host_network):
        for dst in members:
            if tenants[pods[src].namespace] == tenants[pods[dst].namespace]:
                continue
            mask = [k for k, m in enumerate(matrices) if m.allowed(pods[src].key, pods[dst].key)]
            if mask:
                labels, openings = explain(src, dst, mask)
                found.append(PodPath(pods[src].key, pods[dst].key, labels, openings))
    return sorted(found, key=lambda p: (p.source, p.destination))


def build_report(
    inventory: Inventory,
    *,
    tenant_label: str | None = None,
    reachability: bool = True,
    settings: Settings = DEFAULT_SETTINGS,
) -> AuditReport:
    """Coverage, reachability and external ranges for every namespace of ``inventory``.

    Reachability is the engine's (pod classes, vectorised) for every port class; the
    cross-tenant paths it finds are then explained by the reference evaluator.
    """
    index = index_for(inventory)
    pods = inventory.pods
    names = sorted({n.name for n in inventory.namespaces} | {p.namespace for p in pods})
    position = {n: i for i, n in enumerate(names)}
    by_ns = inventory.pods_by_namespace
    tenants: dict[str, str | None] = {
        n: inventory.namespace_labels(n).get(tenant_label) if tenant_label else None for n in names
    }
    reach = np.zeros((len(names), len(names)), dtype=np.bool_)
    paths: list[PodPath] = []
    if reachability and pods:
        classes = port_classes([inventory], protocols=_PROTOCOLS)
        analysis = ReachabilityAnalysis(inventory, settings=settings)
        matrices = [analysis.matrix(c.port, c.protocol) for c in classes]
        for m in matrices:
            summary = m.namespace_summary()
            idx = [position[n] for n in summary.namespaces]
            counts = np.asarray(summary.allowed, dtype=np.int64) > 0
            reach[np.ix_(idx, idx)] |= counts
        if settings.self_traffic_allowed:  # S07: a pod may always reach itself
            for n in by_ns:
                reach[position[n], position[n]] = True
        paths = _cross_tenant_paths(
            inventory, analysis, classes, matrices, tenants, settings=settings
        )
    reports = []
    for name in names:
        ns_pods = by_ns.get(name, ())
        own = index.policies_in(name)
        i = position[name]
        reports.append(
            NamespaceReport(
                name=name,
                tenant=tenants[name],
                pods=len(ns_pods),
                ingress_isolated=isolated_count(ns_pods, own, Direction.INGRESS, settings=settings),
                egress_isolated=isolated_count(ns_pods, own, Direction.EGRESS, settings=settings),
                reachable_from=tuple(a for a in names if reach[position[a], i]),
                reaches=tuple(b for b in names if reach[i, position[b]]),
                external_ingress=_external(ns_pods, own, Direction.INGRESS, settings),
                external_egress=_external(ns_pods, own, Direction.EGRESS, settings),
            )
        )
    matrix = tuple(tuple(bool(x) for x in row) for row in reach) if reachability else ()
    return AuditReport(
        namespaces=tuple(reports),
        matrix=matrix,
        cross_tenant=tuple(paths),
        tenant_label=tenant_label,
        reachability=reachability,
    )
