"""Every port class at once: one bit mask per class pair instead of one matrix per port class.

Why this module exists: "on which ports may a reach b" (``kubefence audit``) needs the class
matrix of every port class (14 on the benchmark clusters, more on real ones); computing them one
by one repeats the same selector and peer work and allocates a classes x classes matrix each
time. ``port_masks`` runs the combination of ``ReachabilityAnalysis._class_matrix`` once, with
bits in place of booleans: bit k of ``masks[a, b, k // bits]`` is ``class_matrix(classes[k])``
at [a, b]. A rule contributes, per destination class, the bits of the port classes its port
matchers accept there (named ports resolved per destination, S21, by ``port_vector``), so

    egress[s, d]  = all if s not egress-isolated, else OR_rules(selected[s] and peer[d]) * ports[d]
    ingress[s, d] = all if d not ingress-isolated, else OR_rules(selected[d] and peer[s]) * ports[d]
    masks         = reachable[d] AND egress AND ingress                                      (S05)

which is the boolean formula of ``_compute`` evaluated on each bit; a test compares the two on
generated clusters and the scenario corpus. With admin tiers (ClusterNetworkPolicy) a rule's
effect depends on the rules before it, so each port class's bit is taken from that port's class
matrix (``class_bits``, where the tiers are vectorised) instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kubefence._collector import collector_paused
from kubefence.engine._compute import ReachabilityAnalysis
from kubefence.engine._ports import PortClass
from kubefence.semantics import CompiledRule

__all__ = ["mask_bits", "node_pairs", "port_masks"]

MaskArray = npt.NDArray[np.unsignedinteger[npt.NBitBase]]


def mask_bits(count: int) -> int:
    """Bits per word for ``count`` port classes: the smallest of 8, 16, 32, 64 that holds
    them, else 64 (several words)."""
    return next(b for b in (8, 16, 32, 64) if count <= b or b == 64)


def node_pairs(analysis: ReachabilityAnalysis) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """S24: ``Matrix.overrides`` of every numbered port (every port class's representative):
    (hostNetwork pod, pods on its node) pairs allowed whatever the policies say."""
    return analysis.from_node


def port_masks(analysis: ReachabilityAnalysis, classes: Sequence[PortClass]) -> MaskArray:
    """``masks[a, b, w]``: bits k (of word w = k // bits) of the port classes open between
    distinct pods of classes a and b (no S07 diagonal, no S24 node overrides)."""
    bits = mask_bits(len(classes))
    words = max(1, -(-len(classes) // bits))
    count = analysis.classes.count
    out = np.zeros((count, count, words), dtype=np.dtype(f"uint{bits}"))
    if analysis.has_tiers:
        for k, pc in enumerate(classes):
            w, bit = divmod(k, bits)
            open_ = analysis.class_matrix(pc.port, pc.protocol)
            out[:, :, w] |= open_.astype(out.dtype) << out.dtype.type(bit)
        return out
    with collector_paused():
        for w in range(words):
            chunk = classes[w * bits : (w + 1) * bits]
            out[:, :, w] = _word(analysis, chunk, np.dtype(f"uint{bits}"))
    return out


def _word(
    analysis: ReachabilityAnalysis,
    chunk: Sequence[PortClass],
    dtype: np.dtype[np.unsignedinteger[npt.NBitBase]],
) -> MaskArray:
    classes = analysis.classes
    count = classes.count
    effective = [analysis.effective_ports(c.port, c.protocol) for c in chunk]
    bit = [dtype.type(1 << k) for k in range(len(chunk))]
    reachable = np.zeros(count, dtype=dtype)
    for k, e in enumerate(effective):
        reachable[e >= 0] |= bit[k]
    allowed = np.empty((count, count), dtype=dtype)
    allowed[:] = reachable[None, :]
    by_ports: dict[object, MaskArray] = {}

    def rule_ports(rule: CompiledRule) -> MaskArray:
        hit = by_ports.get(rule.ports)
        if hit is None:
            hit = np.zeros(count, dtype=dtype)
            for k, c in enumerate(chunk):
                vector = analysis.port_vector(
                    rule.ports, effective=effective[k], protocol=c.protocol
                )
                hit[vector] |= bit[k]
            hit &= reachable
            by_ports[rule.ports] = hit
        return hit

    by_namespace = analysis.selecting_policies()
    for k, entries in sorted(by_namespace.items()):
        lo, hi = classes.ns_range[k]
        if lo == hi:
            continue
        # Ingress of destinations in this namespace: columns lo..hi.
        isolated = np.zeros(hi - lo, dtype=np.bool_)
        merged: dict[int, tuple[MaskArray, npt.NDArray[np.bool_]]] = {}
        for policy, selected in entries:
            if policy.ingress is None:
                continue
            isolated |= selected
            for rule in policy.ingress:
                target = np.where(selected, rule_ports(rule)[lo:hi], 0).astype(dtype)
                if target.any():
                    peers = analysis.rule_peers(rule)
                    seen = merged.get(id(peers))
                    merged[id(peers)] = (target if seen is None else seen[0] | target, peers)
        if isolated.any():
            rows = np.flatnonzero(isolated)
            block = np.zeros((len(rows), count), dtype=dtype)
            for target, peers in merged.values():
                here = target[rows]
                hit = np.flatnonzero(here)
                if len(hit):
                    block[hit] |= here[hit, None] * peers[None, :].astype(dtype)
            allowed[:, lo + rows] &= block.T
        # Egress of sources in this namespace: rows lo..hi.
        isolated = np.zeros(hi - lo, dtype=np.bool_)
        sources: dict[tuple[int, int], tuple[npt.NDArray[np.bool_], MaskArray]] = {}
        for policy, selected in entries:
            if policy.egress is None:
                continue
            isolated |= selected
            for rule in policy.egress:
                ports = rule_ports(rule)
                if not ports.any():
                    continue
                peers = analysis.rule_peers(rule)
                key = (id(peers), id(ports))
                seen_e = sources.get(key)
                if seen_e is None:
                    sources[key] = (selected.copy(), np.where(peers, ports, 0).astype(dtype))
                else:
                    seen_e[0][:] |= selected
        if isolated.any():
            rows = np.flatnonzero(isolated)
            block = np.zeros((len(rows), count), dtype=dtype)
            for selected, target in sources.values():
                hit = np.flatnonzero(selected[rows])
                if len(hit):
                    block[hit] |= target
            allowed[lo + rows] &= block
    return allowed
