"""Namespace isolation report: coverage, namespace reachability "on any port", tenant paths.

Why this module exists: "can tenant A reach tenant B?" is a question about every port, not one.
The engine's port classes (``kubefence.engine.port_classes``, the one definition shared with
``matrix`` and ``diff``) split each protocol's ports into intervals on which every port matcher
of every policy answers the same (named ports at the numbers they resolve to, S21), plus one
class for the ports no policy names; asking once per class, for TCP, UDP and SCTP, is therefore
exact. The engine answers every class pair for every port class (pod classes, vectorised); the
answers are folded into one port bit mask per class pair (``_paths.PortMasks``), from which the
namespace matrix and the cross-tenant paths (counted per namespace pair and workload pair, with
examples explained by the reference evaluator, ``_paths``) are read without pod x pod work.

A pod talking to itself is always allowed (S07), so a namespace with a pod reaches itself.
External ranges come straight from the ipBlock peers of the rules that select the namespace's
pods (the only peers an external address can match, S15), or "anywhere" for pods that are not
isolated. Cross-tenant paths join two namespaces whose tenant labels are both set and differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubefence.api import Inventory, Pod, rule_path
from kubefence.audit._common import describe_block, describe_ports, isolated_count
from kubefence.audit._paths import (
    PROTOCOLS,
    NamespacePath,
    Opening,
    PodPath,
    PortMasks,
    WorkloadPath,
    cross_tenant_paths,
)
from kubefence.engine import ReachabilityAnalysis, node_pairs, port_classes, port_masks
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    Direction,
    PeerKind,
    Settings,
    index_for,
    isolating_policies,
)

__all__ = [
    "AuditReport",
    "ExternalAccess",
    "NamespacePath",
    "NamespaceReport",
    "Opening",
    "PodPath",
    "WorkloadPath",
    "build_report",
]

_ANYWHERE = "0.0.0.0/0, ::/0"
EXAMPLES = 3  # workload pairs (each with an example pod pair) listed per namespace pair
EXAMPLE_LIMIT = 5_000  # workload pairs listed in all, the largest namespace pairs first
EXPLAINED = 100  # example pod pairs explained by ``decide``, the largest namespace pairs first


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
    # The example pod pairs of ``tenant_paths`` (every pod pair only in small clusters: each
    # namespace pair lists its first ``examples`` workload pairs), by source and destination.
    cross_tenant: tuple[PodPath, ...]
    tenant_label: str | None = None
    reachability: bool = True  # False: matrix, paths and reachable_from/reaches not computed
    # Every namespace pair of two different (labelled) tenants with a pod pair that may connect,
    # with counts, ports and examples; by source and destination.
    tenant_paths: tuple[NamespacePath, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.namespaces)


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
    seen: dict[tuple[object, ...], bool] = {}  # S01/S23: only these decide what selects a pod
    for pod in pods:
        key = (pod.namespace, pod.labels, pod.host_network)
        if key in seen:
            loose += seen[key]
            continue
        selecting = isolating_policies(compiled, pod, direction, settings=settings)
        seen[key] = not selecting
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


def _namespace_reach(
    analysis: ReachabilityAnalysis,
    masks: PortMasks,
    overrides: Sequence[tuple[int, Sequence[int]]],
    position: dict[str, int],
    size: int,
) -> npt.NDArray[np.bool_]:
    """``reach[i, j]``: two distinct pods of namespaces i and j may connect on some port."""
    classes = analysis.classes
    reach = np.zeros((size, size), dtype=np.bool_)
    if not classes.count:
        return reach
    open_any = (masks.code != 0).any(axis=2)
    lonely = np.flatnonzero(classes.weight < 2)  # a class's diagonal needs two distinct pods
    open_any[lonely, lonely] = False
    spans = [(k, lo) for k, (lo, hi) in enumerate(classes.ns_range) if hi > lo]
    starts = [lo for _, lo in spans]
    by_ns = np.logical_or.reduceat(np.logical_or.reduceat(open_any, starts, axis=0), starts, axis=1)
    idx = [position[classes.namespaces[k]] for k, _ in spans]
    reach[np.ix_(idx, idx)] = by_ns
    ns_of_pod = classes.namespace_of[classes.of_pod]
    for src, dsts in overrides:  # S24: traffic from a pod's own node
        for dst in dsts:
            if dst != src:
                a = position[classes.namespaces[ns_of_pod[src]]]
                reach[a, position[classes.namespaces[ns_of_pod[dst]]]] = True
    return reach


def build_report(
    inventory: Inventory,
    *,
    tenant_label: str | None = None,
    reachability: bool = True,
    examples: int = EXAMPLES,
    example_limit: int | None = EXAMPLE_LIMIT,
    explain: int | None = EXPLAINED,
    settings: Settings = DEFAULT_SETTINGS,
) -> AuditReport:
    """Coverage, reachability and external ranges for every namespace of ``inventory``.

    Reachability is the engine's (pod classes, vectorised) for every port class. Cross-tenant
    paths are counted per namespace pair and workload pair; each namespace pair lists its
    first ``examples`` workload pairs with an example pod pair, ``example_limit`` in all (None:
    no limit), and ``explain`` of those examples (None: all) are explained by the reference
    evaluator; both limits are handed out rank by rank, the largest namespace pairs first.
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
    tenant_paths: tuple[NamespacePath, ...] = ()
    if reachability and pods:
        classes = port_classes([inventory], protocols=PROTOCOLS)
        analysis = ReachabilityAnalysis(inventory, settings=settings)
        masks = PortMasks(classes, port_masks(analysis, classes))
        overrides = node_pairs(analysis)
        reach = _namespace_reach(analysis, masks, overrides, position, len(names))
        if settings.self_traffic_allowed:  # S07: a pod may always reach itself
            for n in by_ns:
                reach[position[n], position[n]] = True
        if tenant_label is not None:
            tenant_paths = cross_tenant_paths(
                inventory,
                analysis,
                masks,
                overrides,
                tenants,
                names,
                examples=examples,
                limit=example_limit,
                explain=explain,
                settings=settings,
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
                reachable_from=tuple(names[a] for a in np.flatnonzero(reach[:, i]).tolist()),
                reaches=tuple(names[b] for b in np.flatnonzero(reach[i]).tolist()),
                external_ingress=_external(ns_pods, own, Direction.INGRESS, settings),
                external_egress=_external(ns_pods, own, Direction.EGRESS, settings),
            )
        )
    matrix = tuple(map(tuple, reach.tolist())) if reachability else ()
    shown = (w.example for p in tenant_paths for w in p.workloads)
    return AuditReport(
        namespaces=tuple(reports),
        matrix=matrix,
        cross_tenant=tuple(sorted(shown, key=lambda p: (p.source, p.destination))),
        tenant_label=tenant_label,
        reachability=reachability,
        tenant_paths=tenant_paths,
    )
