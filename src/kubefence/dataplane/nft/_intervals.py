"""Integer interval arithmetic for nftables interval sets.

Why this module exists: nftables rejects interval set elements that overlap ("File exists"), also
in concatenated sets (``ipv4_addr . inet_proto . inet_service``), and it has no set difference
for ``ipBlock.except``. So kubefence works in plain integers: a block is ``cidr`` minus every
``except`` (``semantics.block_intervals``, re-exported here), and this module merges overlapping
and adjacent ranges and splits a union of boxes (address or atom range x protocol range x port
range) into disjoint boxes before rendering a single element.

Every interval is a pair ``(low, high)`` of inclusive integer bounds, ``low <= high``.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from collections.abc import Iterable, Iterator
from typing import TypeAlias, TypeVar

from kubefence.api import IPAddress
from kubefence.semantics import (  # interval arithmetic and S15: the one definition, re-exported
    block_intervals,
    merge,
    network_interval,
    subtract,
)

__all__ = [
    "FULL_PORTS",
    "FULL_PROTOCOLS",
    "Box",
    "Interval",
    "address_interval",
    "block_intervals",
    "covers",
    "disjoint_boxes",
    "disjoint_rectangles",
    "family_range",
    "interval_text",
    "merge",
    "network_interval",
    "subtract",
    "sweep",
]

Interval: TypeAlias = tuple[int, int]
Box: TypeAlias = tuple[Interval, Interval, Interval]  # (address or atom, protocol, port)
_C = TypeVar("_C", bound=tuple[object, ...])

FULL_PROTOCOLS: Interval = (0, 255)
FULL_PORTS: Interval = (0, 65535)


def family_range(version: int) -> Interval:
    """Every address of IPv4 (``version`` 4) or IPv6 (6)."""
    bits = 32 if version == 4 else 128
    return (0, (1 << bits) - 1)


def address_interval(address: IPAddress) -> Interval:
    """One address as an interval."""
    value = int(address)
    return (value, value)


def covers(intervals: tuple[Interval, ...], value: int) -> bool:
    """Is ``value`` inside one of ``intervals`` (sorted and disjoint, as ``merge`` returns)?"""
    index = bisect.bisect_right(intervals, (value, 1 << 129)) - 1
    return index >= 0 and intervals[index][0] <= value <= intervals[index][1]


def _pieces(intervals: Iterable[Interval]) -> list[Interval]:
    """The elementary pieces cut by every bound of ``intervals`` (covering their hull)."""
    points = sorted({low for low, _ in intervals} | {high + 1 for _, high in intervals})
    return [(points[i], points[i + 1] - 1) for i in range(len(points) - 1)]


def _coalesce(pieces: list[tuple[Interval, _C]]) -> list[tuple[Interval, _C]]:
    """Join adjacent pieces that carry equal content; drop pieces with empty content."""
    out: list[tuple[Interval, _C]] = []
    for interval, content in pieces:
        if not content:
            continue
        if out and out[-1][1] == content and out[-1][0][1] + 1 == interval[0]:
            out[-1] = ((out[-1][0][0], interval[1]), content)
        else:
            out.append((interval, content))
    return out


def sweep(
    spans: Iterable[tuple[Interval, int]], *, cuts: Iterable[int] = ()
) -> Iterator[tuple[Interval, frozenset[int]]]:
    """The elementary pieces cut by every bound of ``spans`` (and at every point of ``cuts``),
    in order, each with the ids of the spans covering it; pieces no span covers are skipped.

    The spans of one id must be disjoint and non-adjacent (as ``merge`` returns them).
    """
    events: dict[int, list[tuple[bool, int]]] = {}  # point -> (starts?, span id)
    for (low, high), ident in spans:
        events.setdefault(low, []).append((True, ident))
        events.setdefault(high + 1, []).append((False, ident))
    for point in cuts:
        events.setdefault(point, [])
    points = sorted(events)
    active: set[int] = set()
    for index, point in enumerate(points[:-1]):
        for starts, ident in events[point]:
            if starts:
                active.add(ident)
            else:
                active.discard(ident)
        if active:
            yield (point, points[index + 1] - 1), frozenset(active)


Rectangle: TypeAlias = tuple[Interval, Interval]  # (protocol, port)


def disjoint_rectangles(rectangles: Iterable[Rectangle]) -> tuple[Rectangle, ...]:
    """Disjoint (protocol range, port range) rectangles covering the union of ``rectangles``:
    cut along protocols, merge the ports of each protocol piece, re-join equal neighbours."""
    distinct = set(rectangles)
    protocol_pieces: list[tuple[Interval, tuple[Interval, ...]]] = []
    for piece in _pieces([protocol for protocol, _ in distinct]):
        ports = merge(port for protocol, port in distinct if protocol[0] <= piece[0] <= protocol[1])
        protocol_pieces.append((piece, ports))
    return tuple(
        (protocol, port) for protocol, ports in _coalesce(protocol_pieces) for port in ports
    )


def disjoint_boxes(boxes: Iterable[Box]) -> tuple[Box, ...]:
    """Disjoint boxes whose union is the union of ``boxes``, sorted by address.

    The address axis is cut first: each elementary address piece gets the union of the
    (protocol, port) rectangles of the boxes covering it, split into disjoint rectangles, and
    neighbouring pieces with the same rectangles are joined again. So an address allowed every
    port is one element however many port ranges other peers have, and "TCP 80-90 and TCP
    85-95 to the same peers" is one element 80-95.
    """
    # Group first: many boxes share one (protocol, port) spec and differ only in address.
    by_spec: dict[Rectangle, list[Interval]] = {}
    for address, protocol, port in boxes:
        by_spec.setdefault((protocol, port), []).append(address)
    if not by_spec:
        return ()
    specs = sorted(by_spec)
    contents: dict[frozenset[int], tuple[Rectangle, ...]] = {}
    pieces: list[tuple[Interval, tuple[Rectangle, ...]]] = []
    spans = ((span, n) for n, spec in enumerate(specs) for span in merge(by_spec[spec]))
    for piece, key in sweep(spans):
        content = contents.get(key)
        if content is None:
            content = disjoint_rectangles(specs[n] for n in key)
            contents[key] = content
        pieces.append((piece, content))
    return tuple(
        (address, protocol, port)
        for address, rectangles in _coalesce(pieces)
        for protocol, port in rectangles
    )


@functools.lru_cache(maxsize=1 << 16)
def _address_text(value: int, version: int) -> str:
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))


def interval_text(interval: Interval, version: int) -> str:
    """An address interval as nft writes it: an address, a prefix, or ``first-last``."""
    low, high = interval
    if low == high:
        return _address_text(low, version)
    size = high - low + 1
    if size & (size - 1) == 0 and low % size == 0:
        bits = 32 if version == 4 else 128
        return f"{_address_text(low, version)}/{bits - size.bit_length() + 1}"
    return f"{_address_text(low, version)}-{_address_text(high, version)}"
