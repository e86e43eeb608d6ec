"""Sandbox topology planning: deterministic, stable across apply, inside the allowed ranges."""

from __future__ import annotations

import ipaddress

import pytest
from tests.builders import pod_model as _pod

from kubefence.dataplane.netns import check_name
from kubefence.dataplane.netns._slots import NODE_V4, owned_netns_pattern, plan_slots
from kubefence.errors import InputError

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def test_fresh_pods_get_sorted_indices_and_lowest_addresses() -> None:
    """Pods are numbered in namespace/name order and take 198.18.0.2 upwards."""
    slots = plan_slots("demo", [_pod("b/x"), _pod("a/y"), _pod("a/x")])
    assert list(slots) == ["a/x", "a/y", "b/x"]
    assert [s.index for s in slots.values()] == [0, 1, 2]
    assert [s.netns for s in slots.values()] == ["kf-demo-0", "kf-demo-1", "kf-demo-2"]
    assert [str(s.ipv4) for s in slots.values()] == ["198.18.0.2", "198.18.0.3", "198.18.0.4"]
    assert slots["a/x"].ipv6 == V6("fd00:6b66::c612:2")
    assert all(len(s.node_if) <= 15 for s in slots.values())


def test_manifest_pod_ip_in_range_is_kept_and_never_reused() -> None:
    """A podIP inside 198.18.0.0/15 is kept; auto-assignment skips it."""
    slots = plan_slots("demo", [_pod("a/auto"), _pod("a/fixed", "198.18.0.2", "fd00::7")])
    assert slots["a/fixed"].ipv4 == V4("198.18.0.2")
    assert slots["a/fixed"].ipv6 == V6("fd00::7")
    assert slots["a/auto"].ipv4 == V4("198.18.0.3")


def test_manifest_pod_ip_outside_range_is_replaced() -> None:
    """A podIP outside the sandbox ranges (10.0.0.5) is not used."""
    slots = plan_slots("demo", [_pod("a/p", "10.0.0.5", "2001:db8::5")])
    assert slots["a/p"].ipv4 == V4("198.18.0.2")
    assert slots["a/p"].ipv6 in ipaddress.IPv6Network("fd00::/8")


def test_duplicate_manifest_ip_goes_to_first_pod_only() -> None:
    """Two pods claiming one address: the first by name keeps it, the other gets a fresh one."""
    slots = plan_slots("demo", [_pod("a/two", "198.18.5.5"), _pod("a/one", "198.18.5.5")])
    assert slots["a/one"].ipv4 == V4("198.18.5.5")
    assert slots["a/two"].ipv4 != V4("198.18.5.5")
    assert len({s.ipv6 for s in slots.values()}) == 2


def test_node_address_is_never_given_to_a_pod() -> None:
    """The node's own address cannot be claimed by a manifest podIP."""
    slots = plan_slots("demo", [_pod("a/p", str(NODE_V4))])
    assert slots["a/p"].ipv4 != NODE_V4


def test_s23_host_network_pods_get_no_slot() -> None:
    """hostNetwork pods act as the node (S23) and are not run in a namespace of their own."""
    slots = plan_slots("demo", [_pod("a/h", host_network=True), _pod("a/p")])
    assert list(slots) == ["a/p"]


def test_previous_slots_are_stable_and_new_pods_append() -> None:
    """On apply, remaining pods keep namespace and address; new ones take the next index."""
    first = plan_slots("demo", [_pod("a/a"), _pod("a/b"), _pod("a/c")])
    second = plan_slots("demo", [_pod("a/a"), _pod("a/c"), _pod("a/0new")], previous=first)
    assert second["a/a"] == first["a/a"]
    assert second["a/c"] == first["a/c"]
    assert "a/b" not in second
    assert second["a/0new"].index == 3
    assert second["a/0new"].ipv4 not in {first["a/a"].ipv4, first["a/c"].ipv4}


def test_plan_is_deterministic() -> None:
    """The same pods in any order give the same plan."""
    pods = [_pod(f"ns/p{i}") for i in range(20)]
    assert plan_slots("x", pods) == plan_slots("x", list(reversed(pods)))


@pytest.mark.parametrize("name", ["default", "a", "ci-1", "x" * 20])
def test_valid_sandbox_names(name: str) -> None:
    """Short DNS-label-like names are accepted."""
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "Upper", "a_b", "x" * 21, "a/b"])
def test_invalid_sandbox_names_are_input_errors(name: str) -> None:
    """Names that would make bad namespace or path names are rejected (exit 2)."""
    with pytest.raises(InputError):
        check_name(name)


def test_owned_namespaces_pattern_does_not_catch_other_sandboxes() -> None:
    """Sandbox 'a' owns kf-a-node and kf-a-3, never kf-a-b-node (sandbox 'a-b')."""
    pattern = owned_netns_pattern("a")
    assert pattern.match("kf-a-node")
    assert pattern.match("kf-a-12")
    assert not pattern.match("kf-a-b-node")
    assert not pattern.match("kf-a-b-1")
    assert not pattern.match("kf-ab-1")
