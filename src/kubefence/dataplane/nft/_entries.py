"""What one policy allows, as (address set, protocol range, port range) entries.

Why this module exists: a class chain's set is the union, over the policies isolating the
class, of what each rule allows (S10: peers OR, ports OR, peer AND port). This module turns one
compiled policy into those entries, with each address set named by the value that defines it
(a peer; a peer with an egress named port and the number it resolves to) so that equal peers of
different policies share one set, and numbers the sets for the atom cut (``AddressSets``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

from kubefence.api import Protocol
from kubefence.dataplane.nft._intervals import FULL_PORTS, FULL_PROTOCOLS, Interval
from kubefence.dataplane.nft._model import PROTOCOL_NUMBERS
from kubefence.dataplane.nft._peers import Context, Ranges
from kubefence.semantics import CompiledPolicy, Direction, PeerKind, PeerMatcher, PortMatcher

__all__ = ["ANY", "AddressSets", "Entry", "SymbolicBox", "boxes_of", "policy_entries"]

ANY = -1  # the address set of an absent/empty from/to: every address, atom 0 included


def _port_spec(port: PortMatcher) -> tuple[Interval, Interval]:
    """Protocol and port ranges of a numeric or port-less entry (S18-S20)."""
    if port.protocol is None:
        return (FULL_PROTOCOLS, FULL_PORTS)  # ports absent: every protocol, every port (S09)
    number = PROTOCOL_NUMBERS[port.protocol]
    if port.low is None:
        return ((number, number), FULL_PORTS)  # S19: protocol without port
    assert port.high is not None
    return ((number, number), (port.low, port.high))  # S20: inclusive range


SymbolicBox = tuple[int, Interval, Interval]  # (address set id or ANY, protocol, port)
# (address set key or None for ANY, its ranges, the policy field it comes from, protocol, port)
Entry = tuple[Hashable, "Ranges", str, Interval, Interval]


class AddressSets:
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


def policy_entries(
    context: Context,
    policy: CompiledPolicy,
    direction: Direction,
    named: Mapping[tuple[str, Protocol], int | None],
) -> tuple[Entry, ...]:
    """Every (address set, protocol range, port range) one policy allows in ``direction``,
    with each address set named by its key and ranges (``AddressSets.id_of`` numbers them)."""
    entries: list[Entry] = []
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


def _peer_entry(context: Context, peer: PeerMatcher, origin: str) -> tuple[Hashable, Ranges, str]:
    if peer.kind is PeerKind.ANY:
        return (None, {}, "")  # S09: every pod and every address (``ANY``)
    return (_SetKey(peer), context.peer_intervals(peer), _peer_field(origin, peer))


class _SetKey:
    """An address set's defining value (a peer, maybe with a named port and its number; the
    tiers' sets too) with its hash computed once: memoised entries are numbered again on every
    call, and hashing a selector deep each time is what cost."""

    __slots__ = ("hash", "value")

    def __init__(self, value: Hashable) -> None:
        self.value = value
        self.hash = hash(value)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _SetKey):
            return NotImplemented
        return self is other or (self.hash == other.hash and self.value == other.value)


def boxes_of(sets: AddressSets, entries: Iterable[Entry]) -> list[SymbolicBox]:
    return [
        (ANY if key is None else sets.id_of(key, ranges, origin), protocol, port)
        for key, ranges, origin, protocol, port in entries
    ]
