"""The smaller update transaction with admin tiers: it leaves the kernel with the table the
whole text gives (root, throwaway namespaces).

Why this module exists: ``ruleset_update`` replaces only the tier maps (dispatch and class
verdict maps) and chains that differ (``_update``); these tests load plan A whole, apply the
update to plan B, and compare the kernel's table block by block with B loaded whole: for a
change of one ClusterNetworkPolicy's action (the update touches only the verdict maps of its
classes), with the flow log's chains, and for random sequences of tiered clusters.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.golden.test_golden import load_case, sandbox_addresses
from tests.netns.test_nft_update_netns import _check_transition, namespaces
from tests.unit.dataplane.test_nft_plan import addresses_of
from tests.unit.dataplane.test_nft_tiers import tiered_clusters

from kubefence.api import AdminAction, Inventory
from kubefence.dataplane.nft import plan_ruleset, ruleset_update

pytestmark = pytest.mark.netns

__all__ = ["namespaces"]  # the fixture, shared with test_nft_update_netns


def _flip_first_rule(inventory: Inventory, name: str) -> Inventory:
    policies = []
    for policy in inventory.admin_policies:
        if policy.name == name:
            rule = policy.ingress[0]
            flipped = (
                AdminAction.DENY if rule.action is not AdminAction.DENY else AdminAction.ACCEPT
            )
            policy = dataclasses.replace(
                policy, ingress=(dataclasses.replace(rule, action=flipped), *policy.ingress[1:])
            )
        policies.append(policy)
    return dataclasses.replace(inventory, admin_policies=tuple(policies))


def test_one_cnp_action_change_is_a_small_update(namespaces: tuple[str, str]) -> None:
    """Flipping one rule's action changes the verdict maps of the classes its policy selects
    only: not their chains, not the whole table."""
    inventory = load_case("tiers-multi-tenant")
    addresses = sandbox_addresses(inventory)
    before = plan_ruleset(inventory, addresses=addresses)
    after = plan_ruleset(_flip_first_rule(inventory, "tenant-isolation"), addresses=addresses)
    update = ruleset_update(before, after)
    assert update, "expected a non-empty update"
    assert "delete table" not in update
    assert "flush map inet kubefence bl_in_m1" in update
    assert "chain" not in update  # the class chain still does its one lookup
    assert "ad_eg" not in update  # the Admin tier is untouched
    assert _check_transition(namespaces, before, after)
    assert _check_transition(namespaces, after, before)


def test_tier_goldens_update_to_the_same_kernel_table(namespaces: tuple[str, str]) -> None:
    plans = [
        plan_ruleset(load_case(c), addresses=sandbox_addresses(load_case(c)))
        for c in ("tiers-multi-tenant", "tiers-actions-and-order")
    ]
    for a, b in itertools.permutations(plans, 2):
        assert _check_transition(namespaces, a, b)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=25, deadline=None)
@given(st.lists(tiered_clusters(), min_size=2, max_size=3))
def test_random_tiered_changes_update_to_the_same_kernel_table(
    namespaces: tuple[str, str], clusters: list[Inventory]
) -> None:
    """Random tiered clusters one after the other: every update that is offered leaves the
    kernel with the whole text's table."""
    plans = [plan_ruleset(c, addresses=addresses_of(c)) for c in clusters]
    for before, after in itertools.pairwise(plans):
        _check_transition(namespaces, before, after)


def test_flow_log_tier_changes_update_to_the_same_kernel_table(
    namespaces: tuple[str, str],
) -> None:
    """With the flow log, Deny elements go to per-step log chains: an action flip that adds
    or removes such a chain (and the verdict maps that jump to it) updates to the table the
    whole text gives, both ways, and across the two golden cases."""
    from kubefence.dataplane.nft import FlowLog

    inventory = load_case("tiers-multi-tenant")
    addresses = sandbox_addresses(inventory)
    flipped = _flip_first_rule(inventory, "tenant-isolation")
    other = load_case("tiers-actions-and-order")
    plans = [
        plan_ruleset(inventory, addresses=addresses, flow_log=FlowLog()),
        plan_ruleset(flipped, addresses=addresses, flow_log=FlowLog()),
        plan_ruleset(other, addresses=sandbox_addresses(other), flow_log=FlowLog()),
    ]
    update = ruleset_update(plans[0], plans[1])
    assert update
    assert "chain bl_in_s" in update
    for a, b in itertools.permutations(plans, 2):
        assert _check_transition(namespaces, a, b)
