"""Interval arithmetic behind the nftables interval sets, checked against ``ipaddress``."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import example, given
from hypothesis import strategies as st

from kubefence.api import IPBlock
from kubefence.dataplane.nft._intervals import (
    Box,
    Interval,
    block_intervals,
    covers,
    disjoint_boxes,
    interval_text,
    merge,
    subtract,
    sweep,
)
from kubefence.semantics import ip_in_block

SMALL = 64


def _interval(max_value: int = SMALL) -> st.SearchStrategy[Interval]:
    return st.tuples(st.integers(0, max_value), st.integers(0, max_value)).map(
        lambda t: (min(t), max(t))
    )


def _covered(intervals: tuple[Interval, ...] | list[Interval], value: int) -> bool:
    return any(low <= value <= high for low, high in intervals)


def _is_normal(intervals: tuple[Interval, ...]) -> bool:
    """Sorted, each well formed, disjoint and not even adjacent."""
    return all(low <= high for low, high in intervals) and all(
        a[1] + 1 < b[0] for a, b in itertools.pairwise(intervals)
    )


@given(st.lists(_interval(), max_size=8))
def test_merge_covers_exactly_the_union_and_is_normal(intervals: list[Interval]) -> None:
    """merge keeps exactly the covered values and yields sorted, non-touching intervals."""
    merged = merge(intervals)
    assert _is_normal(merged)
    for value in range(SMALL + 2):
        assert _covered(merged, value) == _covered(intervals, value)


@given(st.lists(_interval(), max_size=5), st.lists(_interval(), max_size=6))
def test_subtract_is_set_difference(base: list[Interval], holes: list[Interval]) -> None:
    """subtract(base, holes) covers a value iff base covers it and no hole does."""
    result = subtract(base, holes)
    assert _is_normal(result)
    for value in range(SMALL + 2):
        assert _covered(result, value) == (_covered(base, value) and not _covered(holes, value))


@given(
    st.lists(st.lists(_interval(), max_size=3), max_size=4),
    st.lists(st.integers(0, SMALL + 1), max_size=3),
)
def test_sweep_pieces_carry_exactly_the_covering_ids(
    families: list[list[Interval]], cuts: list[int]
) -> None:
    """sweep yields ordered, disjoint pieces covering the union, each with the ids covering
    every value in it, and cuts at every bound and every requested point."""
    spans = [(span, ident) for ident, family in enumerate(families) for span in merge(family)]
    pieces = list(sweep(spans, cuts=cuts))
    assert all(a[0][1] < b[0][0] for a, b in itertools.pairwise(pieces))
    for value in range(SMALL + 2):
        expected = frozenset(i for i, family in enumerate(families) if _covered(family, value))
        found = [ids for (low, high), ids in pieces if low <= value <= high]
        assert found == ([expected] if expected else [])
    bounds = {b for (low, high), _ in spans for b in (low, high + 1)} | set(cuts)
    for (low, high), _ in pieces:
        assert not any(low < b <= high for b in bounds)


@given(st.lists(_interval(), max_size=6), st.integers(-1, SMALL + 1))
def test_covers_agrees_with_a_linear_scan(intervals: list[Interval], value: int) -> None:
    """covers() (binary search on merged intervals) finds exactly the covered values."""
    assert covers(merge(intervals), value) == _covered(intervals, value)


@st.composite
def _ipv4_blocks(draw: st.DrawFn) -> IPBlock:
    prefix = draw(st.integers(20, 30))
    base = draw(st.integers(0, (1 << 32) - 1))
    cidr = ipaddress.IPv4Network((base >> (32 - prefix) << (32 - prefix), prefix))
    excepts = []
    for _ in range(draw(st.integers(0, 4))):
        sub_prefix = draw(st.integers(prefix + 1, 32))
        offset = draw(st.integers(0, (1 << (sub_prefix - prefix)) - 1))
        start = int(cidr.network_address) + (offset << (32 - sub_prefix))
        excepts.append(ipaddress.IPv4Network((start, sub_prefix)))
    return IPBlock(cidr=cidr, except_=tuple(excepts))


@given(_ipv4_blocks(), st.lists(st.integers(0, 4095), max_size=40))
def test_s15_block_intervals_match_ipaddress_membership(block: IPBlock, offsets: list[int]) -> None:
    """S15: an address is in the cidr-minus-excepts intervals iff ip_in_block says so."""
    intervals = block_intervals(block)
    assert _is_normal(intervals)
    start = int(block.cidr.network_address)
    probes = [start + o for o in offsets] + [start - 1, int(block.cidr.broadcast_address) + 1]
    probes += [int(ex.network_address) for ex in block.except_]
    probes += [int(ex.broadcast_address) + 1 for ex in block.except_]
    for value in probes:
        if not 0 <= value < 1 << 32:
            continue
        address = ipaddress.IPv4Address(value)
        assert _covered(intervals, value) == ip_in_block(address, block), address


def test_s15_ipv6_block_with_except_splits_in_two() -> None:
    """S15: an IPv6 except in the middle of a cidr leaves the ranges on both sides."""
    block = IPBlock(
        cidr=ipaddress.IPv6Network("fd00::/64"),
        except_=(ipaddress.IPv6Network("fd00::100/120"),),
    )
    texts = [interval_text(iv, 6) for iv in block_intervals(block)]
    assert texts == ["fd00::/120", "fd00::200-fd00::ffff:ffff:ffff:ffff"]


def test_interval_text_uses_prefix_only_when_exact() -> None:
    """An aligned power-of-two range renders as a prefix, others as first-last or one address."""
    net = ipaddress.IPv4Network("10.1.2.0/24")
    low, high = int(net.network_address), int(net.broadcast_address)
    assert interval_text((low, high), 4) == "10.1.2.0/24"
    assert interval_text((low + 1, high), 4) == "10.1.2.1-10.1.2.255"
    assert interval_text((low, low), 4) == "10.1.2.0"
    assert interval_text((0, (1 << 32) - 1), 4) == "0.0.0.0/0"
    assert interval_text((0, (1 << 128) - 1), 6) == "::/0"


def _box(max_value: int = 12) -> st.SearchStrategy[Box]:
    return st.tuples(_interval(max_value), _interval(max_value), _interval(max_value))


def _in_box(box: Box, point: tuple[int, int, int]) -> bool:
    return all(low <= v <= high for (low, high), v in zip(box, point, strict=True))


def _breakpoints(boxes: list[Box], axis: int) -> list[int]:
    """Coordinates where membership can change along ``axis``: checking these is exhaustive."""
    return sorted({v for box in boxes for v in (box[axis][0], box[axis][1] + 1)})


@given(st.lists(_box(), max_size=6))
@example([((1, 3), (6, 6), (80, 80)), ((5, 7), (6, 6), (80, 80))])  # a one-value gap
@example([((0, 4), (0, 12), (0, 12)), ((2, 2), (6, 6), (3, 9)), ((3, 6), (6, 7), (5, 5))])
def test_disjoint_boxes_partition_the_union(boxes: list[Box]) -> None:
    """disjoint_boxes covers exactly the union of the input boxes, with no two outputs overlapping
    (nft rejects overlapping elements of a concatenated interval set)."""
    result = disjoint_boxes(boxes)
    assert list(result) == sorted(result)
    grid = [_breakpoints(boxes + list(result), axis) for axis in range(3)]
    for point in itertools.product(*grid):
        hits = sum(_in_box(b, point) for b in result)
        assert hits <= 1, point
        assert (hits == 1) == any(_in_box(b, point) for b in boxes), point


def test_disjoint_boxes_keeps_an_all_ports_peer_in_one_element() -> None:
    """A peer allowed every protocol and port stays one element however other peers' port
    ranges cut the space (the address axis is cut first)."""
    everything = ((5, 5), (0, 255), (0, 65535))
    result = disjoint_boxes([everything, ((1, 9), (6, 6), (80, 80)), ((5, 7), (17, 17), (53, 53))])
    assert everything in result
    assert len(result) == 5


def test_disjoint_boxes_joins_overlapping_port_ranges() -> None:
    """TCP 80-90 and TCP 85-95 to the same peers become one element 80-95."""
    peers = (10, 20)
    assert disjoint_boxes([(peers, (6, 6), (80, 90)), (peers, (6, 6), (85, 95))]) == (
        (peers, (6, 6), (80, 95)),
    )
