"""Fail closed for pods not planned yet: the held pod CIDRs and the known pod addresses.

Why this module exists: an agent learns of a new pod from the API server some time after the
pod has an address; until it has planned the pod, packets from or to that address must not
pass unenforced. ``plan_ruleset(held=...)`` drops forwarded packets whose source or
destination is in the node's pod CIDRs but is no planned local pod; these tests check the
plan's verdicts, the text, and that a new pod is an update of the ``known`` sets only.
"""

from __future__ import annotations

import ipaddress

from tests.unit.dataplane.test_nft_plan import INGRESS, addresses_of, namespace, pod, policy, sel

from kubefence.api import Inventory, Rule
from kubefence.dataplane.nft import RulesetPlan, plan_ruleset, render_plan, ruleset_update
from kubefence.dataplane.nft._render import HOLD_COMMENT

HELD = (ipaddress.ip_network("198.18.0.0/24"), ipaddress.ip_network("fd00:6b66::/64"))
ip = ipaddress.ip_address


def _inventory(*, new_pod: bool = False) -> Inventory:
    pods = [
        pod("a/w", "198.18.0.1", "fd00:6b66::1", labels={"app": "web"}),
        pod("a/d", "198.18.0.2", labels={"app": "db"}),
        pod("b/remote", "198.18.1.7", labels={"app": "db"}),
    ]
    if new_pod:
        pods.append(pod("a/n", "198.18.0.9", "fd00:6b66::9", labels={"app": "db"}))
    return Inventory.of(
        namespaces=[namespace("a"), namespace("b")],
        pods=pods,
        policies=[policy("a/open", sel(app="web"), INGRESS, ingress=[Rule()])],
    )


def _plan(inventory: Inventory, *, held: bool = True) -> RulesetPlan:
    local = {p.key for p in inventory.pods if p.namespace == "a"}
    return plan_ruleset(
        inventory, addresses=addresses_of(inventory), local=local, held=HELD if held else ()
    )


def test_an_address_of_the_pod_cidr_no_planned_pod_has_is_dropped_both_ways() -> None:
    plan = _plan(_inventory())
    assert [str(a) for a in plan.known] == ["198.18.0.1", "198.18.0.2", "fd00:6b66::1"]
    for unknown, planned in (("198.18.0.9", "198.18.0.1"), ("fd00:6b66::9", "fd00:6b66::1")):
        assert not plan.verdict(ip(unknown), ip(planned), protocol=6, port=80)
        assert not plan.verdict(ip(planned), ip(unknown), protocol=6, port=80)
    # Planned pods, remote pods and addresses outside the node's CIDRs are as without a hold.
    unheld = _plan(_inventory(), held=False)
    for src, dst in (("198.18.0.2", "198.18.0.1"), ("198.18.1.7", "198.18.0.2"),
                     ("203.0.113.5", "198.18.0.1")):  # fmt: skip
        assert plan.verdict(ip(src), ip(dst), protocol=6, port=80) == unheld.verdict(
            ip(src), ip(dst), protocol=6, port=80
        )


def test_the_text_without_held_cidrs_has_no_hold_and_with_them_drops_in_forward() -> None:
    assert HOLD_COMMENT not in render_plan(_plan(_inventory(), held=False))
    text = render_plan(_plan(_inventory()))
    forward = text[text.index("chain forward") :]
    for rule in (
        f'ip saddr @held_v4 ip saddr != @known_v4 drop comment "{HOLD_COMMENT}"',
        f'ip6 daddr @held_v6 ip6 daddr != @known_v6 drop comment "{HOLD_COMMENT}"',
    ):
        assert rule in forward
    assert forward.index("@held_v4") < forward.index("vmap @egress_v4")  # before any accept
    assert "198.18.0.0/24" in text
    assert "fd00:6b66::1" in text


def test_a_new_pod_is_an_update_of_the_known_sets_and_the_hold_cidrs_a_whole_install() -> None:
    before, after = _plan(_inventory()), _plan(_inventory(new_pod=True))
    assert after.verdict(ip("198.18.0.9"), ip("198.18.0.1"), protocol=6, port=80)
    update = ruleset_update(before, after)
    assert update is not None
    assert "flush set inet kubefence known_v4" in update
    assert "flush set inet kubefence known_v6" in update
    assert "198.18.0.9" in update
    assert ruleset_update(before, _plan(_inventory(), held=False)) is None
    assert ruleset_update(before, _plan(_inventory())) == ""


def test_a_pod_not_planned_yet_cannot_reach_its_node_either() -> None:
    """Its packets to the node's own addresses meet ``input``, not ``forward`` (S05: its
    egress applies there), so the hold drops them in ``input`` too, by source only."""
    plan = _plan(_inventory())
    node = ip("198.19.255.254")
    assert not plan.verdict(ip("198.18.0.9"), node, protocol=6, port=80)
    assert plan.verdict(ip("198.18.0.1"), node, protocol=6, port=80)
    text = render_plan(plan)
    start = text.index("chain input")
    block = text[start : text.index("\n\t}", start)]
    for version, family in ((4, "ip"), (6, "ip6")):
        rule = (
            f"{family} saddr @held_v{version} {family} saddr != @known_v{version} "
            f'fib saddr type != local drop comment "{HOLD_COMMENT}"'
        )
        assert rule in block
    assert "daddr @held" not in block
    assert block.index("nd-neighbor-solicit") < block.index("@held_v6") < block.index("vmap")
    assert HOLD_COMMENT not in render_plan(_plan(_inventory(), held=False))
