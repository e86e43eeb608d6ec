"""Bit-matrix helpers of the admin tiers: per-side verdicts, class groups, first matches.

Why this module exists: ``_tiers`` decides which classes each tiered rule matches; the parts
here only move bits (packed rows as in ``Matrix.class_bits``) and know nothing of policies:
``TierMatrices`` (one port's verdicts per side, and how they combine with NetworkPolicy's),
``groups`` (classes with equal keys), ``first_match`` (one policy's ordered rules as masks),
and ``write`` (a policy's verdicts into the undecided cells of its groups).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubefence.api import AdminAction

__all__ = ["TierMatrices", "first_match", "groups", "write"]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TierMatrices:
    """One port's tier verdicts per side, packed like ``Matrix.class_bits``; None where the
    tiers have nothing for that side. Egress rows are [source, destination]; ingress rows are
    [destination, source] (``apply_ingress`` folds such rows into destination columns).
    ``*_accept``: the Admin tier accepts; ``*_block``: the Admin tier denies, or the Baseline
    tier denies where NetworkPolicy does not isolate the subject. With NetworkPolicy's
    verdicts ``side`` (all ones where it does not isolate), the side is
    ``accept | (side & ~block)`` (T01). Single use: applying it inverts the blocks in place."""

    egress_accept: ByteArray | None
    egress_block: ByteArray | None
    ingress_accept: ByteArray | None
    ingress_block: ByteArray | None

    def egress(self, side: ByteArray) -> None:
        """The sources' egress ``side`` (NetworkPolicy's, rows = sources) after the tiers."""
        _side(side, self.egress_accept, self.egress_block)

    def ingress_span(self, span: ByteArray, lo: int) -> None:
        """Destinations ``lo``.. of ``span`` (NetworkPolicy's ingress rows, [destination,
        source]) after the tiers; rows past the last class are left alone."""
        rows = next(m for m in (self.ingress_accept, self.ingress_block, span) if m is not None)
        upto = max(0, min(len(span), len(rows) - lo))
        accept = None if self.ingress_accept is None else self.ingress_accept[lo : lo + upto]
        block = None if self.ingress_block is None else self.ingress_block[lo : lo + upto]
        _side(span[:upto], accept, block)

    @property
    def has_ingress(self) -> bool:
        return self.ingress_accept is not None or self.ingress_block is not None


def _side(side: ByteArray, accept: ByteArray | None, block: ByteArray | None) -> None:
    if block is not None:
        side &= np.invert(block, out=block)  # ``block`` is spent: no temporary
    if accept is not None:
        side |= accept


@functools.cache
def _weights() -> npt.NDArray[np.uint64]:
    """The hashing form's fixed odd weights; made on first use (``numpy.random``'s import costs
    10-15 ms, which a command that never groups tier rows should not pay)."""
    rng = np.random.default_rng(15)
    weights: npt.NDArray[np.uint64] = rng.integers(1, 2**63, size=4096, dtype=np.uint64)
    return weights | np.uint64(1)


def groups(key: ByteArray) -> tuple[IntArray, IntArray, BoolArray]:
    """Rows of ``key`` (packed bits) grouped by equal content: the group of each row, the first
    row of each group, and each group's key unpacked.

    Rows are hashed to one 64-bit word each (a fixed random linear form over their bytes, mod
    2**64) and grouped by sorting the words, several times faster than ``np.unique(axis=0)``'s
    row sort; the grouping is then checked row by row, and if two different rows ever shared
    a word, grouped again by their bytes, so the result is exact."""
    rows, size = key.shape
    weights = _weights()
    if size <= len(weights):
        with np.errstate(over="ignore"):
            words = key.astype(np.uint64) @ weights[:size]
        order = np.argsort(words, kind="stable")
        ordered = words[order]
        starts = np.r_[True, ordered[1:] != ordered[:-1]] if rows else np.zeros(0, np.bool_)
        ids = np.cumsum(starts) - 1
        group_of = np.empty(rows, dtype=np.int64)
        group_of[order] = ids
        first = order[np.flatnonzero(starts)]  # stable: the first row of each group
        # number groups by first appearance, as the byte grouping below does
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        group_of = rank[group_of]
        first = np.sort(first)
        if np.array_equal(key[first[group_of]], key):
            return group_of, first, np.unpackbits(key[first], axis=1).view(np.bool_)
    blob = np.ascontiguousarray(key).tobytes()
    seen: dict[bytes, int] = {}
    listed: list[int] = []
    group_of = np.empty(rows, dtype=np.int64)
    for i in range(rows):
        g = seen.setdefault(blob[i * size : (i + 1) * size], len(seen))
        if g == len(listed):
            listed.append(i)
        group_of[i] = g
    at = np.asarray(listed, dtype=np.int64)
    return group_of, at, np.unpackbits(key[at], axis=1).view(np.bool_)


def first_match(
    vectors: Sequence[tuple[AdminAction, BoolArray]], count: int
) -> tuple[ByteArray, ByteArray, ByteArray]:
    """One policy's first matching rule per other-side class: packed (accept, deny, decided);
    a Pass is decided but neither accepts nor denies."""
    open_ = np.ones(count, dtype=np.bool_)
    accept = np.zeros(count, dtype=np.bool_)
    deny = np.zeros(count, dtype=np.bool_)
    for action, vector in vectors:
        hit = vector & open_
        if action is AdminAction.ACCEPT:
            accept |= hit
        elif action is AdminAction.DENY:
            deny |= hit
        open_ &= ~vector
    return np.packbits(accept), np.packbits(deny), np.packbits(~open_)


def write(
    rows: IntArray,
    verdicts: tuple[ByteArray, ByteArray, ByteArray],
    *,
    undecided: ByteArray,
    accept: ByteArray,
    deny: ByteArray,
) -> None:
    """A policy's verdicts into the still undecided cells of its groups' rows."""
    yes, no, decided = verdicts
    if not decided.any():
        return
    still = undecided[rows]
    accept[rows] |= still & yes
    deny[rows] |= still & no
    undecided[rows] = still & ~decided
