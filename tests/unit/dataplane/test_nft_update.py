"""``ruleset_update``: which changes become a small transaction, and what it contains.

Whether the kernel ends up with the same table is checked as root in
tests/netns/test_nft_update_netns.py; these tests pin the text without ``nft``, and hold the
plan comparison (``table_change``) to the rendered text: a block is replaced exactly when its
text changes.
"""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.dataplane.test_nft_plan import (
    INGRESS,
    _clusters,
    addresses_of,
    namespace,
    pod,
    policy,
    sel,
)

from kubefence.api import Inventory, Peer, Rule
from kubefence.dataplane.nft import (
    RulesetPlan,
    plan_ruleset,
    render_plan,
    ruleset_update,
    table_change,
)
from kubefence.semantics import Settings

NODE = (ipaddress.ip_address("198.18.255.254"),)


def _inventory(*, allowed: str = "db", web_label: str = "web", more: bool = False) -> Inventory:
    extra = [policy("a/more", sel(app="web"), INGRESS, ingress=[Rule()])] if more else []
    return Inventory.of(
        namespaces=[namespace("a")],
        pods=[
            pod("a/w", "198.18.0.1", labels={"app": "web"}),
            pod("a/d", "198.18.0.2", labels={"app": "db"}),
            pod("a/c", "198.18.0.3", labels={"app": "cache"}),
        ],
        policies=[
            policy(
                "a/allow",
                sel(app=web_label),
                INGRESS,
                ingress=[Rule(peers=(Peer(pod_selector=sel(app=allowed)),))],
            ),
            *extra,
        ],
    )


def _plan(inventory: Inventory, settings_: Settings | None = None) -> RulesetPlan:
    return plan_ruleset(
        inventory,
        addresses=addresses_of(inventory),
        node_addresses=NODE,
        **({"settings": settings_} if settings_ else {}),
    )


def test_identical_plans_need_no_transaction() -> None:
    """The same plan twice, or an equal one planned again: the update is empty (nothing to
    send to nft)."""
    plan = _plan(_inventory())
    assert ruleset_update(plan, plan) == ""
    assert ruleset_update(plan, _plan(_inventory())) == ""


def test_s11_changed_peer_replaces_only_the_atom_map() -> None:
    """A policy whose peer now selects other pods: the pods change atoms, so the atom map is
    flushed and declared again; class sets, chains and hook chains are not touched."""
    update = ruleset_update(_plan(_inventory()), _plan(_inventory(allowed="cache")))
    assert update
    assert "flush map inet kubefence atoms_v4" in update
    assert "flush set" not in update
    assert "chain" not in update
    assert update.count("table inet kubefence {") == 1
    assert "delete table" not in update


def test_s01_selected_pods_change_refills_only_the_dispatch_map() -> None:
    """A policy now selecting another pod: only the ingress dispatch map changes (the pod
    joins the class's chain), nothing else is sent."""
    update = ruleset_update(_plan(_inventory()), _plan(_inventory(web_label="cache")))
    assert update
    assert "flush map inet kubefence ingress_v4" in update
    assert 'comment "a/c" : jump in_c1' in update
    assert "chain" not in update
    assert "atoms" not in update


def test_s04_class_with_another_policy_replaces_its_chain_after_flushing_dispatch() -> None:
    """A second policy selecting the same pods changes the class's chain (its comment names
    the policies, and nft cannot edit a comment): the ingress dispatch maps, whose elements
    jump to it, are flushed before the chain is deleted and declared after it is added."""
    update = ruleset_update(_plan(_inventory()), _plan(_inventory(more=True)))
    assert update
    lines = update.splitlines()
    assert lines.index("flush map inet kubefence ingress_v4") < lines.index(
        "delete chain inet kubefence in_c1"
    )
    assert lines.index("flush chain inet kubefence in_c1") < lines.index(
        "delete chain inet kubefence in_c1"
    )
    assert lines.index("\tchain in_c1 {") < lines.index("\tmap ingress_v4 {")
    assert "a/more" in update
    assert "egress" not in update


def test_s24_a_change_of_hook_chains_or_node_sets_is_a_whole_install() -> None:
    """Turning S24's node exemption off adds an output chain and removes the node sets:
    beyond what an update replaces, so there is none (the caller installs the whole text)."""
    before = _plan(_inventory())
    assert ruleset_update(before, _plan(_inventory(), Settings(allow_from_node=False))) is None
    without_node = plan_ruleset(_inventory(), addresses=addresses_of(_inventory()))
    assert ruleset_update(before, without_node) is None


def test_s10_a_second_rule_allowing_the_same_changes_only_comments() -> None:
    """Another rule allowing what the first already allows changes the class comment (rule
    count) and the legend, nothing the kernel holds: no transaction."""
    before = _inventory()
    allow = Rule(peers=(Peer(pod_selector=sel(app="db")),))
    after = Inventory.of(
        namespaces=before.namespaces,
        pods=before.pods,
        policies=[policy("a/allow", sel(app="web"), INGRESS, ingress=[allow, allow])],
    )
    assert render_plan(_plan(before)) != render_plan(_plan(after))
    assert ruleset_update(_plan(before), _plan(after)) == ""


_BLOCK = re.compile(r"^\t(set|map|chain) (\S+) \{\n.*?^\t\}$", re.MULTILINE | re.DOTALL)
_CLASS = re.compile(r"^(eg|in)_c\d+$")


def _blocks_and_rest(text: str) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The rendered text cut into the blocks an update may replace (the maps, the class sets
    and chains) and every other line nft reads (hook chains, node sets, the table)."""
    blocks = {}
    rest = text
    for found in _BLOCK.finditer(text):
        kind, name = found.group(1), found.group(2)
        if kind == "map" or _CLASS.match(name):
            blocks[(kind, name)] = found.group(0)
            rest = rest.replace(found.group(0), "")
    return blocks, [line for line in rest.splitlines() if line.strip() and "#" not in line]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60, deadline=None)
@given(st.tuples(_clusters(), _clusters()), st.booleans())
def test_plan_comparison_names_exactly_the_blocks_whose_text_changes(
    clusters: tuple[Inventory, Inventory], node: bool
) -> None:
    """Random pairs of clusters: the plan comparison finds a change of hook chains or node
    sets exactly when the rest of the text differs, and otherwise names as changed, added
    and removed exactly the blocks whose rendered text did so."""
    nodes = NODE if node else ()
    first, second = (
        plan_ruleset(c, addresses=addresses_of(c), node_addresses=nodes if i else NODE)
        for i, c in enumerate(clusters)
    )
    old, old_rest = _blocks_and_rest(render_plan(first))
    new, new_rest = _blocks_and_rest(render_plan(second))
    change = table_change(first, second)
    assert (change is None) == (old_rest != new_rest)
    if change is None:
        return

    def names(kind: str, keys: set[tuple[str, str]]) -> frozenset[str]:
        return frozenset(name for k, name in keys if k == kind)

    both = {k for k in old.keys() & new.keys() if old[k] != new[k]}
    assert change.maps == names("map", both)
    assert change.sets == names("set", both)
    assert change.chains == names("chain", both)
    assert change.added_sets == names("set", new.keys() - old.keys())
    assert change.removed_sets == names("set", old.keys() - new.keys())
    assert change.added_chains == names("chain", new.keys() - old.keys())
    assert change.removed_chains == names("chain", old.keys() - new.keys())
    assert bool(change) == (old != new)
