"""Whole-cluster reachability for one port: the compiled algebra applied to pod classes at once.

Why this module exists: the reference evaluator answers one pair at a time; auditing a cluster
needs every pair. This module applies the same compiled policies (``semantics._algebra``) to
boolean vectors over pod classes and combines them as unions of outer products, namespace by
namespace (a policy only selects pods of its own namespace, S01), so that the work grows with
the classes each distinct rule vector reaches rather than pods x pods x policies:

    egress_ok[s, d]  = not egress_isolated[s]  or OR_rules(selected[s] and peer[d] and port[d])
    ingress_ok[s, d] = not ingress_isolated[d] or OR_rules(selected[d] and peer[s] and port[d])
    allowed          = egress_ok and ingress_ok                                   (S05)

The port of a connection is always judged at its destination (S21): for ingress the selected
pod, for egress the peer pod. ``ReachabilityAnalysis`` keeps everything that does not depend on
the port (classes, selector results, peer vectors), so asking for many ports costs little more
than asking for one. Memory: one classes x classes bit matrix (145 MB at 34,000 classes, packed
along destinations, see ``Matrix.class_bits``) plus a packed buffer of about 512 rows; pods are
expanded only on request. Ingress verdicts are computed as rows ``[dst, src]`` and folded into
the destination columns through 8 x 8 bit-block transposes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from kubefence._collector import collector_paused
from kubefence.api import Inventory, Pod, Protocol
from kubefence.engine._classes import ClassIndex, PodClasses, classify, distinct_blocks
from kubefence.engine._matrix import Matrix
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    CompiledRule,
    PeerKind,
    PeerMatcher,
    PortMatcher,
    Settings,
    compile_policy,
    parse_port,
    resolve_named_port,
)

__all__ = ["ReachabilityAnalysis", "compute_matrix", "node_overrides"]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]


class ReachabilityAnalysis:
    """Port-independent preparation of one inventory; ``matrix(port=...)`` per port."""

    def __init__(self, inventory: Inventory, *, settings: Settings = DEFAULT_SETTINGS) -> None:
        with collector_paused():
            self._prepare(inventory, settings)

    def _prepare(self, inventory: Inventory, settings: Settings) -> None:
        self.inventory = inventory
        self.settings = settings
        self.classes: PodClasses = classify(
            inventory,
            blocks=distinct_blocks(inventory.policies),
            extra_namespaces={p.namespace for p in inventory.policies},
        )
        self.index = ClassIndex(self.classes, settings=settings)
        self._block_pos = {b: k for k, b in enumerate(self.classes.blocks)}
        self._peer_cache: dict[tuple[PeerMatcher, ...], BoolArray] = {}
        self._rule_cache: dict[int, BoolArray] = {}  # id(rule) of rules in self.policies
        self._named_cache: dict[tuple[str, Protocol], IntArray] = {}
        # Only policies that select some class can allow or isolate anything; the others are
        # compiled when ``policies`` is first read (about a third of them, in the benchmarks).
        self._compiled: dict[int, CompiledPolicy] = {}
        self._all_compiled: tuple[CompiledPolicy, ...] | None = None
        self._by_namespace: dict[int, list[tuple[CompiledPolicy, BoolArray]]] = {}
        for i, source in enumerate(inventory.policies):
            k = self.classes.namespace_index(source.namespace)
            assert k is not None  # classify() saw every policy namespace
            # S01 + S23 (hostNetwork never selected unless set)
            selected = self.index.selected_in_namespace(source.pod_selector, source.namespace)
            if selected.any():
                policy = self._compiled[i] = compile_policy(source)
                self._by_namespace.setdefault(k, []).append((policy, selected))
        self._endpoint_ns = self.classes.namespace_of[self.classes.of_pod]
        self._from_node = node_overrides(inventory.pods, settings)

    @property
    def policies(self) -> tuple[CompiledPolicy, ...]:
        """Every policy of the inventory, compiled, in inventory order."""
        if self._all_compiled is None:
            compiled = self._compiled
            self._all_compiled = tuple(
                compiled[i] if i in compiled else compile_policy(p)
                for i, p in enumerate(self.inventory.policies)
            )
        return self._all_compiled

    # --- port-independent vectors --------------------------------------------------------

    def peer_vector(self, peers: tuple[PeerMatcher, ...]) -> BoolArray:
        """Classes matched by any of ``peers`` (S10: peers of one rule are ORed)."""
        hit = self._peer_cache.get(peers)
        if hit is not None:
            return hit
        classes = self.classes
        vector = np.zeros(classes.count, dtype=np.bool_)
        for peer in peers:
            if peer.kind is PeerKind.ANY:  # S09: every pod (and every IP)
                vector[:] = True
                break
            if peer.kind is PeerKind.IP_BLOCK:
                # S15: pod IPs inside cidr minus excepts; a pod without IPs never matches.
                assert peer.ip_block is not None
                ids = classes.block_classes[self._block_pos[peer.ip_block]]
                if not self.settings.ipblock_matches_pods:
                    ids = ids[classes.host_network[ids]]
                vector[ids] = True
                continue
            # S11/S12/S13/S14: pod selector within the own namespace or selected namespaces.
            ids = self.index.select(
                peer.pod_selector,
                namespace=peer.namespace,
                namespace_selector=peer.namespace_selector,
            )
            vector[ids] = True
        self._peer_cache[peers] = vector
        return vector

    def rule_peers(self, rule: CompiledRule) -> BoolArray:
        """``peer_vector`` of one rule of ``self.policies``, memoised by identity."""
        hit = self._rule_cache.get(id(rule))
        if hit is None:
            hit = self.peer_vector(rule.peers)
            self._rule_cache[id(rule)] = hit
        return hit

    # --- port-dependent vectors ----------------------------------------------------------

    def _resolved(self, name: str, protocol: Protocol) -> IntArray:
        """Per class: the number ``name``/``protocol`` resolves to (S21), -1 when undeclared."""
        cache = self._named_cache  # port-independent: shared by every port asked
        hit = cache.get((name, protocol))
        if hit is None:
            # Resolving directly is cheaper than hashing the port tuples to share answers.
            found = (resolve_named_port(name, protocol, ports) for ports in self.classes.ports)
            hit = np.fromiter(
                (-1 if n is None else n for n in found), dtype=np.int64, count=self.classes.count
            )
            cache[(name, protocol)] = hit
        return hit

    def effective_ports(self, port: int | str, protocol: Protocol) -> IntArray:
        """Per destination class: the number a connection to ``port`` uses, -1 when ``port``
        is a name the class does not declare (it cannot be connected to on it, S21)."""
        wanted = parse_port(port)
        if isinstance(wanted, int):
            return np.full(self.classes.count, wanted, dtype=np.int64)
        return self._resolved(wanted, protocol)

    def port_vector(
        self,
        matchers: tuple[PortMatcher, ...],
        *,
        effective: IntArray,
        protocol: Protocol,
    ) -> BoolArray:
        """Destination classes where the connection's port matches any of ``matchers``."""
        out = np.zeros(self.classes.count, dtype=np.bool_)
        for m in matchers:
            if m.protocol is None:  # S09: ports absent or empty, every port and protocol
                out[:] = True
                break
            if m.protocol is not protocol:
                continue
            if m.name is not None:  # S21: named, resolved at the destination pod
                resolved = self._resolved(m.name, protocol)
                # S23: a hostNetwork pod acts as its node's IP, where a name matches nothing.
                out |= (resolved == effective) & self.index.pod_like
            elif m.low is None:  # S19: protocol only, every port
                out[:] = True
                break
            else:  # S20: inclusive range (a single port is low == high)
                assert m.high is not None
                out |= (effective >= m.low) & (effective <= m.high)
        return out

    # --- the matrix ----------------------------------------------------------------------

    def class_matrix(self, port: int | str, protocol: Protocol = Protocol.TCP) -> BoolArray:
        """allowed[a, b] between distinct pods of classes a and b (no S07 diagonal)."""
        count = self.classes.count
        bits = self.class_bits(port, protocol)
        return np.unpackbits(bits, axis=1, count=count).view(np.bool_)

    def class_bits(self, port: int | str, protocol: Protocol = Protocol.TCP) -> ByteArray:
        """``class_matrix`` bit-packed along destinations (``np.packbits(.., axis=1)``)."""
        with collector_paused():
            return self._class_bits(port, protocol)

    def _class_bits(self, port: int | str, protocol: Protocol) -> ByteArray:
        classes = self.classes
        count = classes.count
        effective = self.effective_ports(port, protocol)
        reachable = effective >= 0
        # Packed along destinations: bit b of row a is allowed[a, b]; the padding bits of the
        # last byte are kept 0 by the reachable mask (packbits pads with 0).
        width = -(-count // 8)
        allowed = np.empty((count, width), dtype=np.uint8)
        allowed[:] = np.packbits(reachable)
        packed: dict[int, tuple[ByteArray, BoolArray]] = {}  # id(vector): (its bits, vector)
        port_cache: dict[tuple[PortMatcher, ...], BoolArray] = {}
        by_rule: dict[int, BoolArray] = {}  # id(rule): rules live as long as ``self``
        # ids of port vectors (kept in port_cache) that match no destination: their rules
        # allow nothing on this port, so their peers need not be computed.
        nowhere: set[int] = set()

        def rule_ports(rule: CompiledRule) -> BoolArray:
            hit = by_rule.get(id(rule))
            if hit is not None:
                return hit
            hit = port_cache.get(rule.ports)
            if hit is None:
                hit = (
                    self.port_vector(rule.ports, effective=effective, protocol=protocol) & reachable
                )
                port_cache[rule.ports] = hit
                if not hit.any():
                    nowhere.add(id(hit))
            by_rule[id(rule)] = hit
            return hit

        both: dict[tuple[int, int], BoolArray] = {}

        def peer_and_port(rule: CompiledRule) -> BoolArray:
            """Egress: destinations matched by peer AND port; one shared array per pair."""
            peers, ports = self.rule_peers(rule), rule_ports(rule)
            hit = both.get((id(peers), id(ports)))
            if hit is None:
                hit = both[(id(peers), id(ports))] = peers & ports
            return hit

        # Ingress is computed per destination, as rows of ``ingress[dst, src]``, gathered for
        # a span of consecutive namespaces (about ``_TILE`` destination classes) and folded
        # into those columns of ``allowed`` by a bit-packed transpose: one extra span x
        # classes buffer instead of a second classes x classes matrix.
        ingress = _IngressSpans(allowed)
        for k, entries in sorted(self._by_namespace.items()):
            lo, hi = classes.ns_range[k]
            if lo == hi:
                continue
            # Ingress of destinations in this namespace (S03, S04, S08).
            isolated = np.zeros(hi - lo, dtype=np.bool_)
            sources: list[BoolArray] = []
            targets: list[BoolArray] = []
            for policy, selected in entries:
                if policy.ingress is None:
                    continue
                isolated |= selected
                for rule in policy.ingress:
                    target = selected & rule_ports(rule)[lo:hi]
                    if target.any():
                        targets.append(target)
                        sources.append(self.rule_peers(rule))
            if isolated.any():
                rows = np.flatnonzero(isolated)
                left = [t[rows] for t in targets]
                bits = _packed_or_of_outer(left, sources, packed, shape=(len(rows), width))
                ingress.add(lo, hi, rows, bits)
            # Egress of sources in this namespace.
            isolated = np.zeros(hi - lo, dtype=np.bool_)
            sources = []
            targets = []
            for policy, selected in entries:
                if policy.egress is None:
                    continue
                isolated |= selected
                for rule in policy.egress:
                    if id(rule_ports(rule)) not in nowhere:
                        sources.append(selected)
                        targets.append(peer_and_port(rule))
            if isolated.any():
                rows = np.flatnonzero(isolated)
                left = [s[rows] for s in sources]
                bits = _packed_or_of_outer(
                    left, targets, packed, shape=(len(rows), allowed.shape[1])
                )
                allowed[rows + lo, :] &= bits
        ingress.flush()
        return allowed

    def matrix(
        self, port: int | str, protocol: Protocol = Protocol.TCP, *, label: str | None = None
    ) -> Matrix:
        """The pod-level result for one port (a number, or a name resolved per destination).

        ``label`` names the port in the result (default: the port as given), e.g. the label of
        a port class whose representative ``port`` is.
        """
        overrides = self._from_node
        wanted = parse_port(port)
        if overrides and not isinstance(wanted, int):
            # A name the destination does not declare stays unreachable, even from its node.
            declared = self._resolved(wanted, protocol)[self.classes.of_pod] >= 0
            overrides = node_overrides(self.inventory.pods, self.settings, reachable=declared)
        return Matrix(
            port=str(port) if label is None else label,
            protocol=protocol,
            endpoints=tuple(p.key for p in self.inventory.pods),
            class_of=self.classes.of_pod,
            class_bits=self.class_bits(port, protocol),
            endpoint_namespace=self._endpoint_ns,
            namespaces=self.classes.namespaces,
            self_allowed=self.settings.self_traffic_allowed,
            overrides=overrides,
        )


def node_overrides(
    pods: Sequence[Pod | None], settings: Settings, *, reachable: BoolArray | None = None
) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """S24: (hostNetwork pod, positions of the pods on its node) pairs allowed whatever the
    policies say. ``pods[i]`` None is a retired slot; a destination whose ``reachable[i]`` is
    False (a port name it does not declare) stays unreachable, even from its node."""
    if not settings.allow_from_node or settings.host_network_selectable:
        return ()
    on_node: dict[str, list[int]] = {}
    hosts: list[tuple[int, str]] = []
    for i, pod in enumerate(pods):
        if pod is None or pod.node is None:
            continue
        if pod.host_network:
            hosts.append((i, pod.node))
        elif reachable is None or reachable[i]:
            on_node.setdefault(pod.node, []).append(i)
    return tuple((i, tuple(on_node[node])) for i, node in hosts if on_node.get(node))


_TILE = 512  # destination classes gathered before their ingress is folded into ``allowed``


class _IngressSpans:
    """Ingress rows (``[dst, src]``, packed along sources) of consecutive namespaces,
    transposed and ANDed into the bit columns of ``allowed`` once they span about ``_TILE``
    destination classes.

    A span starts at a multiple of 8 so that its destinations are whole bytes of ``allowed``;
    destinations of the span without ingress rows (e.g. of the previous span, sharing its first
    byte) keep an all-ones row, which leaves their bits as they are.
    """

    def __init__(self, allowed: ByteArray) -> None:
        self.allowed = allowed
        self.lo = self.hi = 0
        self.rows: list[tuple[IntArray, ByteArray]] = []
        # One buffer reused by every span (fresh ones would each be page-faulted in anew).
        self.buffer = np.empty((0, allowed.shape[1]), dtype=np.uint8)

    def add(self, lo: int, hi: int, rows: IntArray, bits: ByteArray) -> None:
        """Destinations ``lo + rows`` (classes of one namespace ``lo``..``hi``) get ``bits``."""
        if self.rows and hi - self.lo > _TILE:
            self.flush()
        if not self.rows:
            self.lo = lo - lo % 8
        self.hi = hi
        self.rows.append((rows + lo, bits))

    def flush(self) -> None:
        if not self.rows:
            return
        height = -(-(self.hi - self.lo) // 8) * 8
        if len(self.buffer) < height:
            self.buffer = np.empty((max(height, _TILE + 16), self.allowed.shape[1]), np.uint8)
        span = self.buffer[:height]
        span.fill(0xFF)
        for rows, bits in self.rows:
            span[rows - self.lo] = bits
        first = self.lo // 8
        columns = _transposed_bits(span)[: len(self.allowed)]
        self.allowed[:, first : first + height // 8] &= columns
        self.rows = []


_M1, _M2, _M3 = (np.uint64(m) for m in (0x00AA00AA00AA00AA, 0x0000CCCC0000CCCC, 0xF0F0F0F0))
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)


def _transposed_bits(packed: ByteArray) -> ByteArray:
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


def _packed_or_of_outer(
    left: Sequence[BoolArray],
    right: Sequence[BoolArray],
    packed: dict[int, tuple[ByteArray, BoolArray]],
    *,
    shape: tuple[int, ...],
) -> ByteArray:
    """OR over k of outer(left[k], right[k]), packed along ``right`` (``np.packbits`` order).

    ``left`` vectors are short (the isolated classes of one namespace) and ``right`` ones long
    (every class) and often the very same object (a peer vector shared by many rules), so rules
    with one ``right`` are merged first and its packed bits are then ORed into each row it
    reaches: the work is the rows each distinct vector reaches times classes / 8 bytes.
    ``packed`` memoises the bits of each ``right`` vector by identity (the vector is kept
    alongside so that its id stays unique for the memo's lifetime).
    """
    merged: dict[int, tuple[BoolArray, BoolArray]] = {}
    for rows, vector in zip(left, right, strict=True):
        seen = merged.get(id(vector))
        merged[id(vector)] = (rows if seen is None else seen[0] | rows, vector)
    out = np.zeros(shape, dtype=np.uint8)
    for rows, vector in merged.values():
        hit = np.flatnonzero(rows)
        if not len(hit):
            continue
        bits = packed.get(id(vector))
        if bits is None:
            bits = packed[id(vector)] = (np.packbits(vector), vector)
        if len(hit) == 1:
            out[hit[0]] |= bits[0]
        else:
            out[hit] |= bits[0]
    return out


def compute_matrix(
    inventory: Inventory,
    *,
    port: int | str,
    protocol: Protocol = Protocol.TCP,
    settings: Settings = DEFAULT_SETTINGS,
) -> Matrix:
    """allowed[src, dst] for every pair of pods on ``port``/``protocol``; see the module doc."""
    return ReachabilityAnalysis(inventory, settings=settings).matrix(port, protocol)
