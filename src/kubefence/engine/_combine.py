"""Rule occurrences combined into the bit-packed class matrix, for all namespaces at once.

Why this module exists: a large cluster has tens of thousands of policies with a rule or two
each, so combining them namespace by namespace and rule by rule (a few numpy calls per rule)
spends its time in Python. Here every (selected class, rule) pair of a direction is one entry
of flat arrays (``Occurrences``); for one port the pairs whose port matches are kept, reduced to
distinct (class, peer vector) pairs by one sort, and each class's row is the OR of the packed
vectors of its pairs (``np.bitwise_or.reduceat``), a few numpy calls per block of rows.

    egress:  allowed[s, :]     = OR over pairs (s, v) of v          (s egress-isolated, S03)
    ingress: allowed[:, d]    &= OR over pairs (d, v) of v          (d ingress-isolated)

Egress vectors are peer AND port (judged at the destination, S21), ingress vectors the peers
(the port was judged at ``d`` when the pair was kept). Ingress rows ``[dst, src]`` are gathered
for a span of destinations and folded into ``allowed``'s bit columns through 8 x 8 bit-block
transposes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Occurrences",
    "apply_egress",
    "apply_ingress",
    "padded",
    "sorted_unique",
    "transposed_bits",
]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]

_GATHER_BYTES = 32 << 20  # packed rows gathered per reduceat step


@dataclass(frozen=True, slots=True)
class Occurrences:
    """One direction's (class, rule) pairs: class ``cls[k]`` is selected by a policy holding a
    rule whose peers are peer vector ``peer[k]`` and whose ports are port tuple ``port[k]``;
    ``isolated`` marks the classes some policy of this direction selects (S03)."""

    cls: IntArray
    peer: IntArray
    port: IntArray
    isolated: BoolArray

    @classmethod
    def from_lists(
        cls,
        selected: list[int],
        lengths: list[int],
        peers: list[int],
        ports: list[int],
        isolating: list[int],
        *,
        count: int,
    ) -> Occurrences:
        """From flat lists, one direction: the selected classes of every rule one after another,
        each rule's number of them, its peer and port ids; every isolating class (repeats
        allowed). One array conversion each instead of one small array per policy."""
        repeat = np.asarray(lengths, dtype=np.int64)
        isolated = np.zeros(count, dtype=np.bool_)
        if isolating:
            isolated[np.asarray(isolating, dtype=np.int64)] = True
        return cls(
            cls=np.asarray(selected, dtype=np.int64),
            peer=np.repeat(np.asarray(peers, dtype=np.int64), repeat),
            port=np.repeat(np.asarray(ports, dtype=np.int64), repeat),
            isolated=isolated,
        )


def sorted_unique(values: IntArray) -> IntArray:
    """``np.unique(values)`` by sorting (numpy 2's ``unique`` is ~50x slower on 10^6 ints)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=np.bool_)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _unique_inverse(values: IntArray) -> tuple[IntArray, IntArray]:
    """(sorted distinct values, position of each value among them)."""
    distinct = sorted_unique(values)
    return distinct, np.searchsorted(distinct, values)


def padded(bits: ByteArray) -> ByteArray:
    """``bits`` (rows of packed bits) with zero bytes appended up to a multiple of 8."""
    extra = -bits.shape[1] % 8
    return np.pad(bits, ((0, 0), (0, extra))) if extra else bits


def _pairs(row: IntArray, vector: IntArray, vectors: int) -> tuple[IntArray, IntArray]:
    """Distinct (row, vector) pairs sorted by row, then vector."""
    key = sorted_unique(row * max(1, vectors) + vector)
    return key // max(1, vectors), key % max(1, vectors)


def _or_rows(
    out: ByteArray, rows: IntArray, which: IntArray, bits: ByteArray, *, offset: int = 0
) -> None:
    """``out[r - offset] = OR of bits[which[k]]`` over the pairs k of each distinct row r
    (``rows`` sorted), in steps of about ``_GATHER_BYTES``. ``bits`` rows are padded to whole
    64-bit words (``padded``): reduceat is ~5x faster on words than on bytes."""
    if not len(rows):
        return
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    step = max(1, _GATHER_BYTES // max(1, bits.shape[1]))
    g = 0
    while g < len(starts):
        # groups g..h-1, at least one, about ``step`` pairs in all
        h = max(g + 1, int(np.searchsorted(ends, starts[g] + step, side="right")))
        p0, p1 = int(starts[g]), int(ends[h - 1])
        gathered = bits[which[p0:p1]].view(np.uint64)
        reduced = np.bitwise_or.reduceat(gathered, starts[g:h] - p0).view(np.uint8)
        out[rows[starts[g:h]] - offset] = reduced[:, : out.shape[1]]
        g = h


def apply_egress(
    allowed: ByteArray,
    occ: Occurrences,
    *,
    port_ok: ByteArray,
    port_any: BoolArray,
    peer_bits: Callable[[IntArray], ByteArray],
    peers: int,
) -> None:
    """Egress-isolated rows of ``allowed`` become the OR of (peer AND port) of their rules.

    ``port_ok[t]`` is port tuple ``t``'s packed destination vector (reachable included),
    ``port_any[t]`` whether it has any bit; ``peer_bits(ids)`` the packed peer vectors; both
    ``padded``.
    """
    allowed[np.flatnonzero(occ.isolated)] = 0
    keep = port_any[occ.port]  # rules allowing nothing on this port add nothing
    combo = occ.peer[keep] + peers * occ.port[keep]
    rows, which = _pairs(occ.cls[keep], combo, peers * len(port_any))
    if not len(rows):
        return
    combos, inverse = _unique_inverse(which)
    bits = peer_bits(combos % peers) & port_ok[combos // peers]
    _or_rows(allowed, rows, inverse, bits)


def apply_ingress(
    allowed: ByteArray,
    occ: Occurrences,
    *,
    port_at: BoolArray,
    peer_bits: Callable[[IntArray], ByteArray],
    peers: int,
    tile: int,
    adjust: Callable[[ByteArray, int], None] | None = None,
) -> None:
    """Columns of ingress-isolated destinations are ANDed with the OR of their rules' peers.

    ``port_at[t, d]``: port tuple ``t`` matches a connection to destination class ``d``.
    Destinations are taken in spans of about ``tile`` classes starting at a multiple of 8;
    ``peer_bits`` gives ``padded`` rows. ``adjust(span, lo)``, when given, may change each
    span's rows ``[destination lo + i, source]`` before they are folded in (the admin tiers);
    then every span is taken, not only those holding isolated destinations.
    """
    count, width = allowed.shape
    keep = port_at[occ.port, occ.cls]  # S21: the port is judged at the destination
    rows, which = _pairs(occ.cls[keep], occ.peer[keep], peers)
    needed, inverse = _unique_inverse(which)
    bits = peer_bits(needed)
    isolated = np.flatnonzero(occ.isolated)
    height = max(8, -(-tile // 8) * 8)
    buffer = np.empty((min(height, 8 * width), width), dtype=np.uint8)
    at, lo = 0, 0
    while at < len(isolated) if adjust is None else lo < count:
        if adjust is None:
            lo = int(isolated[at]) - int(isolated[at]) % 8
        hi = min(lo + height, 8 * width)
        upto = int(np.searchsorted(isolated, hi))
        span = buffer[: hi - lo]
        span.fill(0xFF)  # destinations that are not isolated: every source
        span[isolated[at:upto] - lo] = 0
        p0, p1 = np.searchsorted(rows, (lo, hi))
        _or_rows(span, rows[p0:p1], inverse[p0:p1], bits, offset=lo)
        if adjust is not None:
            adjust(span, lo)
        allowed[:, lo // 8 : hi // 8] &= transposed_bits(span)[:count]
        at, lo = upto, hi


_M1, _M2, _M3 = (np.uint64(m) for m in (0x00AA00AA00AA00AA, 0x0000CCCC0000CCCC, 0xF0F0F0F0))
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)


def transposed_bits(packed: ByteArray) -> ByteArray:
    """The bit matrix ``packed`` (rows packed with ``np.packbits(.., axis=1)``, a multiple of
    8 rows) transposed, packed the same way: ``packbits(unpackbits(packed, axis=1).T, axis=1)``.

    Each 8 x 8 block of bits (eight rows of one byte column) is read as one 64-bit word and
    transposed in three swaps of bit groups (the classic delta swaps of 1, 2 and 4 bits), so the
    work is a few numpy passes over the packed bytes, never over one byte per bit.
    """
    height, width = packed.shape
    # Rows reversed so that, read as little-endian words, row 0 lands in the top byte.
    blocks = packed.reshape(height // 8, 8, width)[:, ::-1, :].transpose(0, 2, 1)
    x = np.ascontiguousarray(blocks).view(np.uint64).reshape(height // 8, width)
    t = (x ^ (x >> _S1)) & _M1
    x ^= t ^ (t << _S1)
    t = (x ^ (x >> _S2)) & _M2
    x ^= t ^ (t << _S2)
    t = (x ^ (x >> _S3)) & _M3
    x ^= t ^ (t << _S3)
    out = x.view(np.uint8).reshape(height // 8, width, 8)[:, :, ::-1].transpose(1, 2, 0)
    return out.reshape(width * 8, height // 8)
