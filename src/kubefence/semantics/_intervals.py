"""An ipBlock as integer address intervals: ``cidr`` minus every ``except`` (S15).

Why this module exists: the engine (which pods lie in a block) and the nftables compiler (the
interval set elements of a block) both need a block as disjoint address ranges; this is the one
definition both layers can import. Every interval is a pair ``(low, high)`` of inclusive
integer bounds, ``low <= high``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import TypeAlias

from kubefence.api import IPBlock, IPNetwork

__all__ = ["Interval", "block_intervals", "merge", "network_interval", "subtract"]

Interval: TypeAlias = tuple[int, int]


def network_interval(network: IPNetwork) -> Interval:
    """The addresses of a CIDR as an interval."""
    return (int(network.network_address), int(network.broadcast_address))


def merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, disjoint, non-adjacent intervals covering exactly the union of ``intervals``."""
    out: list[Interval] = []
    for low, high in sorted(intervals):
        if out and low <= out[-1][1] + 1:
            if high > out[-1][1]:
                out[-1] = (out[-1][0], high)
        else:
            out.append((low, high))
    return tuple(out)


def subtract(base: Iterable[Interval], holes: Iterable[Interval]) -> tuple[Interval, ...]:
    """``base`` minus ``holes``, merged (sorted, disjoint)."""
    merged_holes = merge(holes)
    hole_highs = [high for _, high in merged_holes]
    result: list[Interval] = []
    for low, high in merge(base):
        current = low
        # First hole that could touch [current, high]: the first whose high end is >= current.
        index = bisect.bisect_left(hole_highs, current)
        while index < len(merged_holes) and current <= high:
            hole_low, hole_high = merged_holes[index]
            if hole_low > high:
                break
            if hole_low > current:
                result.append((current, hole_low - 1))
            current = max(current, hole_high + 1)
            index += 1
        if current <= high:
            result.append((current, high))
    return tuple(result)


def block_intervals(block: IPBlock) -> tuple[Interval, ...]:
    """S15: the addresses of ``cidr`` minus every ``except`` (excepts of another family are
    ignored, as they can never contain an address of ``cidr``)."""
    holes = (network_interval(ex) for ex in block.except_ if ex.version == block.cidr.version)
    return subtract((network_interval(block.cidr),), holes)
