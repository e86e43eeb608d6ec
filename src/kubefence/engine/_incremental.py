"""A reachability result that follows changes: policies, pods and namespace labels, one at a time.

Why this module exists: a controller or an editor that re-checks a cluster after each change
should not recompute every pair. ``ReachabilityModel`` keeps, for one port, the class-level
state of ``ReachabilityAnalysis`` (pod classes, selector results, packed peer vectors) and two
bit-packed classes x classes matrices, both ``[source, destination]`` with destinations packed:

    egress[s, d]  = s may send to d as far as egress policies go (and d can be reached, S21)
    ingress[s, d] = d accepts s as far as ingress policies go
    allowed       = egress & ingress, computed by ``matrix()``                       (S05)

Each row of ``egress`` and each column of ``ingress`` depends only on the policies selecting
that one class, so a change recomputes only what it can affect:

| change                     | recomputed                                                     |
|----------------------------|----------------------------------------------------------------|
| add/remove/replace policy  | egress rows / ingress columns of the classes it selects (old or |
|                            | new), for the directions either version isolates (S03)          |
| add pod                    | nothing when a class of identical pods exists (it joins it)     |
| remove pod                 | nothing: its class keeps its verdicts and may stay empty        |
| namespace labels           | everything (a rebuild): namespace selectors reach any rule      |

Two changes need new classes and rebuild the whole state instead (the result is the same, the
time is that of ``ReachabilityAnalysis``): a policy naming an ipBlock no other policy names
(pods are split by ipBlock membership), and a pod unlike every existing one (new labels, ports,
hostNetwork flag or namespace). Memory: two classes x classes bit matrices (2 x 145 MB at
34,000 classes) beside the analysis; never pods x pods. At 100,000 pods a policy change takes
a few milliseconds (``benchmarks/bench_engine.py --sizes large --incremental``).

An inventory with admin tiers is refused (``InputError``): tiers' first-match order is not a
union of per-policy rows; the whole-cluster engine (``ReachabilityAnalysis``) evaluates them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from kubefence.api import (
    METADATA_NAME_LABEL,
    Inventory,
    Labels,
    Namespace,
    NetworkPolicy,
    Pod,
    Protocol,
)
from kubefence.engine._blocks import distinct_blocks
from kubefence.engine._compute import ReachabilityAnalysis, node_overrides
from kubefence.engine._matrix import Matrix
from kubefence.errors import InputError
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    CompiledRule,
    PortMatcher,
    Settings,
    compile_policy,
    ip_in_block,
    parse_port,
    require_no_tiers,
)

__all__ = ["ReachabilityModel"]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]
_ClassKey = tuple[int, Labels, bool, tuple[object, ...], bytes]


class ReachabilityModel:
    """allowed[src, dst] on one port, kept up to date under single changes (see module doc)."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        port: int | str,
        protocol: Protocol = Protocol.TCP,
        settings: Settings = DEFAULT_SETTINGS,
    ) -> None:
        # Tiers' first-match order does not decompose into per-class rows the way
        # NetworkPolicy unions do; say so rather than answer without them.
        require_no_tiers(inventory, by="ReachabilityModel (incremental engine)")
        self.port = parse_port(port)
        self.protocol = protocol
        self.settings = settings
        self._namespaces: dict[str, Namespace] = {n.name: n for n in inventory.namespaces}
        self._pods: dict[str, Pod] = {p.key: p for p in inventory.pods}
        self._sources: dict[str, NetworkPolicy] = {p.key: p for p in inventory.policies}
        self.rebuilds = 0  # how many changes needed a whole recomputation (see module doc)
        self._build(inventory)

    # --- construction ---------------------------------------------------------------------

    def _inventory(self) -> Inventory:
        return Inventory.of(
            namespaces=list(self._namespaces.values()),
            pods=list(self._pods.values()),
            policies=list(self._sources.values()),
        )

    def _rebuild(self) -> None:
        self.rebuilds += 1
        self._build(self._inventory())

    def _build(self, inventory: Inventory) -> None:
        analysis = self._analysis = ReachabilityAnalysis(inventory, settings=self.settings)
        classes = analysis.classes
        count = classes.count
        self._count = count
        self._width = -(-count // 8)
        self._class_of: dict[str, int] = {
            p.key: c for p, c in zip(inventory.pods, classes.of_pod.tolist(), strict=True)
        }
        self._keys: dict[_ClassKey, int] | None = None  # built on the first added pod
        self._known_blocks = frozenset(classes.blocks)
        effective = self._effective = analysis.effective_ports(self.port, self.protocol)
        reachable = self._reachable = effective >= 0
        self._reachable_bits: ByteArray = np.packbits(reachable)
        self._port_bits: dict[tuple[PortMatcher, ...], tuple[ByteArray, BoolArray]] = {}
        # Per namespace index: the policies selecting some class, with the classes they select.
        self._selecting: dict[int, dict[str, tuple[CompiledPolicy, frozenset[int]]]] = {}
        for source in inventory.policies:
            selected = self._selected(source)
            if selected:  # only policies selecting some class are compiled and kept
                self._put_selecting(compile_policy(source), selected)
        egress = np.empty((count, self._width), dtype=np.uint8)
        ingress = np.empty((count, self._width), dtype=np.uint8)
        if count:
            ingress[:] = np.packbits(np.ones(count, dtype=np.bool_))
            port_keys = list(analysis._port_keys)
            port_at = np.empty((len(port_keys), count), dtype=np.bool_)
            for t, ports in enumerate(port_keys):
                port_at[t] = self._port_vector(ports)
            analysis.combine_egress(egress, port_at, reachable=reachable)
            analysis.combine_ingress(ingress, port_at)
        self._egress, self._ingress = egress, ingress

    def _selected(self, policy: NetworkPolicy) -> frozenset[int]:
        """Classes ``policy`` selects (S01, S23), as absolute class ids."""
        classes = self._analysis.classes
        k = classes.namespace_index(policy.namespace)
        if k is None:
            return frozenset()
        lo = classes.ns_range[k][0]
        hits = self._analysis.index.selected_in_namespace(policy.pod_selector, policy.namespace)
        return frozenset((np.flatnonzero(hits) + lo).tolist())

    def _put_selecting(self, policy: CompiledPolicy, selected: frozenset[int]) -> None:
        if not selected:
            return
        k = self._analysis.classes.namespace_position[policy.namespace]
        self._selecting.setdefault(k, {})[policy.source.key] = (policy, selected)

    # --- per-class vectors ----------------------------------------------------------------

    def _port_vector(self, ports: tuple[PortMatcher, ...]) -> BoolArray:
        vector = self._analysis.port_vector(
            ports, effective=self._effective, protocol=self.protocol
        )
        out: BoolArray = vector & self._reachable
        return out

    def _ports(self, ports: tuple[PortMatcher, ...]) -> tuple[ByteArray, BoolArray]:
        """(packed destinations whose port matches, the same unpacked), memoised."""
        hit = self._port_bits.get(ports)
        if hit is None:
            vector = self._port_vector(ports)
            hit = self._port_bits[ports] = (np.packbits(vector), vector)
        return hit

    def _peer_bits(self, rules: list[CompiledRule]) -> ByteArray:
        """Packed peer vectors of ``rules``, one row each (``width`` bytes)."""
        keys = self._analysis._peer_keys
        ids = np.asarray([keys.setdefault(r.peers, len(keys)) for r in rules], dtype=np.int64)
        return self._analysis._packed_peers(ids)[:, : self._width]

    def _rules_at(self, c: int, *, ingress: bool) -> list[CompiledRule] | None:
        """Rules of the policies selecting class ``c`` in one direction; None: not isolated."""
        k = int(self._analysis.classes.namespace_of[c])
        found: list[CompiledRule] | None = None
        for policy, selected in self._selecting.get(k, {}).values():
            rules = policy.ingress if ingress else policy.egress
            if rules is None or c not in selected:
                continue
            found = [] if found is None else found
            found.extend(rules)
        return found

    def _egress_row(self, s: int) -> None:
        """egress[s, :]: every reachable destination, or the OR of rule peers AND ports."""
        rules = self._rules_at(s, ingress=False)
        if rules is None:
            self._egress[s] = self._reachable_bits
            return
        row = np.zeros(self._width, dtype=np.uint8)
        if rules:
            peers = self._peer_bits(rules)
            for rule, bits in zip(rules, peers, strict=True):
                row |= bits & self._ports(rule.ports)[0]
        self._egress[s] = row

    def _ingress_column(self, d: int) -> BoolArray:
        """ingress[:, d]: every source, or the OR of the peers of rules whose ports match at
        ``d`` (S21: the port is judged at the destination)."""
        rules = self._rules_at(d, ingress=True)
        if rules is None:
            return np.ones(self._count, dtype=np.bool_)
        rules = [r for r in rules if self._ports(r.ports)[1][d]]
        row = np.zeros(self._width, dtype=np.uint8)
        if rules:
            row = np.bitwise_or.reduce(self._peer_bits(rules), axis=0)
        return np.unpackbits(row, count=self._count).view(np.bool_)

    # --- changes ------------------------------------------------------------------------------

    def add_policy(self, policy: NetworkPolicy) -> None:
        """Add a policy (InputError if one with that namespace/name exists)."""
        if policy.key in self._sources:
            raise InputError(f"policy {policy.key} already exists")
        self._put(policy.key, policy)

    def remove_policy(self, key: str) -> None:
        """Remove the policy ``namespace/name`` (InputError if absent)."""
        if key not in self._sources:
            raise InputError(f"no policy {key!r}")
        self._put(key, None)

    def replace_policy(self, policy: NetworkPolicy) -> None:
        """Replace the policy with the same namespace/name (or add it)."""
        self._put(policy.key, policy)

    def _put(self, key: str, new: NetworkPolicy | None) -> None:
        if new is None:
            del self._sources[key]
        else:
            self._sources[key] = new
            if not self._known_blocks.issuperset(distinct_blocks([new])):
                self._rebuild()  # its ipBlocks split classes (module doc)
                return
        classes = self._analysis.classes
        namespace = key.partition("/")[0]
        k = classes.namespace_index(namespace)
        if k is None:
            return  # no pod in that namespace: nothing to select (S01)
        in_ns = self._selecting.setdefault(k, {})
        old = in_ns.pop(key, None)
        compiled = None if new is None else compile_policy(new)
        selected = frozenset() if new is None else self._selected(new)
        if compiled is not None:
            self._put_selecting(compiled, selected)
        touched: set[int] = set()
        egress = ingress = False
        versions = [] if old is None else [old]
        if compiled is not None:
            versions.append((compiled, selected))
        for policy, chosen in versions:
            if chosen:
                touched |= chosen
                egress |= policy.egress is not None
                ingress |= policy.ingress is not None
        self._update(sorted(touched), egress=egress, ingress=ingress)

    def _update(self, touched: Iterable[int], *, egress: bool, ingress: bool) -> None:
        """Recompute the egress rows and ingress columns of classes ``touched``."""
        touched = list(touched)
        if egress:
            for s in touched:
                self._egress_row(s)
        if ingress:
            for d in touched:
                column = self._ingress_column(d)
                byte, bit = d >> 3, np.uint8(0x80 >> (d & 7))
                cells = self._ingress[:, byte]
                cells &= ~bit
                cells |= np.where(column, bit, np.uint8(0))

    def set_namespace_labels(self, name: str, labels: Mapping[str, str]) -> None:
        """Relabel a namespace (``kubernetes.io/metadata.name`` is kept, S16)."""
        self._namespaces[name] = Namespace(name, Labels({**labels, METADATA_NAME_LABEL: name}))
        self._rebuild()

    def add_pod(self, pod: Pod) -> None:
        """Add a pod (InputError if the name is taken); its namespace may be new."""
        if pod.key in self._pods:
            raise InputError(f"pod {pod.key} already exists")
        self._pods[pod.key] = pod
        key = self._key_of(pod)
        c = None if key is None else self._class_keys().get(key)
        if c is None:
            self._rebuild()  # unlike every class (module doc)
        else:
            self._class_of[pod.key] = c

    def remove_pod(self, key: str) -> None:
        """Remove the pod ``namespace/name`` (InputError if absent)."""
        if self._pods.pop(key, None) is None:
            raise InputError(f"no pod {key!r}")
        del self._class_of[key]

    def _key_of(self, pod: Pod) -> _ClassKey | None:
        """The class key ``classify`` would give ``pod`` (without a node split: no tiers)."""
        classes = self._analysis.classes
        k = classes.namespace_index(pod.namespace)
        if k is None:
            return None
        member = [
            b
            for b, block in enumerate(classes.blocks)
            if any(ip_in_block(ip, block) for ip in pod.ips)
        ]
        return (
            k,
            pod.labels,
            pod.host_network,
            pod.ports,
            np.asarray(member, dtype=np.int64).tobytes(),
        )

    def _class_keys(self) -> dict[_ClassKey, int]:
        if self._keys is None:
            classes = self._analysis.classes
            member: list[list[int]] = [[] for _ in range(classes.count)]
            for b, ids in enumerate(classes.block_classes):
                for c in ids.tolist():
                    member[c].append(b)
            self._keys = {
                (
                    int(classes.namespace_of[c]),
                    classes.labels[c],
                    bool(classes.host_network[c]),
                    classes.ports[c],
                    np.asarray(member[c], dtype=np.int64).tobytes(),
                ): c
                for c in range(classes.count)
            }
        return self._keys

    # --- results ------------------------------------------------------------------------------

    def matrix(self) -> Matrix:
        """The current result, as ``compute_matrix`` would give it for the current objects."""
        pods = sorted(self._pods.values(), key=lambda p: (p.namespace, p.name))
        class_of = np.asarray([self._class_of[p.key] for p in pods], dtype=np.int64)
        names = sorted(
            {p.namespace for p in pods}
            | set(self._namespaces)
            | {p.namespace for p in self._sources.values()}
        )
        position = {n: k for k, n in enumerate(names)}
        reachable = self._reachable[class_of] if len(class_of) else np.zeros(0, dtype=np.bool_)
        return Matrix(
            port=str(self.port),
            protocol=self.protocol,
            endpoints=tuple(p.key for p in pods),
            class_of=class_of,
            class_bits=self._egress & self._ingress,  # S05
            endpoint_namespace=np.asarray([position[p.namespace] for p in pods], dtype=np.int64),
            namespaces=tuple(names),
            self_allowed=self.settings.self_traffic_allowed,
            overrides=node_overrides(pods, self.settings, reachable=reachable),
        )
