"""The plan's types: what the nftables table holds, as data, and what it does with a packet.

Why this module exists: ``_plan`` builds a ``RulesetPlan``, ``_render`` writes it as text and
``_update`` compares two of them; all three share these frozen types and nothing else. The plan
also answers "what would the table do with this packet?" (``RulesetPlan.verdict``), so unit
tests hold the compiler to the reference evaluator without root. How the table works is
documented once, in ``_plan``'s module docstring.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubefence.api import IPAddress, IPNetwork, Protocol
from kubefence.dataplane.nft._intervals import Box
from kubefence.semantics import Direction

if TYPE_CHECKING:  # the tier types build on this module's
    from kubefence.dataplane.nft._tier_model import TierPlan

__all__ = [
    "PROTOCOL_NUMBERS",
    "VERSIONS",
    "AtomRange",
    "ClassSource",
    "Dispatch",
    "FlowLog",
    "NamedPort",
    "PodClass",
    "RulesetPlan",
]

PROTOCOL_NUMBERS: Mapping[Protocol, int] = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
VERSIONS = (4, 6)


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
class FlowLog:
    """The table's optional flow log: the first packet of each new connection is sent to NFLOG
    ``group`` with its verdict in the prefix (``kf allow`` / ``kf deny eg_c3``), at most
    ``rate`` per second plus a ``burst`` (one named limit shared by every log rule); packets
    over the limit are counted in the named counter ``flow_over`` instead."""

    group: int = 17
    rate: int = 200
    burst: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.group < 65536 or self.rate <= 0 or self.burst <= 0:
            raise ValueError(f"invalid flow log settings {self}")


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
    flow_log: FlowLog | None = None  # None: no log rules (the text is as before flow logs)
    tiers: TierPlan | None = None  # None: no admin tiers (the text is as before tiers)
    # Fail closed for pods not planned yet: a forwarded packet from or to an address in
    # ``held`` (the node's pod CIDRs) that is not in ``known`` (the planned pods of the node)
    # is dropped, and so is a packet from such an address to the node itself (``input``).
    # Empty ``held``: no such rules (the text is as before).
    held: tuple[IPNetwork, ...] = ()
    known: tuple[IPAddress, ...] = ()  # sorted by (version, address)
    # A ``counter`` on each verdict rule of the class chains (what the agent's per-policy
    # metrics read with ``nft -j -t list table``). False: no counters (the text is as before).
    counters: bool = False

    def is_held(self, address: IPAddress) -> bool:
        """Is ``address`` one of the node's pod addresses the plan does not know yet?"""
        return address not in self.known and any(
            address.version == n.version and address in n for n in self.held
        )

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
        if self.held and (self.is_held(source) or self.is_held(destination)):
            return False
        egress = {d.address: d.number for d in self.egress_dispatch}
        ingress = {d.address: d.number for d in self.ingress_dispatch}
        if self.tiers is not None:
            tiers = self.tiers
            out_atom, in_atom = self.atom_of(destination), self.atom_of(source)

            def isolated(
                classes: tuple[PodClass, ...],
                dispatch: dict[IPAddress, int],
                subject: IPAddress,
                atom: int,
            ) -> bool | None:
                if subject not in dispatch:
                    return None  # not isolated by NetworkPolicy in this direction
                return classes[dispatch[subject] - 1].allows(atom, protocol=protocol, port=port)

            return tiers.side(
                Direction.EGRESS,
                source,
                out_atom,
                protocol=protocol,
                port=port,
                network_policy=lambda: isolated(self.egress, egress, source, out_atom),
            ) and tiers.side(
                Direction.INGRESS,
                destination,
                in_atom,
                protocol=protocol,
                port=port,
                network_policy=lambda: isolated(self.ingress, ingress, destination, in_atom),
            )
        if source in egress:
            cls = self.egress[egress[source] - 1]
            if not cls.allows(self.atom_of(destination), protocol=protocol, port=port):
                return False
        if destination in ingress:
            cls = self.ingress[ingress[destination] - 1]
            if not cls.allows(self.atom_of(source), protocol=protocol, port=port):
                return False
        return True
