"""KF017: an Admin Accept rule that opens paths between tenants, at a bounded cost.

Why this module exists: the check compares the audit's namespace reachability (``build_report``,
the engine's matrix, tiers included) with and without each Admin Accept rule, and one such
computation per rule did not scale (200 ClusterNetworkPolicies: hundreds of full reports). So
the reachability is computed once with every rule and once with no Admin Accept rule (a pair
connected even then is connected without any one of them), then again only for a rule that
could be what opens some remaining connected tenant pair (its subject's namespace on one side,
a namespace its peers may match on the other), over the pods of those pairs' namespaces only
(exact: which of them reach each other does not depend on other namespaces' pods), and at most
``KF017_LIMIT`` times per run; rules past the limit are named in one "not checked" finding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from kubefence.api import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    Tier,
)
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext
from kubefence.audit._lint._tiers import (
    _DIRECTIONS,
    _finding,
    _label,
    _path,
    _rules,
    _subjects,
    _tier,
)
from kubefence.semantics import Direction, selector_matches

__all__ = ["KF017_LIMIT", "admin_accept_cross_tenant"]


def _without(
    inventory: Inventory, policy: ClusterNetworkPolicy, direction: Direction, rule: AdminRule
) -> Inventory:
    kept = tuple(r for r in _rules(policy, direction) if r is not rule)
    if direction is Direction.INGRESS:
        changed = dataclasses.replace(policy, ingress=kept)
    else:
        changed = dataclasses.replace(policy, egress=kept)
    admin = [changed if p is policy else p for p in inventory.admin_policies]
    return dataclasses.replace(inventory, admin_policies=tuple(admin))


def _cross(inventory: Inventory, ctx: LintContext) -> set[tuple[str, str]]:
    """The ordered pairs of namespaces of different tenants whose pods may connect."""
    from kubefence.audit._reach import build_report

    report = build_report(inventory, settings=ctx.options.settings, explain=0, examples=0)
    label = ctx.options.tenant_label
    tenant = {n: (inventory.namespace_labels(n).get(label) if label else n) for n in report.names}
    found: set[tuple[str, str]] = set()
    for i, a in enumerate(report.names):
        for j, b in enumerate(report.names):
            if a == b or not report.matrix[i][j]:
                continue
            if tenant[a] is not None and tenant[b] is not None and tenant[a] != tenant[b]:
                found.add((a, b))
    return found


KF017_LIMIT = 32
"""At most this many reachability computations (one per Admin Accept rule that could open a
path) per lint run; the rules past it are named in one finding instead (module docstring)."""


def _without_accepts(inventory: Inventory) -> Inventory:
    """The inventory with every Admin-tier Accept rule removed."""
    admin = tuple(
        dataclasses.replace(
            p,
            ingress=tuple(r for r in p.ingress if r.action is not AdminAction.ACCEPT),
            egress=tuple(r for r in p.egress if r.action is not AdminAction.ACCEPT),
        )
        if p.tier is Tier.ADMIN
        else p
        for p in inventory.admin_policies
    )
    return dataclasses.replace(inventory, admin_policies=admin)


def _peer_namespaces(ctx: LintContext, peer: AdminPeer) -> set[str] | None:
    """The namespaces with a pod ``peer`` may match (T05); None: cannot tell, any."""
    inv = ctx.inventory
    if peer.kind is AdminPeerKind.DOMAIN_NAMES:
        return set()  # never matches a pod
    if peer.kind is AdminPeerKind.NODES:
        return None  # hostNetwork pods of any namespace may stand for a node
    if peer.kind is AdminPeerKind.NETWORKS:
        found: set[str] = set()
        for pod in inv.pods:
            if not pod.ips:
                return None  # an address the matrix may give it is unknown here
            if any(
                ip in net for ip in pod.ips for net in peer.networks if ip.version == net.version
            ):
                found.add(pod.namespace)
        return found
    assert peer.namespace_selector is not None
    return {
        pod.namespace
        for pod in inv.pods
        if not pod.host_network
        and selector_matches(peer.namespace_selector, inv.namespace_labels(pod.namespace))
        and (peer.pod_selector is None or selector_matches(peer.pod_selector, pod.labels))
    }


def _candidates(
    ctx: LintContext,
    policy: ClusterNetworkPolicy,
    direction: Direction,
    rule: AdminRule,
    now: set[tuple[str, str]],
) -> set[tuple[str, str]]:
    """The connected tenant pairs (``now``) this rule could be what opens: the subject's
    namespace on its side, a namespace with a pod the rule's peers match on the other. A pair
    outside this set connects (or not) whatever the rule says."""
    subjects = {pod.namespace for pod in _subjects(ctx, policy)}
    peers: set[str] | None = set()
    for peer in rule.peers:
        found = _peer_namespaces(ctx, peer)
        if found is None or peers is None:
            peers = None
        else:
            peers |= found
    if direction is Direction.INGRESS:
        return {(a, b) for a, b in now if b in subjects and (peers is None or a in peers)}
    return {(a, b) for a, b in now if a in subjects and (peers is None or b in peers)}


def _only(inventory: Inventory, namespaces: set[str]) -> Inventory:
    """The inventory with the pods of ``namespaces`` only: which of those namespaces reach
    each other does not depend on other namespaces' pods (policies select their own
    namespace's pods, peers are evaluated against the two endpoints)."""
    pods = tuple(p for p in inventory.pods if p.namespace in namespaces)
    return dataclasses.replace(inventory, pods=pods)


def admin_accept_cross_tenant(ctx: LintContext) -> Iterator[Finding]:
    """KF017: an Admin Accept without which some tenant pair could not connect (needs pods).

    Cost: the reachability with every rule and with no Admin Accept once each (pairs connected
    either way no single rule opens), then per rule only when some remaining connected
    tenant pair has the rule's subject on one side and its peers on the other (otherwise the
    rule cannot be what opens it), computed over the pods of those pairs' namespaces only,
    and at most ``KF017_LIMIT`` times per run; rules past the limit are listed in one finding
    ("not checked") rather than silently passed."""
    inv = ctx.inventory
    accepts = [
        (policy, direction, rule)
        for policy in _tier(inv, Tier.ADMIN)
        for direction in _DIRECTIONS
        for rule in _rules(policy, direction)
        if rule.action is AdminAction.ACCEPT
    ]
    if not ctx.has_pods or not accepts:
        return
    now = _cross(inv, ctx)
    if now:
        # Pairs still connected with every Admin Accept removed stay connected with any one
        # removed (a pod pair allowed when every Accept is gone meets, without one Accept,
        # either another Accept first or the same non-Accept rules): no rule opens them.
        now -= _cross(_without_accepts(inv), ctx)
    if not now:
        return
    by = f"tenants (label {ctx.options.tenant_label})" if ctx.options.tenant_label else "namespaces"
    computed = 0
    skipped: list[tuple[ClusterNetworkPolicy, Direction, AdminRule]] = []
    for policy, direction, rule in accepts:
        candidates = _candidates(ctx, policy, direction, rule, now)
        if not candidates:
            continue
        if computed >= KF017_LIMIT:
            skipped.append((policy, direction, rule))
            continue
        computed += 1
        kept = {n for pair in candidates for n in pair}
        without = _without(_only(inv, kept), policy, direction, rule)
        opened = sorted(candidates - _cross(without, ctx))
        if not opened:
            continue
        shown = ", ".join(f"{a} -> {b}" for a, b in opened[:5])
        more = f" and {len(opened) - 5} more" if len(opened) > 5 else ""
        yield _finding(
            "KF017",
            policy,
            f"{_path(direction, rule)} (Accept) opens {len(opened)} path(s) between {by} that "
            f"are closed without it: {shown}{more}",
            path=_path(direction, rule),
        )
    if skipped:
        policy, direction, rule = skipped[0]
        names = ", ".join(_label(p, d, r) for p, d, r in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        yield _finding(
            "KF017",
            policy,
            f"not checked: {len(skipped)} Admin Accept rule(s) that may open paths between {by} "
            f"({names}{more}); KF017 computes the reachability at most {KF017_LIMIT} times per "
            "run, for the first rules in evaluation order",
            path=_path(direction, rule),
        )
