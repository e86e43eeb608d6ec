"""Which pods the admin tiers isolate or open, per namespace: ``isolate --check``'s columns.

Why this module exists: the namespace summary counts a pod as isolated when a NetworkPolicy
isolates it (S03). With ClusterNetworkPolicies that undercounts in both directions: a Baseline
"deny other tenants" isolates pods no NetworkPolicy selects (``isolate --tier baseline`` printed
"0/2 -> 0/2" for the very policies it generated), and an Admin Accept opens paths that a
NetworkPolicy's isolation cannot close. This module counts, per namespace and direction:

* isolated: pods a NetworkPolicy isolates, or that a tiered policy with a Deny rule in that
  direction selects (T03: being a subject alone isolates nothing; a Deny rule is what makes
  some connection of the pod's side depend on policy rather than the default allow);
* opened: pods an Admin-tier policy with an Accept rule in that direction selects (T01: that
  rule decides before NetworkPolicy, so the pod's own NetworkPolicy cannot close it).

Counted per (namespace, labels, hostNetwork), all that selecting reads (T04).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubefence.api import AdminAction, ClusterNetworkPolicy, Inventory
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    Direction,
    Settings,
    admin_selects,
    index_for,
    isolating_policies,
)

__all__ = ["TierIsolation", "tier_isolation"]

_DIRECTIONS = (Direction.INGRESS, Direction.EGRESS)


@dataclass(frozen=True, slots=True)
class TierIsolation:
    """One namespace's pods isolated (NetworkPolicy or a tier Deny) and opened (Admin Accept)
    per direction."""

    pods: int
    ingress_isolated: int
    egress_isolated: int
    ingress_opened: int
    egress_opened: int


def _has(policy: ClusterNetworkPolicy, direction: Direction, action: AdminAction) -> bool:
    rules = policy.ingress if direction is Direction.INGRESS else policy.egress
    return any(rule.action is action for rule in rules)


def tier_isolation(
    inventory: Inventory, *, settings: Settings = DEFAULT_SETTINGS
) -> dict[str, TierIsolation]:
    """Per namespace with pods, the counts described in the module docstring."""
    index = index_for(inventory)
    tiered = [*index.admin_tier, *index.baseline_tier]
    deny = {d: [p for p in tiered if _has(p, d, AdminAction.DENY)] for d in _DIRECTIONS}
    accept = {
        d: [p for p in index.admin_tier if _has(p, d, AdminAction.ACCEPT)] for d in _DIRECTIONS
    }
    found: dict[str, TierIsolation] = {}
    for namespace, pods in inventory.pods_by_namespace.items():
        labels = inventory.namespace_labels(namespace)
        own = index.policies_in(namespace)
        seen: dict[tuple[object, ...], tuple[bool, bool, bool, bool]] = {}
        totals = [0, 0, 0, 0]
        for pod in pods:
            key = (pod.labels, pod.host_network)
            flags = seen.get(key)
            if flags is None:
                isolated = [
                    bool(isolating_policies(own, pod, d, settings=settings))
                    or any(admin_selects(p, pod, labels) for p in deny[d])
                    for d in _DIRECTIONS
                ]
                opened = [
                    any(admin_selects(p, pod, labels) for p in accept[d]) for d in _DIRECTIONS
                ]
                flags = seen[key] = (isolated[0], isolated[1], opened[0], opened[1])
            for i, flag in enumerate(flags):
                totals[i] += flag
        found[namespace] = TierIsolation(len(pods), *totals)
    return found
