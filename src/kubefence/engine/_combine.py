"""Rule occurrences as flat arrays, and the bit-level helpers that combine them.

Why this module exists: a large cluster has tens of thousands of policies with a rule or two
each, so combining them namespace by namespace and rule by rule (a few numpy calls per rule)
spends its time in Python. Here every (selected class, rule) pair of a direction is one entry
of flat arrays (``Occurrences``); ``_atoms`` splits them by peer and, for one port, reduces the
pairs whose port matches to distinct (class, vector) pairs by one sort (``distinct_pairs``)
and ORs each row's packed vectors (``or_rows``, ``np.bitwise_or.reduceat``):

    egress:  allowed[s, :]     = OR over pairs (s, v) of v          (s egress-isolated, S03)
    ingress: allowed[:, d]    &= OR over pairs (d, v) of v          (d ingress-isolated)

Egress vectors are peer AND port (judged at the destination, S21), ingress vectors the peers
(the port was judged at ``d`` when the pair was kept). Ingress rows ``[dst, src]`` are gathered
for a span of destinations and folded into ``allowed``'s bit columns through 8 x 8 bit-block
transposes (``transposed_bits``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "Occurrences",
    "distinct_pairs",
    "or_rows",
    "padded",
    "sorted_unique",
    "transposed_bits",
    "unique_inverse",
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


def unique_inverse(values: IntArray) -> tuple[IntArray, IntArray]:
    """(sorted distinct values, position of each value among them)."""
    distinct = sorted_unique(values)
    return distinct, np.searchsorted(distinct, values)


def padded(bits: ByteArray) -> ByteArray:
    """``bits`` (rows of packed bits) with zero bytes appended up to a multiple of 8."""
    extra = -bits.shape[1] % 8
    return np.pad(bits, ((0, 0), (0, extra))) if extra else bits


def distinct_pairs(row: IntArray, vector: IntArray, vectors: int) -> tuple[IntArray, IntArray]:
    """Distinct (row, vector) pairs sorted by row, then vector."""
    key = sorted_unique(row * max(1, vectors) + vector)
    return key // max(1, vectors), key % max(1, vectors)


def or_rows(
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


_K1, _K2, _K4 = (np.uint64(m) for m in (0xAA00AA00AA00AA00, 0xCCCC0000CCCC0000, 0xF0F0F0F00F0F0F0F))
_S9, _S18, _S36 = np.uint64(9), np.uint64(18), np.uint64(36)


def transposed_bits(packed: ByteArray) -> ByteArray:
    """The bit matrix ``packed`` (rows packed with ``np.packbits(.., axis=1)``, a multiple of
    8 rows) transposed, packed the same way: ``packbits(unpackbits(packed, axis=1).T, axis=1)``.

    Each 8 x 8 block of bits (eight rows of one byte column) is read as one little-endian
    64-bit word: row r in byte r, column c at bit 7 - c of it (packbits' order), i.e. at bit
    8r + 7 - c. Transposing the block is then a flip about the word's anti-diagonal, done in
    three delta swaps (of 4, 2 and 1 bit distances), in place in one scratch buffer: a few
    numpy passes over the packed bytes, never one byte per bit.
    """
    height, width = packed.shape
    # Byte k of word [i, j] is row 8i + k's byte j: eight strided copies, one per k (each
    # with a long inner loop: ~2x faster than one copy whose inner loop is 8 bytes long).
    rows = packed.reshape(height // 8, 8, width)
    blocks = np.empty((height // 8, width, 8), dtype=np.uint8)
    for k in range(8):
        blocks[:, :, k] = rows[:, k, :]
    x = blocks.view(np.uint64).reshape(height // 8, width)
    t = np.left_shift(x, _S36)
    t ^= x
    u = np.right_shift(x, _S36)
    u ^= t
    u &= _K4
    x ^= u
    for shift, mask in ((_S18, _K2), (_S9, _K1)):
        np.left_shift(x, shift, out=t)
        t ^= x
        t &= mask
        x ^= t
        t >>= shift
        x ^= t
    out = x.view(np.uint8).reshape(height // 8, width, 8).transpose(1, 2, 0)
    return out.reshape(width * 8, height // 8)
