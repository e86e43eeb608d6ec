"""The node's record (pods by UID) and the pure address plan of cluster nodes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from kubefence.dataplane.netns import NodeRecord, PodRecord, ProcessRecord, load_record, save_record
from kubefence.dataplane.netns._nodes import (
    cluster_netns_pattern,
    node_from_name,
    plan_nodes,
    pod_slot,
)
from kubefence.errors import InputError
from kubefence.node._agnhost import parse_duration


def _record(uid: str, index: int, offset: int, *, host: bool = False) -> PodRecord:
    return PodRecord(uid=uid, key=f"ns/{uid}", slot_index=index, offset=offset,
                     host_network=host, started_at="2026-12-07T00:00:00Z")  # fmt: skip


def test_free_slot_takes_the_lowest_free_index_and_offset() -> None:
    assert NodeRecord().free_slot() == (0, 0)
    record = NodeRecord(pods={"a": _record("a", 0, 0), "c": _record("c", 2, 2),
                              "h": _record("h", -1, -1, host=True)})  # fmt: skip
    assert record.free_slot() == (1, 1)


def test_record_round_trips_through_its_file(tmp_path: Path) -> None:
    pod = _record("u1", 3, 4).with_changes(
        processes={"c": ProcessRecord(pid=42, start_time=7, started_at="t")},
        restarts={"c": 2},
        exited={"d": 3},
    )
    save_record(tmp_path, NodeRecord(pods={"u1": pod}))
    assert load_record(tmp_path).pods == {"u1": pod}
    assert load_record(tmp_path / "missing").pods == {}


def test_node_plan_addresses() -> None:
    nodes = plan_nodes("demo", 3)
    second = nodes[1]
    assert (second.name, second.netns) == ("node-1", "kf-demo-node-1")
    assert second.address_v4 == ipaddress.IPv4Address("198.19.255.2")
    assert str(second.address_v6) == "fd00:6b66::c613:ff02"
    assert str(second.pod_cidr_v4) == "198.18.2.0/24"
    assert str(second.pod_cidr_v6) == "fd00:6b66::c612:200/120"
    slot = pod_slot(second, key="x/a", slot_index=5, offset=0)
    assert (slot.netns, slot.node_if) == ("kf-demo-node-1-5", "kfp5")
    assert (str(slot.ipv4), str(slot.ipv6)) == ("198.18.2.2", "fd00:6b66::c612:202")
    assert slot.ipv6 in second.pod_cidr_v6
    with pytest.raises(InputError):
        second.pod_address(253)
    with pytest.raises(InputError):
        plan_nodes("demo", 0)
    assert node_from_name("demo", "node-2") == nodes[2]
    with pytest.raises(InputError):
        node_from_name("demo", "worker")


def test_netns_pattern_is_the_clusters_own() -> None:
    pattern = cluster_netns_pattern("demo")
    for name in ("kf-demo-net", "kf-demo-node-0", "kf-demo-node-12-3"):
        assert pattern.match(name), name
    for name in ("kf-demo-node", "kf-demo-0", "kf-demo2-node-0", "kf-demo-node-0-x"):
        assert not pattern.match(name), name


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("0", 0.0)]
)
def test_agnhost_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_agnhost_rejects_bad_durations() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("1 second")
