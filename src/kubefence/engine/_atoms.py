"""Rule occurrences split by peer: few wide peers as packed rows, many narrow ones as bits.

Why this module exists: a rule's peers are ORed (S10), so a rule's peer vector is the union of
its peers' vectors. Taken whole, the peer tuples of a large cluster are nearly all distinct
(30,000 tuples at 100,000 pods, each packed over every class: 130 MB to build and gather), yet
they are made of few wide peers (a namespaceSelector, an ipBlock: ~300 distinct ones) and many
narrow ones (a podSelector in the policy's own namespace, matching a class or two). Here every
(class, rule) occurrence (``_combine.Occurrences``) becomes one occurrence per peer of the
rule: a wide ("dense") peer keeps a row of a small packed store, shared by every rule naming
it, and a narrow ("sparse") peer is expanded to the (class, matched class) bits it contributes,
set directly, with no vector at all. The union over a rule's peers is unchanged, so the OR
over a class's occurrences is the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from kubefence.engine._combine import (
    Occurrences,
    distinct_pairs,
    or_rows,
    transposed_bits,
    unique_inverse,
)
from kubefence.semantics import PeerMatcher

__all__ = ["PeerAtoms", "Split", "apply_egress", "apply_ingress", "set_bits", "sparse_limit"]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]


def sparse_limit(count: int) -> int:
    """Peers matching at most this many classes are set as bits, not ORed as packed rows.

    Setting one bit costs about as much as ORing 64 bytes of a packed row, so a peer is worth
    a row when it matches more classes than a row has 64-byte blocks (at least 8).
    """
    return max(8, -(-count // 8) // 64)


@dataclass(frozen=True, slots=True)
class PeerAtoms:
    """The peers (atoms) of every peer tuple: tuple ``p``'s atoms are
    ``atoms[start[p]:start[p + 1]]``; atom ``a`` is dense row ``row[a]`` of ``store`` (packed
    over classes, rows padded to whole 64-bit words) or, when ``row[a]`` is -1, sparse: it
    matches classes ``ids[first[a]:first[a + 1]]``."""

    start: IntArray
    atoms: IntArray
    row: IntArray
    first: IntArray
    ids: IntArray
    store: ByteArray

    @classmethod
    def build(
        cls,
        tuples: list[tuple[PeerMatcher, ...]],
        *,
        count: int,
        matched: Callable[[PeerMatcher], IntArray | None],
        local: Callable[[PeerMatcher], list[int] | None],
    ) -> PeerAtoms:
        """``tuples``: the peer tuples in id order; ``local(peer)``: the classes a peer of
        one namespace matches (a handful: taken as they come, never hashed), None for a
        peer that may reach further, whose atom is shared by every equal peer and whose
        classes are ``matched(peer)`` (repeats allowed; None for every class)."""
        shared: dict[PeerMatcher, int] = {}
        found: list[IntArray | list[int] | None] = []
        lengths: list[int] = []
        atoms: list[int] = []
        for peers in tuples:
            lengths.append(len(peers))
            for peer in peers:
                ids = local(peer)
                if ids is not None:
                    atoms.append(len(found))
                    found.append(ids)
                    continue
                a = shared.get(peer)
                if a is None:
                    a = shared[peer] = len(found)
                    found.append(matched(peer))
                atoms.append(a)
        limit = sparse_limit(count)
        width = -(-count // 64) * 8
        row = np.full(len(found), -1, dtype=np.int64)
        sizes = [0] * len(found)
        flat: list[int] = []
        dense: list[IntArray | list[int] | None] = []
        for a, hits in enumerate(found):
            if hits is not None and len(hits) <= limit:
                sizes[a] = len(hits)
                flat += hits if isinstance(hits, list) else hits.tolist()
            else:
                row[a] = len(dense)
                dense.append(hits)
        store = np.zeros((len(dense), width), dtype=np.uint8)
        for r, wide in enumerate(dense):
            vector = np.zeros(8 * width, dtype=np.bool_)
            vector[slice(0, count) if wide is None else wide] = True
            store[r] = np.packbits(vector)
        return cls(
            start=np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))]),
            atoms=np.asarray(atoms, dtype=np.int64),
            row=row,
            first=np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]),
            ids=np.asarray(flat, dtype=np.int64),
            store=store,
        )


def _expand(starts: IntArray, lengths: IntArray) -> tuple[IntArray, IntArray]:
    """(owner k, position) of every position ``starts[k] .. starts[k] + lengths[k] - 1``."""
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    before = np.cumsum(lengths) - lengths
    return owner, np.arange(int(lengths.sum()), dtype=np.int64) - before[owner] + starts[owner]


@dataclass(frozen=True, slots=True)
class Split:
    """One direction's occurrences per peer: ``dense_*`` (class, store row, port tuple)
    triples; ``sparse_*`` (class, matched class, port tuple) triples sorted by class;
    ``isolated`` as in ``Occurrences``."""

    dense_cls: IntArray
    dense_row: IntArray
    dense_port: IntArray
    sparse_cls: IntArray
    sparse_peer: IntArray
    sparse_port: IntArray
    isolated: BoolArray

    @classmethod
    def of(cls, occ: Occurrences, atoms: PeerAtoms) -> Split:
        owner, at = _expand(atoms.start[occ.peer], np.diff(atoms.start)[occ.peer])
        atom = atoms.atoms[at]
        row = atoms.row[atom]
        dense = row >= 0
        d_owner = owner[dense]
        s_owner, s_atom = owner[~dense], atom[~dense]
        sizes = np.diff(atoms.first)[s_atom]
        bit_owner, pos = _expand(atoms.first[s_atom], sizes)
        bit_occ = s_owner[bit_owner]
        order = np.argsort(occ.cls[bit_occ], kind="stable")
        bit_occ, pos = bit_occ[order], pos[order]
        return cls(
            dense_cls=occ.cls[d_owner],
            dense_row=row[dense],
            dense_port=occ.port[d_owner],
            sparse_cls=occ.cls[bit_occ],
            sparse_peer=atoms.ids[pos],
            sparse_port=occ.port[bit_occ],
            isolated=occ.isolated,
        )


def set_bits(out: ByteArray, rows: IntArray, cols: IntArray) -> None:
    """Bit ``cols[k]`` of row ``rows[k]`` of ``out`` (packed rows, contiguous) set, for all k."""
    if len(rows):
        width = out.shape[1]
        np.bitwise_or.at(
            out.reshape(-1),
            rows * width + (cols >> 3),
            np.uint8(0x80) >> (cols & 7).astype(np.uint8),
        )


def _row_table(
    rows: IntArray,
    which: IntArray,
    bits: ByteArray,
    *,
    base: ByteArray,
    isolated: BoolArray,
    height: int,
) -> tuple[ByteArray, IntArray]:
    """(table, pick): row ``r`` (of ``height``) of the result is ``table[pick[r]]``.

    ``(rows, which)``: distinct pairs sorted by row; a row with pairs is the OR of
    ``bits[which]`` over them, computed once per distinct set of ``which`` (classes selected
    by the same policies share it): table row 2 and up. Table row 0 is ``base``, picked by
    rows that are not ``isolated``; row 1 zeros, picked by isolated rows without pairs.
    """
    pick = np.zeros(height, dtype=np.int64)
    pick[: len(isolated)][isolated] = 1
    if not len(rows):
        table = np.zeros((2, len(base)), dtype=np.uint8)
        table[0] = base
        return table, pick
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    bounds = np.r_[starts, len(rows)].tolist()
    listed = which.tolist()
    sets: dict[tuple[int, ...], int] = {}
    of_row = [sets.setdefault(tuple(listed[b0:b1]), len(sets)) for b0, b1 in pairwise(bounds)]
    sizes = np.asarray([len(key) for key in sets], dtype=np.int64)
    members = np.asarray([m for key in sets for m in key], dtype=np.int64)
    table = np.empty((2 + len(sets), len(base)), dtype=np.uint8)
    table[0] = base
    table[1] = 0
    set_rows = np.repeat(np.arange(2, 2 + len(sets), dtype=np.int64), sizes)
    or_rows(table, set_rows, members, bits)
    pick[rows[starts]] = 2 + np.asarray(of_row, dtype=np.int64)
    return table, pick


def apply_egress(
    allowed: ByteArray,
    split: Split,
    *,
    store: ByteArray,
    port_ok: ByteArray,
    port_at: BoolArray,
    reachable: ByteArray,
) -> None:
    """Every row of ``allowed`` written: a row that is not egress-isolated is ``reachable``
    (packed: the destinations the port exists at), an isolated one the OR of (peer AND port)
    of its rules (S03, S10, S21).

    ``port_at[t, d]``: port tuple ``t`` matches a connection to destination class ``d``
    (reachable included); ``port_ok`` the same packed and ``padded``; ``store`` the dense
    peers' packed rows (``PeerAtoms.store``). Rows are picked from a table of distinct rows
    in one pass (``_row_table``), then narrow peers' bits are set, so ``allowed`` may come
    uninitialised.
    """
    count = len(allowed)
    stored = max(1, len(store))
    ports = len(port_at)
    port_any = np.asarray(port_at.any(axis=1), dtype=np.bool_)
    keep = port_any[split.dense_port]  # rules allowing nothing add nothing
    combo = split.dense_row[keep] + stored * split.dense_port[keep]
    rows, which = distinct_pairs(split.dense_cls[keep], combo, stored * ports)
    combos, inverse = unique_inverse(which)
    bits = store[combos % stored] & port_ok[combos // stored]
    table, pick = _row_table(
        rows, inverse, bits, base=reachable, isolated=split.isolated, height=count
    )
    np.take(table, pick, axis=0, out=allowed, mode="clip")  # "raise" would buffer out
    keep = port_at[split.sparse_port, split.sparse_peer]  # S21: judged at the destination
    set_bits(allowed, split.sparse_cls[keep], split.sparse_peer[keep])


def apply_ingress(
    allowed: ByteArray,
    split: Split,
    *,
    store: ByteArray,
    port_at: BoolArray,
    tile: int,
    adjust: Callable[[ByteArray, int], None] | None = None,
) -> None:
    """Columns of ingress-isolated destinations are ANDed with the OR of their rules' peers.

    ``port_at[t, d]``: port tuple ``t`` matches a connection to destination class ``d``.
    Destinations are taken in spans of about ``tile`` classes starting at a multiple of 8,
    as rows ``[destination, source]`` picked from a table of distinct rows (``_row_table``),
    folded into ``allowed``'s columns by 8 x 8 bit-block transposes. ``adjust(span, lo)``,
    when given, may change each span's rows ``[destination lo + i, source]`` before they
    are folded in (the admin tiers); then every span is taken, not only those holding
    isolated destinations.
    """
    count, width = allowed.shape
    keep = port_at[split.dense_port, split.dense_cls]  # S21: the port is judged at the dst
    rows, which = distinct_pairs(split.dense_cls[keep], split.dense_row[keep], len(store))
    every = np.full(width, 0xFF, dtype=np.uint8)  # not isolated: every source
    table, pick = _row_table(
        rows, which, store, base=every, isolated=split.isolated, height=8 * width
    )
    keep = port_at[split.sparse_port, split.sparse_cls]
    bit_dst, bit_src = split.sparse_cls[keep], split.sparse_peer[keep]  # sorted by dst
    isolated = np.flatnonzero(split.isolated)
    height = max(8, -(-tile // 8) * 8)
    buffer = np.empty((min(height, 8 * width), width), dtype=np.uint8)
    at, lo = 0, 0
    while at < len(isolated) if adjust is None else lo < count:
        if adjust is None:
            lo = int(isolated[at]) - int(isolated[at]) % 8
        hi = min(lo + height, 8 * width)
        upto = int(np.searchsorted(isolated, hi))
        span = buffer[: hi - lo]
        np.take(table, pick[lo:hi], axis=0, out=span, mode="clip")
        q0, q1 = np.searchsorted(bit_dst, (lo, hi))
        set_bits(span, bit_dst[q0:q1] - lo, bit_src[q0:q1])
        if adjust is not None:
            adjust(span, lo)
        allowed[:, lo // 8 : hi // 8] &= transposed_bits(span)[:count]
        at, lo = upto, hi
