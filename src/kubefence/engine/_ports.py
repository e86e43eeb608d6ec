"""Port classes: the few ports worth asking about, such that every other port answers the same.

Why this module exists: ``kubefence matrix`` without ``--port`` and ``kubefence diff`` must cover
all 65,535 ports of each protocol without computing 65,535 matrices. Every port matcher splits
the port line at most at two points: a number or ``port``..``endPort`` range at its ends, a named
port at each number it resolves to on some pod (S21). Between consecutive split points every
matcher of every policy answers the same, so one representative port per interval gives the
exact answer for the whole interval; all intervals no matcher touches form one "other" class.
The admin tiers' ``protocols`` entries split the same way (a named one at the numbers it
resolves to, for every protocol, as a tier's named port has none of its own).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from kubefence.api import Inventory, Protocol
from kubefence.semantics import compile_policies, resolve_named_port

__all__ = ["PortClass", "port_classes"]

_MAX_PORT = 65535


@dataclass(frozen=True, slots=True, order=True)
class PortClass:
    """Ports ``low``..``high`` of ``protocol`` (or, when ``other``, every port of the protocol
    that no policy mentions, represented by ``low``)."""

    protocol: Protocol
    other: bool
    low: int
    high: int

    @property
    def port(self) -> int:
        """The representative port to compute the class's matrix with."""
        return self.low

    @property
    def label(self) -> str:
        if self.other:
            return "other"
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def port_classes(
    inventories: Iterable[Inventory], *, protocols: Iterable[Protocol] | None = None
) -> tuple[PortClass, ...]:
    """The port classes of the policies of ``inventories`` (several: for a diff).

    ``protocols`` None: TCP and every protocol some port entry names. Sorted by protocol, then
    mentioned ranges by number, then "other".
    """
    cuts: dict[Protocol, set[int]] = {}
    points: dict[Protocol, set[int]] = {}  # named ports: single numbers
    ranges: dict[Protocol, set[tuple[int, int]]] = {}
    mentioned: set[Protocol] = {Protocol.TCP}
    for inventory in inventories:
        named: set[tuple[str, Protocol]] = set()
        tier_named: set[tuple[str, Protocol]] = set()
        for policy in compile_policies(inventory.policies):
            for rules in (policy.ingress, policy.egress):
                for rule in rules or ():
                    for m in rule.ports:
                        if m.protocol is None:
                            continue
                        mentioned.add(m.protocol)
                        if m.name is not None:
                            named.add((m.name, m.protocol))
                        elif m.low is not None and m.high is not None:
                            ranges.setdefault(m.protocol, set()).add((m.low, m.high))
                            cuts.setdefault(m.protocol, set()).update((m.low, m.high + 1))
        for cluster_policy in inventory.admin_policies:  # T06: the tiers' ports split too
            for tier_rule in (*cluster_policy.ingress, *cluster_policy.egress):
                for entry in tier_rule.ports:
                    if entry.name is not None:  # any protocol the destination declares it for
                        tier_named.update((entry.name, proto) for proto in Protocol)
                    elif entry.protocol is not None and entry.low is not None:
                        assert entry.high is not None
                        mentioned.add(entry.protocol)
                        if entry.low <= entry.high:
                            ranges.setdefault(entry.protocol, set()).add((entry.low, entry.high))
                            cuts.setdefault(entry.protocol, set()).update(
                                (entry.low, entry.high + 1)
                            )
        tier_only = tier_named - named
        for pod in inventory.pods:
            for name, protocol in named:
                number = resolve_named_port(name, protocol, pod.ports)
                if number is not None:
                    points.setdefault(protocol, set()).add(number)
                    cuts.setdefault(protocol, set()).update((number, number + 1))
            for name, protocol in tier_only:
                number = resolve_named_port(name, protocol, pod.ports)
                if number is not None:
                    mentioned.add(protocol)
                    points.setdefault(protocol, set()).add(number)
                    cuts.setdefault(protocol, set()).update((number, number + 1))
    chosen = sorted(mentioned if protocols is None else set(protocols))
    out: list[PortClass] = []
    for protocol in chosen:
        bounds = sorted({1, _MAX_PORT + 1} | cuts.get(protocol, set()))
        covered_points = points.get(protocol, set())
        spans = ranges.get(protocol, set())
        other: int | None = None
        for low, nxt in itertools.pairwise(bounds):
            high = nxt - 1
            covered = low in covered_points or any(a <= low and high <= b for a, b in spans)
            if covered:
                out.append(PortClass(protocol=protocol, other=False, low=low, high=high))
            elif other is None:
                other = low
        if other is not None:
            out.append(PortClass(protocol=protocol, other=True, low=other, high=other))
    return tuple(out)
