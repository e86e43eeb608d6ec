"""The result of the engine: who may connect to whom on one port, kept per class until asked.

Why this module exists: a 100,000-pod matrix has 10^10 cells, but only as many distinct rows as
there are pod classes. ``Matrix`` stores the class matrix and the pod-to-class map, answers
single pairs and per-namespace counts from them, and expands to pods (``dense``, ``rows``,
``to_json``) only when a caller wants every cell. The JSON shape is the contract of
``kubefence matrix -o json`` in docs/matrix-json.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from kubefence.api import Protocol
from kubefence.errors import InputError

__all__ = ["Matrix", "NamespaceSummary"]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]

_SUMMARY_CELLS = 8_000_000  # class-matrix cells summed per step of namespace_summary


@dataclass(frozen=True, slots=True, eq=False)
class NamespaceSummary:
    """Allowed ordered pod pairs per (source namespace, destination namespace).

    ``allowed[i][j]`` counts pairs (a, b), a in ``namespaces[i]``, b in ``namespaces[j]``,
    a != b, that may connect; ``pairs[i][j]`` counts all such pairs. A pod's connection to
    itself is not counted (it is always allowed, S07). Both are read-only namespaces x
    namespaces int64 arrays (at 5,000 namespaces, 200 MB each where tuples of Python ints took
    over 1 GB); ``to_json`` gives plain lists.
    """

    namespaces: tuple[str, ...]
    allowed: IntArray
    pairs: IntArray

    def total_allowed(self) -> int:
        """Allowed ordered pairs of distinct pods, over every namespace pair."""
        return int(self.allowed.sum())

    def total_pairs(self) -> int:
        """Ordered pairs of distinct pods, over every namespace pair."""
        return int(self.pairs.sum())

    def to_json(self) -> dict[str, Any]:
        return {
            "namespaces": list(self.namespaces),
            "allowed": self.allowed.tolist(),
            "pairs": self.pairs.tolist(),
        }


@dataclass(frozen=True, init=False, eq=False)
class Matrix:
    """allowed[src, dst] for every pair of pods, on one port and protocol.

    ``endpoints`` are the pods as ``namespace/name`` in inventory order (by namespace, then
    name). ``class_bits`` holds the policy verdict between two distinct pods of classes ``a``
    and ``b`` as bit ``b`` of row ``a`` (``np.packbits`` order: eight destinations to a byte,
    1 GB less than a boolean matrix at 34,000 classes); ``class_allowed`` is the same matrix
    unpacked on first use. The verdict of a pod towards itself is ``self_allowed`` (S07) when
    set. ``overrides`` lists (source endpoint index, destination endpoint indices) that are
    allowed whatever the policies say (S24: traffic from a pod's own node).

    Built with either ``class_allowed`` (a boolean classes x classes matrix) or ``class_bits``.
    """

    port: str
    protocol: Protocol
    endpoints: tuple[str, ...]
    class_of: IntArray
    class_bits: ByteArray
    endpoint_namespace: IntArray
    namespaces: tuple[str, ...]
    self_allowed: bool
    overrides: tuple[tuple[int, tuple[int, ...]], ...]

    def __init__(
        self,
        port: str,
        protocol: Protocol,
        endpoints: tuple[str, ...],
        class_of: IntArray,
        class_allowed: BoolArray | None = None,
        *,
        endpoint_namespace: IntArray,
        namespaces: tuple[str, ...],
        self_allowed: bool = True,
        overrides: tuple[tuple[int, tuple[int, ...]], ...] = (),
        class_bits: ByteArray | None = None,
    ) -> None:
        if (class_allowed is None) == (class_bits is None):
            raise ValueError("give exactly one of class_allowed and class_bits")
        if class_bits is None:
            assert class_allowed is not None
            class_bits = np.packbits(class_allowed, axis=1)
            object.__setattr__(self, "class_allowed", class_allowed)
        for name, value in (
            ("port", port),
            ("protocol", protocol),
            ("endpoints", endpoints),
            ("class_of", class_of),
            ("class_bits", class_bits),
            ("endpoint_namespace", endpoint_namespace),
            ("namespaces", namespaces),
            ("self_allowed", self_allowed),
            ("overrides", overrides),
        ):
            object.__setattr__(self, name, value)

    @property
    def class_count(self) -> int:
        return int(self.class_bits.shape[0])

    def class_rows(self, rows: IntArray | slice) -> BoolArray:
        """Rows ``rows`` of the class matrix, unpacked (len(rows) x classes booleans)."""
        packed = self.class_bits[rows]
        return np.unpackbits(packed, axis=1, count=self.class_count).view(np.bool_)

    @cached_property
    def class_allowed(self) -> BoolArray:
        """The boolean classes x classes matrix (classes^2 bytes: unpacked on first use)."""
        return self.class_rows(slice(None))

    @cached_property
    def _position(self) -> Mapping[str, int]:
        return {name: i for i, name in enumerate(self.endpoints)}

    def index(self, endpoint: str) -> int:
        """Position of ``namespace/name`` in ``endpoints``; InputError when it is not a pod."""
        try:
            return self._position[endpoint]
        except KeyError:
            raise InputError(f"no pod {endpoint!r} in the inventory") from None

    @cached_property
    def _override_map(self) -> Mapping[int, frozenset[int]]:
        return {src: frozenset(dsts) for src, dsts in self.overrides}

    def class_verdict(self, a: int, b: int) -> bool:
        """The policy verdict between distinct pods of classes ``a`` and ``b``."""
        return bool((self.class_bits[a, b >> 3] >> (7 - (b & 7))) & 1)

    def allowed(self, src: str, dst: str) -> bool:
        """May ``src`` open a connection to ``dst`` (both ``namespace/name``)?"""
        i, j = self.index(src), self.index(dst)
        if i == j and self.self_allowed:
            return True
        if j in self._override_map.get(i, frozenset()):
            return True
        return self.class_verdict(int(self.class_of[i]), int(self.class_of[j]))

    def dense(self) -> BoolArray:
        """The full endpoints x endpoints boolean matrix (N^2 bytes: mind large clusters)."""
        of = self.class_of
        n = len(of)
        full = np.empty((n, n), dtype=np.bool_)
        step = max(1, _SUMMARY_CELLS // max(1, self.class_count))
        for lo in range(0, n, step):
            full[lo : lo + step] = self.class_rows(of[lo : lo + step])[:, of]
        for src, dsts in self.overrides:
            full[src, list(dsts)] = True
        if self.self_allowed:
            np.fill_diagonal(full, True)
        return full

    def rows(self) -> list[str]:
        """``rows[i][j]`` is "1" when ``endpoints[i]`` may connect to ``endpoints[j]``."""
        chars = self.dense().view(np.uint8) + np.uint8(ord("0"))
        return [row.tobytes().decode("ascii") for row in chars]

    def to_json(self) -> dict[str, Any]:
        """The stable ``matrix -o json`` object of docs/matrix-json.md."""
        return {
            "port": self.port,
            "protocol": str(self.protocol),
            "endpoints": list(self.endpoints),
            "rows": self.rows(),
        }

    def allowed_count(self) -> int:
        """Allowed ordered pairs of distinct pods (self pairs excluded), without expanding."""
        return self.namespace_summary().total_allowed()

    def namespace_summary(self) -> NamespaceSummary:
        """Counts per namespace pair computed on classes (never N x N), as int64 arrays.

        Class matrices repeat their rows (at 10,000 pods: ~4,900 classes, ~850 distinct rows),
        so each distinct row is summed once per destination namespace, weighted by class
        sizes (running sums along the row, differenced where a namespace's columns end, in
        steps of about ``_SUMMARY_CELLS`` cells); the sums are then gathered per source
        class, weighted by its size and added per source namespace, a run of namespaces at a
        time. A pod and itself is not a pair (S07); overrides (S24) are added pair by pair.
        Integer arithmetic throughout (int32 while a value is at most the number of pods), so
        counts are exact.
        """
        n_ns = len(self.namespaces)
        counts = _allowed_pairs(self, n_ns)
        for src, dsts in self.overrides:
            cs = int(self.class_of[src])
            for dst in dsts:
                if dst != src and not self.class_verdict(cs, int(self.class_of[dst])):
                    counts[self.endpoint_namespace[src], self.endpoint_namespace[dst]] += 1
        sizes = np.bincount(self.endpoint_namespace, minlength=n_ns).astype(np.int64)
        pairs = np.outer(sizes, sizes)
        pairs[np.diag_indices(n_ns)] -= sizes
        counts.flags.writeable = False
        pairs.flags.writeable = False
        return NamespaceSummary(namespaces=self.namespaces, allowed=counts, pairs=pairs)


def _allowed_pairs(m: Matrix, n_ns: int) -> IntArray:
    """Allowed pod pairs per (source, destination) namespace from the class matrix alone
    (see ``Matrix.namespace_summary``)."""
    n_cls = m.class_count
    counts = np.zeros((n_ns, n_ns), dtype=np.int64)
    if not n_cls:
        return counts
    weight = np.bincount(m.class_of, minlength=n_cls).astype(np.int64)
    cls_ns = np.zeros(n_cls, dtype=np.int64)
    cls_ns[m.class_of] = m.endpoint_namespace
    packed = np.ascontiguousarray(m.class_bits)
    as_bytes = packed.view(np.dtype((np.void, packed.shape[1] * packed.itemsize))).ravel()
    _, distinct, row_of = np.unique(as_bytes, return_index=True, return_inverse=True)
    order = np.argsort(cls_ns, kind="stable")  # classes grouped by namespace (often already)
    grouped = cls_ns[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    present = grouped[starts]
    small = np.int32 if len(m.class_of) < 2**31 else np.int64
    col_weight = weight[order].astype(small)
    per_row = np.zeros((len(distinct), len(present)), dtype=small)
    step = max(1, _SUMMARY_CELLS // max(n_cls, len(present)))
    ends = np.r_[starts[1:], n_cls] - 1
    for lo in range(0, len(distinct), step):
        # C order: the column gather leaves the block in Fortran order, where a sum along
        # rows strides through memory
        block = np.ascontiguousarray(m.class_rows(distinct[lo : lo + step])[:, order])
        # per destination namespace: running sums along each row, differenced at the
        # namespace boundaries (a fraction of the time of reduceat over ~1,000 short groups)
        running = np.cumsum(block * col_weight, axis=1, dtype=small)
        sums = running[:, ends]
        np.subtract(sums[:, 1:], running[:, ends[:-1]], out=sums[:, 1:])
        per_row[lo : lo + step] = sums
    rows_of_sources = row_of.ravel()[order]
    bounds = np.r_[starts, n_cls]
    group = 0
    while group < len(starts):
        last = int(np.searchsorted(bounds, bounds[group] + step, side="right")) - 1
        last = max(last, group + 1)  # at least one namespace
        lo, hi = bounds[group], bounds[last]
        gathered = per_row[rows_of_sources[lo:hi]].astype(np.int64)
        gathered *= weight[order[lo:hi], None]
        counts[np.ix_(present[group:last], present)] = np.add.reduceat(
            gathered, starts[group:last] - lo, axis=0
        )
        group = last
    cls = np.arange(n_cls)
    own = (packed[cls, cls >> 3] >> (7 - (cls & 7)).astype(np.uint8)) & 1
    np.add.at(counts, (cls_ns, cls_ns), -(own.astype(np.int64) * weight))
    return counts
