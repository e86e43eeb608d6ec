"""ipBlock membership of pods, one of the things pod classes are told apart by.

Why this module exists: two pods are in one class only if they lie in the same ipBlocks of every
policy (S15), so classifying needs, per pod, the set of blocks holding one of its addresses, and
per block, the classes inside it. These are computed here for all pods and blocks at once by
binary search over sorted addresses (``_classes`` keeps the grouping and the selector index).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from kubefence.api import IPBlock, NetworkPolicy, Pod
from kubefence.engine._combine import sorted_unique
from kubefence.semantics import block_intervals

__all__ = ["block_classes", "block_membership", "distinct_blocks", "membership_keys"]

IntArray = npt.NDArray[np.int64]


def distinct_blocks(policies: Iterable[NetworkPolicy]) -> tuple[IPBlock, ...]:
    """Every ipBlock any effective rule of ``policies`` names, in first-seen order.

    Read from the policies as parsed (a direction outside policyTypes has no effect, S02), so
    that only the policies that select some pod need compiling.
    """
    seen: dict[IPBlock, None] = {}
    for policy in policies:
        directions = (
            policy.ingress if policy.affects_ingress else (),
            policy.egress if policy.affects_egress else (),
        )
        for rules in directions:
            for rule in rules:
                for peer in rule.peers:
                    if peer.ip_block is not None:
                        seen.setdefault(peer.ip_block, None)
    return tuple(seen)


def block_membership(pods: Sequence[Pod], blocks: Sequence[IPBlock]) -> tuple[IntArray, IntArray]:
    """The (pod, block) pairs such that some IP of the pod lies in the block (S15), sorted by
    pod, then block, without repeats.

    A network is a contiguous range of addresses, so with every pod address of one family
    sorted once, a block (cidr minus its excepts, ``block_intervals``) is a few ranges of
    positions found by binary search; the ranges are expanded to pairs by numpy, so the work
    grows with blocks x log(addresses) plus the memberships found, not blocks x addresses.
    """
    none = np.zeros(0, dtype=np.int64)
    if not blocks:
        return none, none
    found: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    for i, pod in enumerate(pods):
        for ip in pod.ips:
            found[ip.version].append((int(ip), i))
    keys: list[IntArray] = []
    for version, pairs in found.items():
        if not pairs:
            continue
        pairs.sort()
        values = [v for v, _ in pairs]
        owners = np.asarray([i for _, i in pairs], dtype=np.int64)
        starts: list[int] = []
        ends: list[int] = []
        ids: list[int] = []
        for b, block in enumerate(blocks):
            if block.cidr.version != version:
                continue
            for first, last in block_intervals(block):
                lo, hi = bisect_left(values, first), bisect_right(values, last)
                if lo < hi:
                    starts.append(lo)
                    ends.append(hi)
                    ids.append(b)
        if not ids:
            continue
        lengths = np.asarray(ends, dtype=np.int64) - np.asarray(starts, dtype=np.int64)
        # positions starts[k]..ends[k]-1 of every range k, concatenated
        shift = np.repeat(np.cumsum(lengths) - lengths - np.asarray(starts), lengths)
        positions = np.arange(int(lengths.sum()), dtype=np.int64) - shift
        blocks_of = np.repeat(np.asarray(ids, dtype=np.int64), lengths)
        keys.append(owners[positions] * len(blocks) + blocks_of)
    if not keys:
        return none, none
    pairs_key = sorted_unique(np.concatenate(keys))  # two IPs of a pod in one block: once
    return pairs_key // len(blocks), pairs_key % len(blocks)


def membership_keys(count: int, pod_of: IntArray, block_of: IntArray) -> list[bytes]:
    """Per pod, the bytes of its sorted block ids (``b""`` for none): a hashable class key."""
    keys = [b""] * count
    if not len(pod_of):
        return keys
    blob = block_of.astype(np.int64).tobytes()
    bounds = np.searchsorted(pod_of, np.arange(count + 1)).tolist()
    for i in np.flatnonzero(np.diff(bounds)).tolist():
        keys[i] = blob[8 * bounds[i] : 8 * bounds[i + 1]]
    return keys


def block_classes(
    pod_of: IntArray, block_of: IntArray, of_pod: IntArray, blocks: int, classes: int
) -> tuple[IntArray, ...]:
    """Per block, the sorted ids of the classes whose pods lie in it."""
    key = sorted_unique(block_of * max(1, classes) + of_pod[pod_of])
    bounds = np.searchsorted(key, np.arange(blocks + 1) * max(1, classes)).tolist()
    ids = key % max(1, classes)
    return tuple(ids[bounds[b] : bounds[b + 1]] for b in range(blocks))
