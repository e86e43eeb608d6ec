"""Laws of the admin tiers on random clusters: what ClusterNetworkPolicy may and may not change.

Why this module exists: the tier scenarios check chosen situations; these laws hold on clusters
nobody wrote by hand (``tests.property.strategies``): tiered policies that select nobody change
nothing, an Admin Accept/Deny overrides NetworkPolicy, and a Baseline rule applies only where
NetworkPolicy does not isolate.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import Query, inventories, queries

from kubefence.api import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    Labels,
    LabelSelector,
    Tier,
)
from kubefence.semantics import Decision, EndpointKind, Reason, SideDecision, decide

_EVERYONE = (
    AdminPeer(0, AdminPeerKind.NAMESPACES, namespace_selector=LabelSelector()),
    AdminPeer(
        1,
        AdminPeerKind.NETWORKS,
        networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
    ),
)


def _policy(
    name: str,
    tier: Tier,
    action: AdminAction,
    *,
    subject: LabelSelector | None = None,
    priority: int = 0,
) -> ClusterNetworkPolicy:
    rule = AdminRule(index=0, action=action, peers=_EVERYONE)
    return ClusterNetworkPolicy(
        name=name,
        kind="ClusterNetworkPolicy",
        tier=tier,
        priority=priority,
        namespace_selector=subject or LabelSelector(),
        ingress=(rule,),
        egress=(rule,),
    )


def _with(inventory: Inventory, *policies: ClusterNetworkPolicy) -> Inventory:
    return dataclasses.replace(inventory, admin_policies=tuple(policies))


def _ask(inventory: Inventory, query: Query) -> Decision:
    return decide(inventory, query.src, query.dst, port=query.port, protocol=query.protocol)


def _sides(decision: Decision) -> list[SideDecision]:
    return [s for s in (decision.egress, decision.ingress) if s is not None]


def _np_fields(side: SideDecision) -> tuple[object, ...]:
    return (side.applicable, side.isolated, side.allowed, side.isolating, side.admitted_by)


_NOBODY = LabelSelector(match_labels=Labels({"kubefence.test/absent": "x"}))


@given(st.data())
def test_tiered_policies_that_select_nobody_change_nothing(data: st.DataObject) -> None:
    """With tiers present but no subject, every verdict and every NetworkPolicy field of each
    side is what it is without any tiered policy (tiers with no effect == today's results)."""
    inventory = data.draw(inventories())
    query = data.draw(queries(inventory))
    before = _ask(inventory, query)
    tiered = _with(
        inventory,
        _policy("admin-deny", Tier.ADMIN, AdminAction.DENY, subject=_NOBODY),
        _policy("baseline-deny", Tier.BASELINE, AdminAction.DENY, subject=_NOBODY),
    )
    after = _ask(tiered, query)
    assert after.allowed == before.allowed
    assert after.reason == before.reason
    for old, new in zip(_sides(before), _sides(after), strict=True):
        assert _np_fields(old) == _np_fields(new)
        assert new.tier in (None, "NetworkPolicy", "Default")
        assert old.tier is None


def _pod_sides(decision: Decision) -> list[SideDecision]:
    """Sides of a pod-to-pod decision by policies, where a tier subject meets a pod peer."""
    if decision.reason is not Reason.POLICIES:
        return []
    kinds = (decision.source.kind, decision.destination.kind)
    if kinds != (EndpointKind.POD, EndpointKind.POD):
        return []
    return [s for s in _sides(decision) if s.applicable]


@given(st.data(), st.sampled_from([AdminAction.ACCEPT, AdminAction.DENY]))
def test_admin_accept_and_deny_override_network_policy(
    data: st.DataObject, action: AdminAction
) -> None:
    """An Admin rule matching every pod decides each side between pods, whatever the
    NetworkPolicies say (and a Baseline rule never gets a say)."""
    inventory = data.draw(inventories())
    query = data.draw(queries(inventory, externals=False))
    tiered = _with(
        inventory,
        _policy("admin", Tier.ADMIN, action),
        _policy("baseline", Tier.BASELINE, AdminAction.DENY),
    )
    decision = _ask(tiered, query)
    for side in _pod_sides(decision):
        assert side.tier == "Admin"
        assert side.allowed is (action is AdminAction.ACCEPT)
        assert side.tier_rule is not None
        assert side.tier_rule.policy == "admin"


@given(st.data(), st.sampled_from([AdminAction.ACCEPT, AdminAction.DENY]))
def test_baseline_applies_only_where_network_policy_does_not_isolate(
    data: st.DataObject, action: AdminAction
) -> None:
    """A Baseline rule matching everything: an isolated side keeps its NetworkPolicy verdict;
    a side no NetworkPolicy isolates gets the Baseline action. An Admin Pass changes neither."""
    inventory = data.draw(inventories())
    query = data.draw(queries(inventory, externals=False))
    before = _ask(inventory, query)
    tiered = _with(
        inventory,
        _policy("admin-pass", Tier.ADMIN, AdminAction.PASS),
        _policy("baseline", Tier.BASELINE, action),
    )
    after = _ask(tiered, query)
    old_sides = {s.direction: s for s in _pod_sides(before)}
    for side in _pod_sides(after):
        old = old_sides[side.direction]
        assert [p.policy for p in side.passed] == ["admin-pass"]
        if old.isolated:
            assert side.tier == "NetworkPolicy"
            assert side.allowed == old.allowed
        else:
            assert side.tier == "Baseline"
            assert side.allowed is (action is AdminAction.ACCEPT)
