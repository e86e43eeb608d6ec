"""The atom cut: both address families split into the largest groups no address set tells apart.

Why this module exists: class sets are written over atom numbers, not addresses, so replicas
with the same labels and the two families of a pod cost one element (see ``_plan``'s module
docstring). ``cut_atoms`` sweeps every address set's ranges once, numbers each distinct
membership signature, and says which atoms each set covers and which policy peers name each atom.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubefence.dataplane.nft._entries import AddressSets
from kubefence.dataplane.nft._intervals import Interval, merge, sweep
from kubefence.dataplane.nft._model import VERSIONS, AtomRange

__all__ = ["Atoms", "cut_atoms"]

# The atom map's ranges, per address set the atoms it covers, per atom the fields naming it.
Atoms = tuple[tuple[AtomRange, ...], dict[int, tuple[Interval, ...]], dict[int, tuple[str, ...]]]


def cut_atoms(sets: AddressSets, pod_of: Mapping[tuple[int, int], str]) -> Atoms:
    """Cut both address families into atoms (see ``_plan``'s module docstring).

    Returns the atom map's ranges, per address set the atom numbers it covers (merged), and per
    atom the policy fields whose peers contain it. Atoms are numbered in address order, IPv4
    first, so numbering is deterministic.
    """
    numbers: dict[frozenset[int], int] = {}
    ranges: list[AtomRange] = []
    for version in VERSIONS:
        spans = (
            (span, set_id)
            for set_id, by_version in enumerate(sets.ranges)
            for span in by_version.get(version, ())
        )
        # Cut at pod addresses too: one commented element each.
        cuts = (p for v, value in pod_of if v == version for p in (value, value + 1))
        for (point, high), signature in sweep(spans, cuts=cuts):
            number = numbers.setdefault(signature, len(numbers) + 1)
            pod = pod_of.get((version, point)) if point == high else None
            previous = ranges[-1] if ranges else None
            if (
                previous is not None
                and previous.version == version
                and previous.atom == number
                and previous.high + 1 == point
                and previous.pod is None
                and pod is None
            ):
                ranges[-1] = AtomRange(version, previous.low, high, number)
            else:
                ranges.append(AtomRange(version, point, high, number, pod))
    covered: dict[int, list[int]] = {}
    for signature, number in numbers.items():
        for set_id in signature:
            covered.setdefault(set_id, []).append(number)
    atoms_of = {set_id: merge((n, n) for n in found) for set_id, found in covered.items()}
    legend = {
        number: tuple(sorted({o for set_id in signature for o in sets.origins[set_id]}))
        for signature, number in numbers.items()
    }
    return tuple(ranges), atoms_of, legend
