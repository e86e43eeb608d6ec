"""``ruleset_update``: which changes become a small transaction, and what it contains.

Whether the kernel ends up with the same table is checked as root in
tests/netns/test_nft_update_netns.py; these tests pin the text without ``nft``.
"""

from __future__ import annotations

import ipaddress

from tests.unit.dataplane.test_nft_plan import (
    INGRESS,
    addresses_of,
    namespace,
    pod,
    policy,
    sel,
)

from kubefence.api import Inventory, Peer, Rule
from kubefence.dataplane.nft import render_ruleset, ruleset_update
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


def _text(inventory: Inventory, settings_: Settings | None = None) -> str:
    return render_ruleset(
        inventory,
        addresses=addresses_of(inventory),
        node_addresses=NODE,
        **({"settings": settings_} if settings_ else {}),
    )


def test_identical_texts_need_no_transaction() -> None:
    """The same text twice: the update is empty (nothing to send to nft)."""
    text = _text(_inventory())
    assert ruleset_update(text, text) == ""


def test_s11_changed_peer_replaces_only_the_atom_map() -> None:
    """A policy whose peer now selects other pods: the pods change atoms, so the atom map is
    flushed and declared again; class sets, chains and hook chains are not touched."""
    update = ruleset_update(_text(_inventory()), _text(_inventory(allowed="cache")))
    assert update
    assert "flush map inet kubefence atoms_v4" in update
    assert "flush set" not in update
    assert "chain" not in update
    assert update.count("table inet kubefence {") == 1
    assert "delete table" not in update


def test_s01_selected_pods_change_refills_only_the_dispatch_map() -> None:
    """A policy now selecting another pod: only the ingress dispatch map changes (the pod
    joins the class's chain), nothing else is sent."""
    update = ruleset_update(_text(_inventory()), _text(_inventory(web_label="cache")))
    assert update
    assert "flush map inet kubefence ingress_v4" in update
    assert 'comment "a/c" : jump in_c1' in update
    assert "chain" not in update
    assert "atoms" not in update


def test_s04_class_with_another_policy_replaces_its_chain_after_flushing_dispatch() -> None:
    """A second policy selecting the same pods changes the class's chain (its comment names
    the policies, and nft cannot edit a comment): the ingress dispatch maps, whose elements
    jump to it, are flushed before the chain is deleted and declared after it is added."""
    update = ruleset_update(_text(_inventory()), _text(_inventory(more=True)))
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
    before = _text(_inventory())
    assert ruleset_update(before, _text(_inventory(), Settings(allow_from_node=False))) is None
    without_node = render_ruleset(_inventory(), addresses=addresses_of(_inventory()))
    assert ruleset_update(before, without_node) is None


def test_text_that_is_not_a_rendered_ruleset_has_no_update() -> None:
    """An unterminated block (not text this package rendered) gives no update."""
    assert ruleset_update("table inet kubefence {\n\tchain in_c1 {\n", _text(_inventory())) is None
