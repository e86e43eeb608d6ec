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
the port (classes, selector results, the rules' peers split into wide peers kept as packed rows
and narrow ones kept as bits, ``_atoms``), so asking for many ports costs little more than
asking for one. Memory: one classes x classes bit matrix (145 MB at 34,000 classes, packed
along destinations, see ``Matrix.class_bits``) plus a packed buffer of about 512 rows; pods are
expanded only on request. Each direction's rows are picked from a table of distinct rows (one
OR per distinct set of wide peers); ingress verdicts are computed as rows ``[dst, src]`` and
folded into the destination columns through 8 x 8 bit-block transposes.

With admin tiers (ClusterNetworkPolicy), egress and ingress are computed apart, each then
passed through the tiers' verdicts for that side (``_tiers``: Admin, NetworkPolicy, Baseline).
The module is about 490 lines because ``ReachabilityAnalysis`` keeps the preparation and the
per-port combination together: they share its private caches (rule peers, port keys, packed
peer vectors for the incremental model, resolved port names) and splitting the class would
only expose them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from kubefence._collector import collector_paused
from kubefence.api import Inventory, LabelSelector, Pod, Protocol
from kubefence.engine._atoms import PeerAtoms, Split, apply_egress, apply_ingress
from kubefence.engine._blocks import distinct_blocks
from kubefence.engine._classes import ClassIndex, PodClasses, classify
from kubefence.engine._combine import Occurrences, padded, sorted_unique
from kubefence.engine._matrix import Matrix
from kubefence.engine._tiers import TierPlan, has_node_peers, tier_blocks
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
        tiered = inventory.admin_policies
        self.classes: PodClasses = classify(
            inventory,
            blocks=tier_blocks(tiered, after=distinct_blocks(inventory.policies)),
            extra_namespaces={p.namespace for p in inventory.policies},
            split_host_nodes=has_node_peers(tiered),
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
        self._selecting: dict[int, list[tuple[CompiledPolicy, BoolArray]]] | None = None
        # Every rule of a selecting policy, as (selected classes, peer id, port id) entries.
        self._peer_keys: dict[tuple[PeerMatcher, ...], int] = {}
        self._port_keys: dict[tuple[PortMatcher, ...], int] = {}
        self._peer_row = np.zeros(0, dtype=np.int64)  # peer id -> row of _peer_store, or -1
        self._peer_store = np.zeros((0, -(-self.classes.count // 64) * 8), dtype=np.uint8)
        self._peer_used = 0
        classes = self.classes
        count = classes.count
        # Per direction, flat lists: the selected classes of each rule (policy after policy),
        # each rule's selected count, peer id and port id, and every isolating policy's classes.
        found: dict[bool, tuple[list[int], list[int], list[int], list[int], list[int]]] = {
            True: ([], [], [], [], []),
            False: ([], [], [], [], []),
        }
        # Each rule's peers by position (not deduplicated: hashing the matchers cost more
        # than it saved; ``PeerAtoms`` shares the wide peers among them).
        rule_peers: list[tuple[PeerMatcher, ...]] = []
        self._rule_peers = rule_peers
        port_keys = self._port_keys
        selected_ids = self.index.selected_ids
        for i, source in enumerate(inventory.policies):
            ids = selected_ids(source.pod_selector, source.namespace)  # S01 + S23
            if not ids:
                continue
            policy = self._compiled[i] = compile_policy(source)
            n = len(ids)
            for ingress, rules in ((True, policy.ingress), (False, policy.egress)):
                if rules is None:
                    continue
                selected, lengths, peers, ports, isolating = found[ingress]
                isolating += ids  # S03
                for rule in rules:
                    selected += ids
                    lengths.append(n)
                    peers.append(len(rule_peers))
                    rule_peers.append(rule.peers)
                    ports.append(port_keys.setdefault(rule.ports, len(port_keys)))
        self._ingress, self._egress = (
            Occurrences.from_lists(*found[d], count=count) for d in (True, False)
        )
        self._split: tuple[PeerAtoms, Split, Split] | None = None  # built on first use
        self._endpoint_ns = self.classes.namespace_of[self.classes.of_pod]
        self._from_node = node_overrides(inventory.pods, settings)
        self._tiers = TierPlan.of(inventory, self.index, settings=settings, resolved=self._resolved)

    @property
    def has_tiers(self) -> bool:
        """Does the inventory hold tiered policies (ClusterNetworkPolicy and v1alpha1 kinds)?"""
        return self._tiers is not None

    @property
    def from_node(self) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """S24 pairs: (hostNetwork pod, pods on its node) allowed whatever the policies say."""
        return self._from_node

    def selecting_policies(self) -> Mapping[int, list[tuple[CompiledPolicy, BoolArray]]]:
        """Per namespace index ``k``: each policy of that namespace that selects some class,
        with the classes it selects as a boolean vector over ``classes.ns_range[k]`` (S01, S23).
        Computed on first use (audit's port masks read it; the matrix itself does not)."""
        if self._selecting is None:
            found: dict[int, list[tuple[CompiledPolicy, BoolArray]]] = {}
            position = self.classes.namespace_position
            policies = self.policies
            for i, source in enumerate(self.inventory.policies):
                selected = self.index.selected_in_namespace(source.pod_selector, source.namespace)
                if selected.any():
                    found.setdefault(position[source.namespace], []).append((policies[i], selected))
            self._selecting = found
        return self._selecting

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
        if hit is None:
            hit = self._peer_cache[peers] = self._peer_vector(peers)
        return hit

    def _packed_peers(self, ids: IntArray) -> ByteArray:
        """Packed peer vectors of peer ids ``ids``, rows padded to whole 64-bit words
        (memoised packed only: 8x less memory than booleans).

        Known vectors are rows of one store (``_peer_store``, row ``_peer_row[pid]``), so a
        request is one gather. The vectors not yet known are built together: the class ids
        of those matching few classes (most: a selector in the policy's own namespace) are
        scattered as bits into one zeroed block by one ``bitwise_or.at``; the others are
        packed from a boolean vector.
        """
        count = self.classes.count
        width = -(-count // 64) * 8
        if len(self._peer_row) < len(self._peer_keys):
            grown = np.full(2 * len(self._peer_keys), -1, dtype=np.int64)
            grown[: len(self._peer_row)] = self._peer_row
            self._peer_row = grown
        missing = sorted_unique(ids[self._peer_row[ids] < 0]).tolist()
        if missing:
            keys = list(self._peer_keys)
            block = np.zeros((len(missing), width), dtype=np.uint8)
            every = np.zeros(width, dtype=np.uint8)
            every[: count // 8] = 0xFF
            if count % 8:
                every[count // 8] = (0xFF << (8 - count % 8)) & 0xFF
            rows: list[IntArray] = []
            hits: list[IntArray] = []
            for row, pid in enumerate(missing):
                found = self._peer_ids(keys[pid])
                if found is None:
                    block[row] = every
                elif len(found) > _SCATTER:  # many classes: one boolean vector, packed
                    vector = np.zeros(8 * width, dtype=np.bool_)
                    vector[found] = True
                    block[row] = np.packbits(vector)
                elif len(found):
                    hits.append(found)
                    rows.append(np.full(len(found), row, dtype=np.int64))
            if hits:
                at = np.concatenate(hits)
                flat = np.concatenate(rows) * width + (at >> 3)
                np.bitwise_or.at(
                    block.reshape(-1), flat, np.uint8(0x80) >> (at & 7).astype(np.uint8)
                )
            used = self._peer_used
            if used + len(missing) > len(self._peer_store):
                rows_wanted = max(used + len(missing), len(self._peer_store) * 5 // 4 + 64)
                store = np.empty((rows_wanted, width), np.uint8)  # a quarter spare: few copies
                store[:used] = self._peer_store[:used]
                self._peer_store = store
            self._peer_store[used : used + len(missing)] = block
            self._peer_row[np.asarray(missing, dtype=np.int64)] = np.arange(
                used, used + len(missing), dtype=np.int64
            )
            self._peer_used = used + len(missing)
        return self._peer_store[self._peer_row[ids]]

    def _peer_vector(self, peers: tuple[PeerMatcher, ...]) -> BoolArray:
        vector = np.zeros(self.classes.count, dtype=np.bool_)
        found = self._peer_ids(peers)
        if found is None:
            vector[:] = True
        else:
            vector[found] = True
        return vector

    def _peer_ids(self, peers: tuple[PeerMatcher, ...]) -> IntArray | None:
        """Ids of the classes any of ``peers`` matches (repeats possible), None for all."""
        classes = self.classes
        found: list[IntArray] = []
        for peer in peers:
            if peer.kind is PeerKind.ANY:  # S09: every pod (and every IP)
                return None
            if peer.kind is PeerKind.IP_BLOCK:
                # S15: pod IPs inside cidr minus excepts; a pod without IPs never matches.
                assert peer.ip_block is not None
                ids = classes.block_classes[self._block_pos[peer.ip_block]]
                if not self.settings.ipblock_matches_pods:
                    ids = ids[classes.host_network[ids]]
                found.append(ids)
                continue
            # S11/S12/S13/S14: pod selector within the own namespace or selected namespaces.
            ids = self.index.select(
                peer.pod_selector,
                namespace=peer.namespace,
                namespace_selector=peer.namespace_selector,
            )
            found.append(ids)
        if len(found) == 1:
            return found[0]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def _local_ids(self, peer: PeerMatcher) -> list[int] | None:
        """Ids of the classes a pod peer without namespaceSelector matches in its own
        namespace (S11), None for any other peer."""
        if peer.kind is not PeerKind.PODS or peer.namespace is None:
            return None
        if peer.namespace_selector is not None:
            return None
        selector = peer.pod_selector
        return self.index.selected_ids(_EVERY if selector is None else selector, peer.namespace)

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
        count = self.classes.count
        width = -(-count // 8)
        effective = self.effective_ports(port, protocol)
        reachable = effective >= 0
        # Packed along destinations: bit b of row a is allowed[a, b]; the padding bits of the
        # last byte stay 0 (packbits pads with 0, every vector ANDed in is packed alike).
        allowed = np.empty((count, width), dtype=np.uint8)  # every row written by egress
        if not count:
            return allowed
        port_at = np.empty((len(self._port_keys), count), dtype=np.bool_)
        for t, ports in enumerate(self._port_keys):
            port_at[t] = self.port_vector(ports, effective=effective, protocol=protocol)
        port_at &= reachable
        tiers = None
        if self._tiers is not None:  # Admin, NetworkPolicy, Baseline per side (T01)
            tiers = self._tiers.matrices(
                effective=effective,
                protocol=protocol,
                egress_isolated=self._egress.isolated,
                ingress_isolated=self._ingress.isolated,
            )
        self.combine_egress(allowed, port_at, reachable=reachable)
        if tiers is not None:  # egress alone so far: the tiers' egress verdicts apply here
            tiers.egress(allowed)
        self.combine_ingress(
            allowed,
            port_at,
            adjust=tiers.ingress_span if tiers is not None and tiers.has_ingress else None,
        )
        return allowed

    def _occurrences(self) -> tuple[PeerAtoms, Split, Split]:
        """The rules' peers split into dense rows and sparse bits (``_atoms``), and both
        directions' occurrences per peer; port-independent, built on first use."""
        if self._split is None:
            atoms = PeerAtoms.build(
                self._rule_peers,
                count=self.classes.count,
                matched=lambda peer: self._peer_ids((peer,)),
                local=self._local_ids,
            )
            self._split = (atoms, Split.of(self._egress, atoms), Split.of(self._ingress, atoms))
        return self._split

    def combine_egress(
        self, allowed: ByteArray, port_at: BoolArray, *, reachable: BoolArray
    ) -> None:
        """Every row of ``allowed`` (packed like ``class_bits``, may come uninitialised)
        written: ``reachable`` where the class is not egress-isolated, else the OR of its
        rules' peers AND ports; ``port_at[t]``: port tuple ``t`` matches at a destination
        class (S21), reachable included."""
        atoms, egress, _ = self._occurrences()
        port_ok = padded(np.packbits(port_at, axis=1))
        apply_egress(
            allowed,
            egress,
            store=atoms.store,
            port_ok=port_ok,
            port_at=port_at,
            reachable=np.packbits(reachable),
        )

    def combine_ingress(
        self,
        allowed: ByteArray,
        port_at: BoolArray,
        *,
        adjust: Callable[[ByteArray, int], None] | None = None,
    ) -> None:
        """Columns of ingress-isolated destinations of ``allowed`` ANDed with the OR of their
        rules' peers (rules whose ports match at the destination); ``adjust``: the admin
        tiers' change to each span of ingress rows (``_atoms.apply_ingress``)."""
        atoms, _, ingress = self._occurrences()
        apply_ingress(
            allowed, ingress, store=atoms.store, port_at=port_at, tile=_TILE, adjust=adjust
        )

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


_EVERY = LabelSelector()  # the empty selector: every pod in scope (S11)
_SCATTER = 256  # peers matching more classes are packed from a boolean vector
_TILE = 512  # destination classes gathered before their ingress is folded into ``allowed``


def compute_matrix(
    inventory: Inventory,
    *,
    port: int | str,
    protocol: Protocol = Protocol.TCP,
    settings: Settings = DEFAULT_SETTINGS,
) -> Matrix:
    """allowed[src, dst] for every pair of pods on ``port``/``protocol``; see the module doc."""
    return ReachabilityAnalysis(inventory, settings=settings).matrix(port, protocol)
