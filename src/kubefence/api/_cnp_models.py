"""Typed models of the admin tiers: ClusterNetworkPolicy (v1alpha2) and its v1alpha1 forebears.

Why this module exists: the cluster-scoped policies of ``policy.networking.k8s.io`` are ordered
rule lists (first match decides, with ``Accept``, ``Deny`` or ``Pass``) evaluated before
(``Admin``) and after (``Baseline``) the namespaced NetworkPolicy. ``AdminNetworkPolicy`` and
``BaselineAdminNetworkPolicy`` (v1alpha1) mean the same things with other spellings, so all three
kinds become one model, ``ClusterNetworkPolicy``, which remembers the kind it was read from.
Models carry data only; matching is ``kubefence.semantics`` (``_tiers``).

Conventions: ``AdminRule.ports == ()`` matches every port and protocol (no ``protocols``);
``AdminPeer`` is exactly one peer kind; ``AdminPort`` is a number range of one protocol or a
named port (no protocol: the destination's container port of that name decides it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from kubefence.api._models import IPNetwork, LabelSelector, Origin, Protocol

__all__ = [
    "AdminAction",
    "AdminPeer",
    "AdminPeerKind",
    "AdminPort",
    "AdminRule",
    "ClusterNetworkPolicy",
    "Tier",
]


class Tier(StrEnum):
    """Where a cluster policy sits: before (Admin) or after (Baseline) NetworkPolicy."""

    ADMIN = "Admin"
    BASELINE = "Baseline"


class AdminAction(StrEnum):
    """What a matching rule does. v1alpha1 ``Allow`` is read as ``Accept``."""

    ACCEPT = "Accept"
    DENY = "Deny"
    PASS = "Pass"


class AdminPeerKind(StrEnum):
    NAMESPACES = "namespaces"  # every (non-hostNetwork) pod of the selected namespaces
    PODS = "pods"  # pods selected by namespaceSelector AND podSelector
    NETWORKS = "networks"  # CIDRs; they match pod IPs too (egress only)
    NODES = "nodes"  # node label selector (egress only, experimental)
    DOMAIN_NAMES = "domainNames"  # FQDNs (egress only, experimental; not evaluable offline)


@dataclass(frozen=True, slots=True)
class AdminPeer:
    """One entry of ``from``/``to``; only the fields of its ``kind`` are set."""

    index: int
    kind: AdminPeerKind
    namespace_selector: LabelSelector | None = None  # NAMESPACES, PODS
    pod_selector: LabelSelector | None = None  # PODS
    node_selector: LabelSelector | None = None  # NODES
    networks: tuple[IPNetwork, ...] = ()  # NETWORKS, host bits masked
    domain_names: tuple[str, ...] = ()  # DOMAIN_NAMES


@dataclass(frozen=True, slots=True)
class AdminPort:
    """One entry of ``protocols`` (v1alpha2) or ``ports`` (v1alpha1).

    ``name`` set: a destination named port, any protocol (``protocol`` None). Otherwise
    ``protocol`` with the inclusive range ``low``-``high`` (one number: ``low == high``)."""

    index: int
    protocol: Protocol | None = None
    low: int | None = None
    high: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class AdminRule:
    """One ingress or egress rule: ``action`` on traffic matching a peer AND a port."""

    index: int
    action: AdminAction
    peers: tuple[AdminPeer, ...]
    ports: tuple[AdminPort, ...] = ()  # () : every port of every protocol
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterNetworkPolicy:
    """A cluster-scoped tiered policy after validation.

    ``kind`` is the manifest's kind (``ClusterNetworkPolicy``, ``AdminNetworkPolicy``,
    ``BaselineAdminNetworkPolicy``). ``priority`` is None only for a BaselineAdminNetworkPolicy
    (which has none; there is at most one). The subject is ``namespace_selector`` AND
    ``pod_selector`` (``pod_selector`` None: every pod of the selected namespaces).
    ``lines`` maps field paths (``spec.ingress[0]``) to source lines, as ``NetworkPolicy``.
    """

    name: str
    kind: str
    tier: Tier
    priority: int | None
    namespace_selector: LabelSelector
    pod_selector: LabelSelector | None = None
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()
    origin: Origin | None = None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return self.name

    @property
    def order(self) -> tuple[int, int, str, str]:
        """The evaluation order within a tier: priority (lower first), then name, then kind.
        Equal priorities are implementation-defined upstream; kubefence orders them by name so
        every run agrees. A policy without a priority (BaselineAdminNetworkPolicy) comes last."""
        missing = 1 if self.priority is None else 0
        return (missing, self.priority or 0, self.name, self.kind)

    def line_of(self, path: str) -> int | None:
        """The source line of a field path, or of the nearest enclosing path that has one."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return self.origin.line if self.origin else None
