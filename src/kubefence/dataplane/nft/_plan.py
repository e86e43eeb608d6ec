"""What the nftables table must contain, as data: peer atoms, pod classes, their sets, dispatch.

Why this module exists: rendering text and deciding what the text means are two jobs. This module
reduces an inventory and the sandbox's pod addresses to a ``RulesetPlan`` built only from the
compiled policy algebra (``kubefence.semantics``); ``_render`` turns the plan into ``nft -f``
text. The plan also answers "what would the table do with this packet?" (``RulesetPlan.verdict``)
so unit tests can hold the compiler to the reference evaluator without root.

How the table enforces the policies (all on the ``forward`` hook of the node namespace, which
every pod-to-pod packet crosses in the sandbox):

1. ``ct state established,related accept`` (S06: replies of allowed connections).
2. Optional: packets from the node's own addresses are accepted (S24, see below).
3. The destination address is looked up in the *atom* map (``meta mark set ip daddr map
   @atoms_v4``), then egress of the source: ``ip saddr vmap @egress_v4`` jumps to the source
   pod's egress class chain; pods not isolated for egress are not in the map and pass (S03).
4. The source address is looked up in the atom map, then ingress of the destination: ``ip daddr
   vmap @ingress_v4`` likewise.
5. A class chain does one set lookup, ``meta mark . meta l4proto . th dport @set return``, then
   ``drop``. The set holds everything the class may talk to in that direction (S04, S10: the
   union over every rule of every selecting policy), so per-packet cost does not grow with the
   number of policies. Denied packets are dropped, not rejected, so probes time out. The mark is
   reset to 0 before each lookup and at the end (kubefence owns the packet mark in the node).

Atoms: every peer of every policy denotes a set of addresses (the pods a selector matches, an
ipBlock's ranges; for egress named ports, the pods where the name resolves to one number). An
atom is a largest group of addresses that no such set tells apart, in both IP families at once
(a dual-stack pod's two addresses share one), numbered 1, 2, ...; addresses in no set are atom
0. Class sets are written over atom numbers (``3-5 . tcp . 80``), so replicas with the same
labels and the two families of a pod cost one element, not one per address.

Classes: pods isolated by the same policies in a direction share a chain; for ingress the
resolution of the named ports those policies use against the pod's own ports (S21) is part of
the class key. Egress named ports resolve per destination pod (S21): the pods where a name
resolves to 8080 form their own address set, matched with ``tcp . 8080``.

Implementation-defined choices (documented here, once):

* Protocols. The API only names TCP, UDP and SCTP (S18). A rule whose ``ports`` is absent or empty
  allows every protocol, including ICMP, on every "port" (protocol range 0-255 x 0-65535, which
  also covers the two bytes ``th dport`` reads for port-less protocols); a port entry allows only
  its own protocol. This mirrors ``port_matches``, where protocol None matches everything.
  SCTP elements are rendered (and syntax-checked) even where the kernel has no SCTP sockets.
* Self traffic (S07) never leaves the pod, so it never crosses the forward hook: always allowed
  by construction (``Settings.self_traffic_allowed=False`` cannot be enforced here).
* Node traffic (S24): packets the node itself originates (kubelet probes) go through ``output``,
  not ``forward``, so with ``Settings.allow_from_node`` (the default) they are allowed by
  construction. When ``node_addresses`` are given, forwarded packets whose source is a node
  address are accepted as well (e.g. a hostNetwork pod in its own namespace holding the node
  address). With ``allow_from_node`` False an ``output`` chain applies the destination's
  ingress dispatch to them instead.
* Pods' connections to the node's own addresses are delivered locally (``input``), not
  forwarded; an ``input`` chain applies the source's egress dispatch to them (S05: towards an
  address that is no pod only the source's egress applies). IPv6 neighbour discovery is
  exempt in ``input`` and ``output``, or isolated pods would lose their link to the node.
* hostNetwork pods (S23) are never in the dispatch maps (they share the node's address and
  their traffic does not cross ``forward``) and are not members of pod peers unless
  ``Settings.host_network_selectable`` says so; the addresses the sandbox gives them may still
  fall inside ipBlocks, which then match them like any address.
* Addresses come from ``addresses`` (what the sandbox assigned), never from ``pod.ips``; a pod
  missing from it has no address, is not dispatched and matches no peer set.
* ``Settings.ipblock_matches_pods=False`` removes every (non-hostNetwork) pod address from the
  ipBlock ranges (S15).
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubefence.api import (
    Inventory,
    IPAddress,
    Labels,
    LabelSelector,
    NetworkPolicy,
    Pod,
    Protocol,
)
from kubefence.dataplane.nft._intervals import (
    FULL_PORTS,
    FULL_PROTOCOLS,
    Box,
    Interval,
    address_interval,
    block_intervals,
    covers,
    disjoint_boxes,
    family_range,
    merge,
    subtract,
    sweep,
)
from kubefence.errors import DataplaneError
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    Direction,
    PeerKind,
    PeerMatcher,
    PortMatcher,
    Settings,
    compile_policy,
    peer_matches_pod,
    resolve_named_port,
    selector_matches,
    selects_pod,
)

__all__ = [
    "PROTOCOL_NUMBERS",
    "AtomRange",
    "ClassSource",
    "Dispatch",
    "NamedPort",
    "PlanMemo",
    "PodClass",
    "RulesetPlan",
    "plan_ruleset",
]

PROTOCOL_NUMBERS: Mapping[Protocol, int] = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
VERSIONS = (4, 6)
_ANY = -1  # the address set of an absent/empty from/to: every address, atom 0 included


@dataclass(frozen=True, slots=True)
class NamedPort:
    """An ingress named port resolved against the pods of one class (None: not declared)."""

    name: str
    protocol: Protocol
    port: int | None


@dataclass(frozen=True, slots=True)
class ClassSource:
    """A policy isolating a class, and how many rules it has for the class's direction."""

    policy: str  # "namespace/name"
    rules: int  # 0: isolates and allows nothing (S08)


@dataclass(frozen=True, slots=True)
class PodClass:
    """Pods that share one chain for one direction: same isolating policies (and, for ingress,
    the same named-port resolution). ``elements`` are disjoint boxes (atom range, protocol
    range, port range) of what the class may talk to."""

    direction: Direction
    number: int  # 1-based, in the order of the class keys
    sources: tuple[ClassSource, ...]
    named_ports: tuple[NamedPort, ...]
    pods: tuple[str, ...]
    elements: tuple[Box, ...] = field(compare=False)

    @property
    def chain(self) -> str:
        prefix = "in" if self.direction is Direction.INGRESS else "eg"
        return f"{prefix}_c{self.number}"

    def allows(self, atom: int, *, protocol: int, port: int) -> bool:
        """Would the set lookup of this class's chain match (peer atom, protocol, port)?"""
        return any(
            a[0] <= atom <= a[1] and p[0] <= protocol <= p[1] and q[0] <= port <= q[1]
            for a, p, q in self.elements
        )


@dataclass(frozen=True, slots=True)
class AtomRange:
    """One element of an atom map: the addresses ``low``-``high`` of one family are ``atom``;
    ``pod`` names the pod when the range is one pod's address."""

    version: int
    low: int
    high: int
    atom: int
    pod: str | None = None


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One verdict-map element: packets from/to ``address`` (pod ``pod``) jump to a class."""

    address: IPAddress
    pod: str
    number: int


@dataclass(frozen=True, slots=True)
class RulesetPlan:
    """Everything the table holds, in render order."""

    atoms: tuple[AtomRange, ...]  # sorted by (version, low)
    legend: Mapping[int, tuple[str, ...]] = field(compare=False)  # atom -> peers containing it
    egress: tuple[PodClass, ...]
    ingress: tuple[PodClass, ...]
    egress_dispatch: tuple[Dispatch, ...]  # sorted by (version, address)
    ingress_dispatch: tuple[Dispatch, ...]
    node_addresses: tuple[IPAddress, ...]  # accepted as sources (S24); empty when not wanted
    allow_from_node: bool = True  # False: an output chain applies ingress to node traffic

    @property
    def atom_count(self) -> int:
        return max((r.atom for r in self.atoms), default=0)

    def atom_of(self, address: IPAddress) -> int:
        """The atom the map gives ``address`` (0: in no peer set)."""
        value = int(address)
        keys = [(r.version, r.low) for r in self.atoms]
        index = bisect.bisect_right(keys, (address.version, value)) - 1
        if index >= 0:
            found = self.atoms[index]
            if found.version == address.version and found.low <= value <= found.high:
                return found.atom
        return 0

    def verdict(
        self, source: IPAddress, destination: IPAddress, *, protocol: int, port: int
    ) -> bool:
        """What the rendered table does with the first packet of a new connection.

        Self traffic (same address) never reaches the forward hook and is allowed (S07).
        """
        if source == destination or source in self.node_addresses:
            return True
        egress = {d.address: d.number for d in self.egress_dispatch}
        ingress = {d.address: d.number for d in self.ingress_dispatch}
        if source in egress:
            cls = self.egress[egress[source] - 1]
            if not cls.allows(self.atom_of(destination), protocol=protocol, port=port):
                return False
        if destination in ingress:
            cls = self.ingress[ingress[destination] - 1]
            if not cls.allows(self.atom_of(source), protocol=protocol, port=port):
                return False
        return True


# --- building ---------------------------------------------------------------------------------


class _Context:
    """Look-ups shared by every class: pod addresses, namespace labels, cached peer sets.

    Built from the pods, namespaces, addresses and settings only (``PlanMemo`` reuses it for
    another inventory with the same ones), so it keeps no reference to the inventory."""

    def __init__(
        self,
        inventory: Inventory,
        addresses: Mapping[str, Sequence[IPAddress]],
        settings: Settings,
    ) -> None:
        self.settings = settings
        self.addresses: dict[str, tuple[IPAddress, ...]] = {}
        for pod in inventory.pods:
            found = addresses.get(pod.key, ())
            if found:
                self.addresses[pod.key] = tuple(sorted(set(found), key=_address_key))
        self.addressed: tuple[Pod, ...] = tuple(
            p for p in inventory.pods if p.key in self.addresses
        )
        self.by_namespace: dict[str, list[Pod]] = {}
        for pod in self.addressed:
            self.by_namespace.setdefault(pod.namespace, []).append(pod)
        # Pods a pod peer cannot tell apart (same namespace, labels, hostNetwork), grouped once.
        self.shapes: dict[str, list[tuple[Pod, ...]]] = {}
        for namespace, pods in self.by_namespace.items():
            grouped: dict[tuple[Labels, bool], list[Pod]] = {}
            for pod in pods:
                grouped.setdefault((pod.labels, pod.host_network), []).append(pod)
            self.shapes[namespace] = [tuple(group) for group in grouped.values()]
        self.labels = {ns: inventory.namespace_labels(ns) for ns in self.by_namespace}
        self._peer_cache: dict[PeerMatcher, dict[int, tuple[Interval, ...]]] = {}
        self._pods_cache: dict[PeerMatcher, tuple[Pod, ...]] = {}
        self._destination_cache: dict[PeerMatcher, tuple[tuple[IPAddress, Pod], ...]] = {}
        self._namespace_cache: dict[LabelSelector, tuple[str, ...]] = {}
        self._named_cache: dict[tuple[PeerMatcher, str, Protocol], dict[int, Ranges]] = {}
        self._selectable = tuple(
            p for p in self.addressed if not p.host_network or settings.host_network_selectable
        )

    def _candidate_namespaces(self, peer: PeerMatcher) -> Sequence[str]:
        """A pruning pre-check of a pod peer's namespace part (``peer_matches_pod`` decides)."""
        if peer.namespace is not None:
            return (peer.namespace,) if peer.namespace in self.shapes else ()
        if peer.namespace_selector is None:
            return tuple(self.shapes)
        found = self._namespace_cache.get(peer.namespace_selector)
        if found is None:
            found = tuple(
                ns
                for ns in self.shapes
                if selector_matches(peer.namespace_selector, self.labels[ns])
            )
            self._namespace_cache[peer.namespace_selector] = found
        return found

    def matching_pods(self, peer: PeerMatcher) -> tuple[Pod, ...]:
        """Addressed pods a pod peer matches (S11-S14; S23 via ``peer_matches_pod``)."""
        cached = self._pods_cache.get(peer)
        if cached is None:
            found: list[Pod] = []
            for namespace in self._candidate_namespaces(peer):
                labels = self.labels[namespace]
                for group in self.shapes[namespace]:
                    if peer_matches_pod(peer, group[0], labels, settings=self.settings):
                        found.extend(group)
            cached = tuple(found)
            self._pods_cache[peer] = cached
        return cached

    def peer_intervals(self, peer: PeerMatcher) -> dict[int, tuple[Interval, ...]]:
        """Address ranges of a peer, per IP version."""
        cached = self._peer_cache.get(peer)
        if cached is not None:
            return cached
        result: dict[int, tuple[Interval, ...]]
        if peer.kind is PeerKind.ANY:
            # S09: an absent or empty from/to is every pod and every address.
            result = {v: (family_range(v),) for v in VERSIONS}
        elif peer.kind is PeerKind.IP_BLOCK:
            # S15: cidr minus every except; pod addresses included unless the setting says not.
            assert peer.ip_block is not None
            intervals = block_intervals(peer.ip_block)
            if not self.settings.ipblock_matches_pods:
                intervals = subtract(
                    intervals,
                    (
                        address_interval(a)
                        for pod in self.addressed
                        if not pod.host_network
                        for a in self.addresses[pod.key]
                    ),
                )
            result = {peer.ip_block.cidr.version: intervals}
        else:
            # S11-S14: the addresses of every pod the selectors match.
            found: dict[int, list[Interval]] = {v: [] for v in VERSIONS}
            for pod in self.matching_pods(peer):
                for a in self.addresses[pod.key]:
                    found[a.version].append(address_interval(a))
            result = {v: merge(ivs) for v, ivs in found.items() if ivs}
        self._peer_cache[peer] = result
        return result

    def destinations(self, peer: PeerMatcher) -> tuple[tuple[IPAddress, Pod], ...]:
        """Every (address, pod) the peer matches, for egress named ports (S21): only pods
        policies can select, as a hostNetwork pod acts as its node's address (S23)."""
        cached = self._destination_cache.get(peer)
        if cached is not None:
            return cached
        candidates = self.matching_pods(peer) if peer.kind is PeerKind.PODS else self._selectable
        if peer.kind is PeerKind.IP_BLOCK:
            # The block's ranges already follow S15 and its setting (see peer_intervals), so
            # membership in them is what peer_matches_pod(address=a) answers, only faster.
            assert peer.ip_block is not None
            version = peer.ip_block.cidr.version
            ranges = self.peer_intervals(peer).get(version, ())
            cached = tuple(
                (a, pod)
                for pod in candidates
                for a in self.addresses[pod.key]
                if a.version == version and covers(ranges, int(a))
            )
        else:
            cached = tuple((a, pod) for pod in candidates for a in self.addresses[pod.key])
        self._destination_cache[peer] = cached
        return cached

    def named_destinations(
        self, peer: PeerMatcher, name: str, protocol: Protocol
    ) -> dict[int, Ranges]:
        """Where an egress named port leads through ``peer`` (S21): resolved number -> the
        addresses of the destination pods that declare ``name`` with that number, sorted."""
        key = (peer, name, protocol)
        cached = self._named_cache.get(key)
        if cached is None:
            by_value: dict[int, dict[int, list[Interval]]] = {}
            for address, pod in self.destinations(peer):
                value = resolve_named_port(name, protocol, pod.ports)
                if value is not None:
                    found = by_value.setdefault(value, {v: [] for v in VERSIONS})
                    found[address.version].append(address_interval(address))
            cached = {
                value: {v: merge(ivs) for v, ivs in found.items() if ivs}
                for value, found in sorted(by_value.items())
            }
            self._named_cache[key] = cached
        return cached


Ranges = dict[int, tuple[Interval, ...]]  # IP version -> merged address intervals


def _address_key(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))


def _port_spec(port: PortMatcher) -> tuple[Interval, Interval]:
    """Protocol and port ranges of a numeric or port-less entry (S18-S20)."""
    if port.protocol is None:
        return (FULL_PROTOCOLS, FULL_PORTS)  # ports absent: every protocol, every port (S09)
    number = PROTOCOL_NUMBERS[port.protocol]
    if port.low is None:
        return ((number, number), FULL_PORTS)  # S19: protocol without port
    assert port.high is not None
    return ((number, number), (port.low, port.high))  # S20: inclusive range


SymbolicBox = tuple[int, Interval, Interval]  # (address set id or _ANY, protocol, port)
# (address set key or None for _ANY, its ranges, the policy field it comes from, protocol, port)
_Entry = tuple[Hashable, "Ranges", str, Interval, Interval]


class _AddressSets:
    """Address sets named by what defines them (a peer; a peer + named port + number), with
    the policy fields that use each (``origins``, for the ruleset's legend)."""

    def __init__(self) -> None:
        self.ids: dict[Hashable, int] = {}
        self.ranges: list[Ranges] = []
        self.origins: list[set[str]] = []

    def id_of(self, key: Hashable, ranges: Ranges, origin: str) -> int:
        found = self.ids.get(key)
        if found is None:
            found = len(self.ranges)
            self.ids[key] = found
            self.ranges.append(ranges)
            self.origins.append(set())
        self.origins[found].add(origin)
        return found


def _peer_field(origin: str, peer: PeerMatcher) -> str:
    """``ns/name egress[0].to[1]``, or ``... egress[0].to (absent: any)`` for the implicit peer."""
    if peer.kind is PeerKind.ANY:
        return f"{origin} (absent: any)"
    return f"{origin}[{peer.index}]"


def _policy_entries(
    context: _Context,
    policy: CompiledPolicy,
    direction: Direction,
    named: Mapping[tuple[str, Protocol], int | None],
) -> tuple[_Entry, ...]:
    """Every (address set, protocol range, port range) one policy allows in ``direction``,
    with each address set named by its key and ranges (``_AddressSets.id_of`` numbers them)."""
    entries: list[_Entry] = []
    field_name = "from" if direction is Direction.INGRESS else "to"
    for rule in policy.rules(direction) or ():
        origin = f"{policy.namespace}/{policy.name} {direction.value}[{rule.index}].{field_name}"
        # S10: peers OR, ports OR, peer AND port.
        for port in rule.ports:
            if port.name is None:
                spec = _port_spec(port)
                entries.extend((*_peer_entry(context, peer, origin), *spec) for peer in rule.peers)
                continue
            assert port.protocol is not None
            number = PROTOCOL_NUMBERS[port.protocol]
            if direction is Direction.INGRESS:
                # S21: an ingress name resolves against the selected pod's own ports.
                value = named.get((port.name, port.protocol))
                if value is not None:
                    entries.extend(
                        (*_peer_entry(context, peer, origin), (number, number), (value, value))
                        for peer in rule.peers
                    )
                continue
            # S21: an egress name resolves against each destination pod's ports; towards an
            # address that is no pod it matches nothing. One address set per resolved number.
            for peer in rule.peers:
                resolved = context.named_destinations(peer, port.name, port.protocol)
                for value, ranges in resolved.items():
                    key = _SetKey(("named", peer, port.name, port.protocol, value))
                    where = f"{_peer_field(origin, peer)} where {port.name} is {value}"
                    entries.append((key, ranges, where, (number, number), (value, value)))
    return tuple(entries)


def _peer_entry(context: _Context, peer: PeerMatcher, origin: str) -> tuple[Hashable, Ranges, str]:
    if peer.kind is PeerKind.ANY:
        return (None, {}, "")  # S09: every pod and every address (``_ANY``)
    return (_SetKey(peer), context.peer_intervals(peer), _peer_field(origin, peer))


class _SetKey:
    """An address set's defining value with its hash computed once: memoised entries are
    numbered again on every call, and hashing a selector deep each time is what cost."""

    __slots__ = ("hash", "value")

    def __init__(self, value: Hashable) -> None:
        self.value = value
        self.hash = hash(value)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _SetKey):
            return NotImplemented
        return self.hash == other.hash and self.value == other.value


def _boxes(sets: _AddressSets, entries: Iterable[_Entry]) -> list[SymbolicBox]:
    return [
        (_ANY if key is None else sets.id_of(key, ranges, origin), protocol, port)
        for key, ranges, origin, protocol, port in entries
    ]


def _atoms(
    sets: _AddressSets, pod_of: Mapping[tuple[int, int], str]
) -> tuple[tuple[AtomRange, ...], dict[int, tuple[Interval, ...]], dict[int, tuple[str, ...]]]:
    """Cut both address families into atoms (see the module docstring).

    Returns the atom map's ranges, per address set the atom numbers it covers (merged), and per
    atom the policy fields whose peers contain it. Atoms are numbered in address order, IPv4
    first, so numbering is deterministic.
    """
    numbers: dict[frozenset[int], int] = {}
    ranges: list[AtomRange] = []
    for version in VERSIONS:
        spans = (
            (span, set_id)
            for set_id, by_version in enumerate(sets.ranges)
            for span in by_version.get(version, ())
        )
        # Cut at pod addresses too: one commented element each.
        cuts = (p for v, value in pod_of if v == version for p in (value, value + 1))
        for (point, high), signature in sweep(spans, cuts=cuts):
            number = numbers.setdefault(signature, len(numbers) + 1)
            pod = pod_of.get((version, point)) if point == high else None
            previous = ranges[-1] if ranges else None
            if (
                previous is not None
                and previous.version == version
                and previous.atom == number
                and previous.high + 1 == point
                and previous.pod is None
                and pod is None
            ):
                ranges[-1] = AtomRange(version, previous.low, high, number)
            else:
                ranges.append(AtomRange(version, point, high, number, pod))
    covered: dict[int, list[int]] = {}
    for signature, number in numbers.items():
        for set_id in signature:
            covered.setdefault(set_id, []).append(number)
    atoms_of = {set_id: merge((n, n) for n in found) for set_id, found in covered.items()}
    legend = {
        number: tuple(sorted({o for set_id in signature for o in sets.origins[set_id]}))
        for signature, number in numbers.items()
    }
    return tuple(ranges), atoms_of, legend


def _ingress_names(policies: Sequence[CompiledPolicy]) -> list[tuple[str, Protocol]]:
    names = {
        (port.name, port.protocol)
        for policy in policies
        for rule in policy.ingress or ()
        for port in rule.ports
        if port.name is not None and port.protocol is not None
    }
    return sorted(names)


@dataclass(frozen=True, slots=True)
class _ClassDraft:
    number: int
    sources: tuple[ClassSource, ...]
    named_ports: tuple[NamedPort, ...]
    pods: tuple[Pod, ...]
    boxes: tuple[SymbolicBox, ...]


def _draft_classes(
    context: _Context,
    sets: _AddressSets,
    memos: Sequence[_PolicyMemo],
    direction: Direction,
) -> list[_ClassDraft]:
    settings = context.settings
    compiled = [memo.compiled for memo in memos]
    # Pods that get a chain: addressed, not hostNetwork (see the module docstring), isolated.
    members: dict[tuple[tuple[int, ...], tuple[NamedPort, ...]], list[Pod]] = {}
    policies_of_namespace: dict[str, list[int]] = {}
    for index, policy in enumerate(compiled):
        if policy.rules(direction) is not None:
            policies_of_namespace.setdefault(policy.namespace, []).append(index)
    selection: dict[tuple[str, Labels], tuple[int, ...]] = {}  # what selects_pod looks at
    for pod in context.addressed:
        if pod.host_network:
            continue
        selecting = selection.get((pod.namespace, pod.labels))
        if selecting is None:
            selecting = tuple(
                i
                for i in policies_of_namespace.get(pod.namespace, ())
                if memos[i].selects(pod, settings)  # S01, S03
            )
            selection[(pod.namespace, pod.labels)] = selecting
        if not selecting:
            continue  # not isolated in this direction: passes (S03)
        named: tuple[NamedPort, ...] = ()
        if direction is Direction.INGRESS:
            named = tuple(
                NamedPort(name, protocol, resolve_named_port(name, protocol, pod.ports))
                for name, protocol in _ingress_names([compiled[i] for i in selecting])
            )
        members.setdefault((selecting, named), []).append(pod)

    def sort_key(key: tuple[tuple[int, ...], tuple[NamedPort, ...]]) -> tuple[object, ...]:
        selecting, named = key
        return (
            selecting,
            tuple((n.name, n.protocol, -1 if n.port is None else n.port) for n in named),
        )

    cache: dict[tuple[int, tuple[NamedPort, ...]], list[SymbolicBox]] = {}
    drafts: list[_ClassDraft] = []
    for number, key in enumerate(sorted(members, key=sort_key), start=1):
        selecting, named = key
        resolution = {(n.name, n.protocol): n.port for n in named}
        union: list[SymbolicBox] = []
        for i in selecting:
            policy_names = memos[i].port_names(direction)
            relevant = (
                tuple(n for n in named if (n.name, n.protocol) in policy_names) if named else ()
            )
            boxes = cache.get((i, relevant))
            if boxes is None:
                entries = memos[i].entries(context, direction, relevant, resolution)
                boxes = _boxes(sets, entries)
                cache[(i, relevant)] = boxes
            union.extend(boxes)
        drafts.append(
            _ClassDraft(
                number=number,
                sources=tuple(
                    ClassSource(
                        policy=f"{compiled[i].namespace}/{compiled[i].name}",
                        rules=len(compiled[i].rules(direction) or ()),
                    )
                    for i in selecting
                ),
                named_ports=named,
                pods=tuple(members[key]),
                boxes=tuple(union),
            )
        )
    return drafts


def _finish(
    context: _Context,
    memo: PlanMemo,
    drafts: Iterable[_ClassDraft],
    direction: Direction,
    atoms_of: Mapping[int, tuple[Interval, ...]],
    atom_count: int,
) -> tuple[tuple[PodClass, ...], tuple[Dispatch, ...]]:
    """Turn address-set boxes into atom boxes, and list the dispatch elements."""
    everything = ((0, atom_count),)
    classes: list[PodClass] = []
    dispatch: list[Dispatch] = []
    for draft in drafts:
        boxes = [
            (atoms, protocol, port)
            for set_id, protocol, port in draft.boxes
            for atoms in (everything if set_id == _ANY else atoms_of.get(set_id, ()))
        ]
        classes.append(
            PodClass(
                direction=direction,
                number=draft.number,
                sources=draft.sources,
                named_ports=draft.named_ports,
                pods=tuple(p.key for p in draft.pods),
                elements=memo.disjoint(boxes),
            )
        )
        dispatch.extend(
            Dispatch(address=a, pod=p.key, number=draft.number)
            for p in draft.pods
            for a in context.addresses[p.key]
        )
    dispatch.sort(key=lambda d: _address_key(d.address))
    return tuple(classes), tuple(dispatch)


@dataclass(frozen=True, slots=True)
class _PolicyMemo:
    """One policy's compiled form and, for one ``_Context``, which pod labels it selects and
    the address-set entries it allows per (direction, relevant named-port resolution)."""

    compiled: CompiledPolicy
    names: dict[Direction, frozenset[tuple[str, Protocol | None]]] = field(default_factory=dict)
    selected: dict[Labels, bool] = field(default_factory=dict)
    allowed: dict[tuple[Direction, tuple[NamedPort, ...]], tuple[_Entry, ...]] = field(
        default_factory=dict
    )

    def port_names(self, direction: Direction) -> frozenset[tuple[str, Protocol | None]]:
        """The (name, protocol) of every named port the policy uses in ``direction``."""
        found = self.names.get(direction)
        if found is None:
            found = frozenset(
                (p.name, p.protocol)
                for rule in self.compiled.rules(direction) or ()
                for p in rule.ports
                if p.name is not None
            )
            self.names[direction] = found
        return found

    def selects(self, pod: Pod, settings: Settings) -> bool:
        """``selects_pod`` for a pod of the policy's namespace that is not hostNetwork (only
        its labels then matter)."""
        found = self.selected.get(pod.labels)
        if found is None:
            found = selects_pod(self.compiled, pod, settings=settings)
            self.selected[pod.labels] = found
        return found

    def entries(
        self,
        context: _Context,
        direction: Direction,
        relevant: tuple[NamedPort, ...],
        resolution: Mapping[tuple[str, Protocol], int | None],
    ) -> tuple[_Entry, ...]:
        """``_policy_entries``, where ``relevant`` is the part of ``resolution`` it reads."""
        key = (direction, relevant)
        found = self.allowed.get(key)
        if found is None:
            found = _policy_entries(context, self.compiled, direction, resolution)
            self.allowed[key] = found
        return found


class PlanMemo:
    """What ``plan_ruleset`` may reuse from its previous call, so that a sandbox re-planned
    after one policy changed does not redo the work for the thousand others.

    Everything kept is a pure function of its key: the pod-side look-ups (``_Context``) of the
    pods, their addresses, the namespaces and the settings, all compared by value; per policy
    (compared by value, the same object found first by identity) its compiled form and, while
    the pod side is unchanged, which labels it selects and what each direction allows. Only
    the previous call's policies are kept, so the memo does not grow with the number of calls.
    """

    __slots__ = ("_context", "_context_key", "_disjoint", "_policies", "_previous_disjoint")

    def __init__(self) -> None:
        self._context_key: object = None
        self._context: _Context | None = None
        self._policies: dict[tuple[str, str], tuple[NetworkPolicy, _PolicyMemo]] = {}
        self._disjoint: dict[tuple[Box, ...], tuple[Box, ...]] = {}
        self._previous_disjoint: dict[tuple[Box, ...], tuple[Box, ...]] = {}

    def begin(self) -> None:
        """Start a call: keep the previous call's class elements, forget older ones."""
        self._previous_disjoint, self._disjoint = self._disjoint, {}

    def context(
        self,
        inventory: Inventory,
        addresses: Mapping[str, Sequence[IPAddress]],
        settings: Settings,
    ) -> _Context:
        key = (
            inventory.pods,
            inventory.namespaces,
            tuple(tuple(addresses.get(pod.key, ())) for pod in inventory.pods),
            settings,
        )
        if self._context is None or key != self._context_key:
            self._context = _Context(inventory, addresses, settings)
            self._context_key = key
            # Selection and allowed entries were computed against the old pod side.
            self._policies = {
                name: (policy, _PolicyMemo(memo.compiled))
                for name, (policy, memo) in self._policies.items()
            }
        return self._context

    def policies(self, policies: Sequence[NetworkPolicy]) -> list[_PolicyMemo]:
        """One memo per policy, in order; call after ``context`` for the same inventory."""
        kept: dict[tuple[str, str], tuple[NetworkPolicy, _PolicyMemo]] = {}
        found: list[_PolicyMemo] = []
        for policy in policies:
            name = (policy.namespace, policy.name)
            known = self._policies.get(name)
            if known is not None and (known[0] is policy or known[0] == policy):
                memo = known[1]
            else:
                memo = _PolicyMemo(compile_policy(policy))
            kept[name] = (policy, memo)
            found.append(memo)
        self._policies = kept
        return found

    def disjoint(self, boxes: Iterable[Box]) -> tuple[Box, ...]:
        """``disjoint_boxes`` (a pure function of ``boxes``), remembered for two calls."""
        key = tuple(boxes)
        found = self._disjoint.get(key)
        if found is None:
            found = self._previous_disjoint.get(key)
            if found is None:
                found = disjoint_boxes(key)
            self._disjoint[key] = found
        return found


def _check_unique_addresses(context: _Context) -> None:
    owners: dict[IPAddress, str] = {}
    for pod in context.addressed:
        if pod.host_network:
            continue
        for address in context.addresses[pod.key]:
            other = owners.setdefault(address, pod.key)
            if other != pod.key:
                raise DataplaneError(
                    f"pods {other} and {pod.key} were both given address {address}; "
                    "every pod that is not hostNetwork needs its own addresses"
                )


def plan_ruleset(
    inventory: Inventory,
    *,
    addresses: Mapping[str, Sequence[IPAddress]],
    settings: Settings = DEFAULT_SETTINGS,
    node_addresses: Sequence[IPAddress] = (),
    memo: PlanMemo | None = None,
) -> RulesetPlan:
    """Reduce an inventory and the sandbox's pod addresses to the table's contents.

    ``memo`` carries what an earlier call computed (see ``PlanMemo``); the plan is the same
    with or without it. Raises ``DataplaneError`` when two pods that are not hostNetwork share
    an address (the dispatch maps could not tell them apart).
    """
    memo = memo or PlanMemo()
    memo.begin()
    context = memo.context(inventory, addresses, settings)
    _check_unique_addresses(context)
    memos = memo.policies(inventory.policies)
    sets = _AddressSets()
    egress_drafts = _draft_classes(context, sets, memos, Direction.EGRESS)
    ingress_drafts = _draft_classes(context, sets, memos, Direction.INGRESS)
    pod_of: dict[tuple[int, int], str] = {}
    for pod in context.addressed:
        for address in context.addresses[pod.key]:
            pod_of.setdefault(_address_key(address), pod.key)
    atoms, atoms_of, legend = _atoms(sets, pod_of)
    count = max((r.atom for r in atoms), default=0)
    egress, egress_dispatch = _finish(
        context, memo, egress_drafts, Direction.EGRESS, atoms_of, count
    )
    ingress, ingress_dispatch = _finish(
        context, memo, ingress_drafts, Direction.INGRESS, atoms_of, count
    )
    nodes = tuple(sorted(set(node_addresses), key=_address_key)) if settings.allow_from_node else ()
    return RulesetPlan(
        atoms=atoms,
        legend=legend,
        egress=egress,
        ingress=ingress,
        egress_dispatch=egress_dispatch,
        ingress_dispatch=ingress_dispatch,
        node_addresses=nodes,
        allow_from_node=settings.allow_from_node,
    )
