"""Lint checks on the admin tiers (ClusterNetworkPolicy and its v1alpha1 forebears): KF014 ties,
KF015 shadowed rules, KF016 Baseline denies NetworkPolicy always overrides, KF017 Admin Accepts
that open paths between tenants (in ``_tiers_cross``), KF018 Pass rules with nothing after
them.

Why this module exists: tiered policies are ordered rule lists, so their typical mistakes are
about order and about the tiers around them (a rule behind a broader one, a Pass into nothing, a
Baseline guarantee every tenant undoes), not about single fields. KF015 compares rules as
written (a selector covers another when it is empty or equal); KF016 and KF018 read the pods of
the input and run only when it has pods; KF017 compares the engine's namespace reachability
with and without the rule (``build_report``, the audit's own matrix, which evaluates tiers),
only for rules that could open a connected tenant pair, over those pairs' pods, and at most
``KF017_LIMIT`` times per run (the rest named in one "not checked" finding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kubefence.api import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    LabelSelector,
    Pod,
    Tier,
)
from kubefence.audit._findings import RULES_BY_ID, Finding
from kubefence.audit._lint._context import LintContext
from kubefence.semantics import Direction, admin_selects, isolating_policies

__all__ = [
    "baseline_deny_overridden",
    "baseline_isolates",
    "pass_to_nothing",
    "priority_tie",
    "shadowed_tier_rule",
]

_DIRECTIONS = (Direction.INGRESS, Direction.EGRESS)


def _finding(rule: str, policy: ClusterNetworkPolicy, message: str, *, path: str = "") -> Finding:
    meta = RULES_BY_ID[rule]
    origin = policy.origin
    return Finding(
        rule=rule,
        severity=meta.severity,
        message=message,
        fix=meta.fix,
        object=f"{policy.kind} {policy.name}",
        path=path,
        file=origin.file if origin else None,
        line=policy.line_of(path) if path else (origin.line if origin else None),
    )


def _rules(policy: ClusterNetworkPolicy, direction: Direction) -> tuple[AdminRule, ...]:
    return policy.ingress if direction is Direction.INGRESS else policy.egress


def _path(direction: Direction, rule: AdminRule) -> str:
    return f"spec.{direction.value}[{rule.index}]"


def _label(policy: ClusterNetworkPolicy, direction: Direction, rule: AdminRule) -> str:
    name = f" ({rule.name})" if rule.name else ""
    return f"{policy.name} {_path(direction, rule)}{name}"


def _tier(inventory: Inventory, tier: Tier) -> list[ClusterNetworkPolicy]:
    """The policies of ``tier`` in evaluation order (T02)."""
    return sorted((p for p in inventory.admin_policies if p.tier is tier), key=lambda p: p.order)


def _subjects(ctx: LintContext, policy: ClusterNetworkPolicy) -> list[Pod]:
    inv = ctx.inventory
    return [p for p in inv.pods if admin_selects(policy, p, inv.namespace_labels(p.namespace))]


# --- KF014 ------------------------------------------------------------------------------------


def _disjoint(a: LabelSelector | None, b: LabelSelector | None) -> bool:
    """Can no label set match both? (Told from matchLabels: one key, two values.)"""
    if a is None or b is None:
        return False
    theirs = b.match_labels
    return any(k in theirs and theirs[k] != v for k, v in a.match_labels.items())


def _apart(a: ClusterNetworkPolicy, b: ClusterNetworkPolicy) -> bool:
    """Do the two policies' subjects never share a pod? Then their order does not matter."""
    return _disjoint(a.namespace_selector, b.namespace_selector) or _disjoint(
        a.pod_selector, b.pod_selector
    )


def priority_tie(ctx: LintContext) -> Iterator[Finding]:
    """KF014: two policies of one tier with the same priority whose subjects may share a pod
    (reported at the later one, once, naming the first it ties with)."""
    for tier in Tier:
        ordered = _tier(ctx.inventory, tier)
        for i, policy in enumerate(ordered):
            tied = [
                b
                for b in ordered[:i]
                if policy.priority is not None
                and b.priority == policy.priority
                and not _apart(b, policy)
            ]
            if not tied:
                continue
            before = tied[-1]
            yield _finding(
                "KF014",
                policy,
                f"{tier.value} policies {before.name} and {policy.name} both have priority "
                f"{policy.priority}: the order is undefined upstream; kubefence evaluates "
                f"{before.name} first (by name)",
                path="spec.priority",
            )


# --- KF015 ------------------------------------------------------------------------------------


def _covers_selector(broad: LabelSelector | None, narrow: LabelSelector | None) -> bool:
    """Does ``broad`` select at least what ``narrow`` does (None: everything)?"""
    if broad is None or broad.is_empty:
        return True
    return narrow is not None and broad == narrow


def _covers_subject(broad: ClusterNetworkPolicy, narrow: ClusterNetworkPolicy) -> bool:
    return _covers_selector(broad.namespace_selector, narrow.namespace_selector) and (
        _covers_selector(broad.pod_selector, narrow.pod_selector)
    )


def _covers_peer(broad: AdminPeer, narrow: AdminPeer) -> bool:
    kind = broad.kind
    if kind is AdminPeerKind.NAMESPACES:
        return narrow.kind in (AdminPeerKind.NAMESPACES, AdminPeerKind.PODS) and (
            _covers_selector(broad.namespace_selector, narrow.namespace_selector)
        )
    if kind is AdminPeerKind.PODS:
        same_kind = narrow.kind in (AdminPeerKind.NAMESPACES, AdminPeerKind.PODS)
        return (
            same_kind
            and _covers_selector(broad.namespace_selector, narrow.namespace_selector)
            and _covers_selector(broad.pod_selector, narrow.pod_selector)
        )
    if kind is not narrow.kind:
        return False
    if kind is AdminPeerKind.NETWORKS:
        return all(
            any(n.version == b.version and n.subnet_of(b) for b in broad.networks)  # type: ignore[arg-type]
            for n in narrow.networks
        )
    if kind is AdminPeerKind.NODES:
        return _covers_selector(broad.node_selector, narrow.node_selector)
    return set(narrow.domain_names) <= set(broad.domain_names)


def _covers_port(broad: AdminPort, narrow: AdminPort) -> bool:
    if broad.name is not None or narrow.name is not None:
        return broad.name == narrow.name
    if broad.protocol is not narrow.protocol:
        return False
    if None in (broad.low, broad.high, narrow.low, narrow.high):
        return False
    b_low, b_high, n_low, n_high = (
        broad.low or 0,
        broad.high or 0,
        narrow.low or 0,
        narrow.high or 0,
    )
    return b_low <= n_low and n_high <= b_high and n_low <= n_high


def _covers_rule(broad: AdminRule, narrow: AdminRule) -> bool:
    peers = all(any(_covers_peer(b, n) for b in broad.peers) for n in narrow.peers)
    if not broad.ports:
        return peers
    if not narrow.ports:
        return False
    return peers and all(any(_covers_port(b, n) for b in broad.ports) for n in narrow.ports)


def shadowed_tier_rule(ctx: LintContext) -> Iterator[Finding]:
    """KF015: a rule every connection of which an earlier rule of its tier matches first."""
    for tier in Tier:
        ordered = _tier(ctx.inventory, tier)
        for direction in _DIRECTIONS:
            earlier: list[tuple[ClusterNetworkPolicy, AdminRule]] = []
            for policy in ordered:
                for rule in _rules(policy, direction):
                    for first, broad in earlier:
                        if (first is policy or _covers_subject(first, policy)) and _covers_rule(
                            broad, rule
                        ):
                            yield _finding(
                                "KF015",
                                policy,
                                f"{_path(direction, rule)} ({rule.action.value}) never decides: "
                                f"every connection it matches is matched first by "
                                f"{_label(first, direction, broad)} ({broad.action.value})",
                                path=_path(direction, rule),
                            )
                            break
                    earlier.append((policy, rule))


# --- KF016 ------------------------------------------------------------------------------------


def baseline_deny_overridden(ctx: LintContext) -> Iterator[Finding]:
    """KF016: a Baseline Deny whose every subject pod NetworkPolicy isolates (needs pods)."""
    if not ctx.has_pods:
        return
    settings = ctx.options.settings
    for policy in _tier(ctx.inventory, Tier.BASELINE):
        subjects = _subjects(ctx, policy)
        if not subjects:
            continue
        for direction in _DIRECTIONS:
            denies = [r for r in _rules(policy, direction) if r.action is AdminAction.DENY]
            if not denies:
                continue
            if not all(
                isolating_policies(
                    ctx.index.policies_in(p.namespace), p, direction, settings=settings
                )
                for p in subjects
            ):
                continue
            spaces = sorted({p.namespace for p in subjects})
            for rule in denies:
                yield _finding(
                    "KF016",
                    policy,
                    f"{_path(direction, rule)} (Deny) never applies: all {len(subjects)} pod(s) "
                    f"it selects (namespaces {', '.join(spaces)}) are isolated for "
                    f"{direction.value} by NetworkPolicies, which decide first",
                    path=_path(direction, rule),
                )


# --- KF018 ------------------------------------------------------------------------------------


def _decided_later(ctx: LintContext, pod: Pod, direction: Direction) -> bool:
    """Does NetworkPolicy or a Baseline rule have a say on ``pod`` in ``direction``?"""
    policies = ctx.index.policies_in(pod.namespace)
    if isolating_policies(policies, pod, direction, settings=ctx.options.settings):
        return True
    labels = ctx.inventory.namespace_labels(pod.namespace)
    return any(
        _rules(b, direction) and admin_selects(b, pod, labels)
        for b in _tier(ctx.inventory, Tier.BASELINE)
    )


def pass_to_nothing(ctx: LintContext) -> Iterator[Finding]:
    """KF018: a Pass after which nothing decides: every Baseline Pass; an Admin Pass when no
    subject pod is isolated by NetworkPolicy or selected by a Baseline rule (needs pods, or an
    input with neither NetworkPolicy nor Baseline rules in that direction)."""
    inv = ctx.inventory
    for policy in sorted(inv.admin_policies, key=lambda p: (p.tier != Tier.ADMIN, p.order)):
        subjects: list[Pod] | None = None
        for direction in _DIRECTIONS:
            passes = [r for r in _rules(policy, direction) if r.action is AdminAction.PASS]
            if not passes:
                continue
            if policy.tier is Tier.BASELINE:
                why = "it is in the Baseline tier, after which only the default (allow) remains"
            else:
                if ctx.has_pods:
                    if subjects is None:
                        subjects = _subjects(ctx, policy)
                    if not subjects or any(_decided_later(ctx, p, direction) for p in subjects):
                        continue
                    why = (
                        f"none of the {len(subjects)} pod(s) it selects is isolated for "
                        f"{direction.value} by a NetworkPolicy or selected by a Baseline rule"
                    )
                else:
                    later = any(_rules(b, direction) for b in _tier(inv, Tier.BASELINE))
                    if later or inv.policies:
                        continue
                    why = f"the input has no NetworkPolicy and no Baseline {direction.value} rule"
            for rule in passes:
                yield _finding(
                    "KF018",
                    policy,
                    f"{_path(direction, rule)} (Pass) allows like an Accept: {why}",
                    path=_path(direction, rule),
                )


# --- KF009/KF010 helper -----------------------------------------------------------------------


def baseline_isolates(
    inventory: Inventory, namespace: str, pods: Sequence[Pod], direction: Direction
) -> ClusterNetworkPolicy | None:
    """A Baseline policy that selects every pod of ``namespace`` (every pod there, or every pod
    of the input's pods there) and has a Deny rule for ``direction``: the platform's default
    deny for the namespace, which makes a NetworkPolicy default deny unnecessary."""
    labels = inventory.namespace_labels(namespace)
    for policy in _tier(inventory, Tier.BASELINE):
        if not any(r.action is AdminAction.DENY for r in _rules(policy, direction)):
            continue
        if policy.pod_selector is None or policy.pod_selector.is_empty:
            probe = Pod(namespace=namespace, name="-")
            if admin_selects(policy, probe, labels):
                return policy
        elif pods and all(admin_selects(policy, p, labels) for p in pods):
            return policy
    return None
