"""Connection-tracking entries of the node namespace, as data (parsing is pure).

Why this module exists: strict mode (S25) must cut the established connections that a new
policy denies, and *only* those: flushing the whole table would make the next reply packet of an
allowed connection look like a new connection in the opposite direction, which policies may deny.
So ``sandbox apply`` lists the entries (``conntrack -L``), asks the reference evaluator about
each one's original direction, and deletes exactly the denied ones (``conntrack -D``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kubefence.api import IPAddress, Protocol

__all__ = ["Flow", "delete_argv", "parse_conntrack"]

_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP, "sctp": Protocol.SCTP}


@dataclass(frozen=True, slots=True)
class Flow:
    """The original direction of one tracked connection."""

    protocol: Protocol
    src: IPAddress
    dst: IPAddress
    sport: int
    dport: int
    state: str = ""  # TCP/SCTP state (ESTABLISHED, TIME_WAIT, ...); "" for UDP


def parse_conntrack(lines: Iterable[str]) -> list[Flow]:
    """Parse ``conntrack -L`` output; ICMP and malformed lines are skipped."""
    flows: list[Flow] = []
    for line in lines:
        words = line.split()
        if len(words) < 3 or words[0] not in _PROTOCOLS:
            continue
        fields: dict[str, str] = {}
        state = ""
        for word in words[3:]:
            if "=" in word:
                key, _, value = word.partition("=")
                fields.setdefault(key, value)  # the first occurrence is the original direction
            elif not fields and word.isupper():
                state = word
        try:
            flows.append(
                Flow(
                    protocol=_PROTOCOLS[words[0]],
                    src=ipaddress.ip_address(fields["src"]),
                    dst=ipaddress.ip_address(fields["dst"]),
                    sport=int(fields["sport"]),
                    dport=int(fields["dport"]),
                    state=state,
                )
            )
        except (KeyError, ValueError):
            continue
    return flows


def delete_argv(flow: Flow, *, any_source_port: bool = False) -> list[str]:
    """The ``conntrack -D`` arguments that delete exactly this flow, or with
    ``any_source_port`` every flow between the same addresses to the same port (a policy
    verdict never depends on the source port, so they share it)."""
    family = "ipv4" if flow.src.version == 4 else "ipv6"
    argv = [
        "conntrack",
        "-D",
        "-f",
        family,
        "-p",
        flow.protocol.value.lower(),
        "--orig-src",
        str(flow.src),
        "--orig-dst",
        str(flow.dst),
    ]
    if not any_source_port:
        argv += ["--orig-port-src", str(flow.sport)]
    return [*argv, "--orig-port-dst", str(flow.dport)]
