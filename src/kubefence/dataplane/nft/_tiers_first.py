"""A tier class's ordered steps folded into one first-match verdict map.

Why this module exists: issue 15 asks that a packet's cost in the tier chains does not grow
with the rules of the policies that select its pod. A class chain that tries its steps one set
lookup at a time walks up to every rule of every policy of the class; instead the class gets
one interval verdict map keyed like the steps' sets (``mark . l4proto . th dport``: the peer's
atom, the protocol, the port) whose elements say what the *first* matching step does there.
One lookup per tier and direction, whatever the policies.

How: the (protocol, port) plane is cut into elementary cells by every rectangle the class's
steps use; cells covered by the same rectangles get the same answer, so the first match is
computed once per distinct cover, in one dimension (atoms): each step in order claims the
atoms it covers that no earlier step claimed. Only the claims whose outcome differs from "no
match" become elements (Admin: Accept and Deny; Pass and no match both go on to NetworkPolicy.
Baseline: Deny; Accept, Pass and no match all allow), but every step claims, so an earlier
Pass still shadows a later Deny. Equal answers on neighbouring cells and atoms are joined
(``disjoint_boxes`` per answer).
"""

from __future__ import annotations

from collections.abc import Sequence

from kubefence.dataplane.nft._intervals import (
    Box,
    Interval,
    Rectangle,
    disjoint_boxes,
    merge,
    subtract,
)
from kubefence.dataplane.nft._tier_model import ADMIN

__all__ = ["DENY", "first_match_elements", "label_of"]

DENY = "Deny"
ACCEPT = "Accept"


def label_of(
    tier: str, action: str, step: str, *, logged: bool, counted: bool = False
) -> str | None:
    """What a step's claim becomes in the map: ``Accept``, ``Deny``, the step's name (a Deny
    whose flow log chain is that name; with ``counted``, every step: its chain counts the
    packet, then does what the step says), or None (same as no match: not an element)."""
    if counted:
        return step
    if action == DENY:
        return step if logged else DENY
    if action == ACCEPT and tier == ADMIN:
        return ACCEPT
    return None  # Admin Pass; Baseline Accept and Pass


def _pieces(intervals: Sequence[Interval]) -> list[Interval]:
    points = sorted({low for low, _ in intervals} | {high + 1 for _, high in intervals})
    return [(points[i], points[i + 1] - 1) for i in range(len(points) - 1)]


def first_match_elements(
    steps: Sequence[tuple[str | None, tuple[Box, ...]]],
) -> tuple[tuple[Box, str], ...]:
    """The verdict map of one class: ``steps`` in order, each (label or None, its disjoint
    boxes); returns disjoint boxes with the label of the first step covering them, for the
    steps with a label, sorted. Steps without a label only shadow later ones."""
    # Per step and rectangle, the atoms it covers.
    by_rect: list[dict[Rectangle, list[Interval]]] = []
    rectangles: set[Rectangle] = set()
    for _, boxes in steps:
        found: dict[Rectangle, list[Interval]] = {}
        for atoms, protocol, port in boxes:
            found.setdefault((protocol, port), []).append(atoms)
        by_rect.append(found)
        rectangles.update(found)
    if not rectangles or not any(label for label, _ in steps):
        return ()
    # Elementary cells of the plane, grouped by the rectangles covering them.
    cells: dict[frozenset[Rectangle], list[Rectangle]] = {}
    for protocol in _pieces([p for p, _ in rectangles]):
        over = [r for r in rectangles if r[0][0] <= protocol[0] <= r[0][1]]
        if not over:
            continue
        for port in _pieces([q for _, q in over]):
            cover = frozenset(r for r in over if r[1][0] <= port[0] <= r[1][1])
            if cover:
                cells.setdefault(cover, []).append((protocol, port))
    # One first-match pass over atoms per distinct cover; equal results share their cells.
    results: dict[tuple[tuple[Interval, str], ...], list[Rectangle]] = {}
    for cover, members in cells.items():
        claimed: tuple[Interval, ...] = ()
        runs: list[tuple[Interval, str]] = []
        for (label, _), found in zip(steps, by_rect, strict=True):
            mine = [a for r in cover for a in found.get(r, ())]
            if not mine:
                continue
            covered = merge(mine)
            fresh = subtract(covered, claimed) if claimed else covered
            if fresh and label is not None:
                runs.extend((interval, label) for interval in fresh)
            if fresh:
                claimed = merge((*claimed, *fresh))
        if runs:
            results.setdefault(_joined(runs), []).extend(members)
    # Per label, the union of its (atoms x cells) boxes, joined where it can be (``disjoint_
    # boxes`` merges along atoms and re-joins equal neighbours): labels never overlap.
    by_label: dict[str, list[Box]] = {}
    for runs_key, members in results.items():
        for atoms, label in runs_key:
            by_label.setdefault(label, []).extend((atoms, p, q) for p, q in members)
    elements = [(box, label) for label, boxes in by_label.items() for box in disjoint_boxes(boxes)]
    elements.sort()
    return tuple(elements)


def _joined(runs: list[tuple[Interval, str]]) -> tuple[tuple[Interval, str], ...]:
    """Sorted, with touching intervals of one label joined."""
    runs.sort()
    out: list[tuple[Interval, str]] = []
    for interval, label in runs:
        if out and out[-1][1] == label and out[-1][0][1] + 1 == interval[0]:
            out[-1] = ((out[-1][0][0], interval[1]), label)
        else:
            out.append((interval, label))
    return tuple(out)
