"""The validated contents of a set of manifests: what every evaluator is asked about.

Why this module exists: loading (``sources``), the Python API (``kubefence.Cluster``) and every
evaluator share one immutable, deterministically ordered container with cheap look-ups, so no
layer re-sorts or re-indexes objects on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from kubefence.api._cnp_models import ClusterNetworkPolicy
from kubefence.api._models import (
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    Service,
    labels_of_namespace,
)

__all__ = ["Inventory"]


@dataclass(frozen=True)
class Inventory:
    """Namespaces, pods, services and policies, each sorted by name (``namespace/name``)."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. "namespace test was created implicitly (referenced by ...)"
    skipped: Mapping[str, int] = field(default_factory=dict)  # unknown kinds and their counts
    # ClusterNetworkPolicy (and v1alpha1 Admin/BaselineAdminNetworkPolicy), by (name, kind)
    admin_policies: tuple[ClusterNetworkPolicy, ...] = ()
    nodes: tuple[Node, ...] = ()  # by name; only the tiers' ``nodes`` peer reads them

    @classmethod
    def of(
        cls,
        *,
        namespaces: tuple[Namespace, ...] | list[Namespace] = (),
        pods: tuple[Pod, ...] | list[Pod] = (),
        services: tuple[Service, ...] | list[Service] = (),
        policies: tuple[NetworkPolicy, ...] | list[NetworkPolicy] = (),
        notes: tuple[str, ...] | list[str] = (),
        skipped: Mapping[str, int] | None = None,
        admin_policies: tuple[ClusterNetworkPolicy, ...] | list[ClusterNetworkPolicy] = (),
        nodes: tuple[Node, ...] | list[Node] = (),
    ) -> Inventory:
        """Build an inventory with every collection in its canonical order."""
        return cls(
            namespaces=tuple(sorted(namespaces, key=lambda n: n.name)),
            pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.name))),
            services=tuple(sorted(services, key=lambda s: (s.namespace, s.name))),
            policies=tuple(sorted(policies, key=lambda p: (p.namespace, p.name))),
            notes=tuple(notes),
            skipped=dict(sorted((skipped or {}).items())),
            admin_policies=tuple(sorted(admin_policies, key=lambda p: (p.name, p.kind))),
            nodes=tuple(sorted(nodes, key=lambda n: n.name)),
        )

    @cached_property
    def namespace_by_name(self) -> Mapping[str, Namespace]:
        return {n.name: n for n in self.namespaces}

    @cached_property
    def pod_by_key(self) -> Mapping[str, Pod]:
        return {p.key: p for p in self.pods}

    @cached_property
    def policies_by_namespace(self) -> Mapping[str, tuple[NetworkPolicy, ...]]:
        grouped: dict[str, list[NetworkPolicy]] = {}
        for policy in self.policies:
            grouped.setdefault(policy.namespace, []).append(policy)
        return {ns: tuple(ps) for ns, ps in grouped.items()}

    @cached_property
    def pods_by_namespace(self) -> Mapping[str, tuple[Pod, ...]]:
        grouped: dict[str, list[Pod]] = {}
        for pod in self.pods:
            grouped.setdefault(pod.namespace, []).append(pod)
        return {ns: tuple(ps) for ns, ps in grouped.items()}

    @cached_property
    def labels_by_namespace(self) -> Mapping[str, Mapping[str, str]]:
        return {n.name: n.labels for n in self.namespaces}

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        """Labels of a namespace; an unknown namespace has only its metadata.name label (S16)."""
        return labels_of_namespace(self.labels_by_namespace, name)
