"""The agent's start hold reaches a pod's connections to its own node (S05), not the node's own.

Why this module exists: before the first sync the agent holds new connections; a pod's
connection to an address of its node is delivered locally (``input``), not forwarded, and is
subject to the pod's egress policy, so the hold must drop it too: from the node's pod CIDRs,
except from the node's own addresses in them, never neighbour discovery.
"""

from __future__ import annotations

import ipaddress

from kubefence.agent._enforce import HOLD_COMMENT, NEIGHBOUR_DISCOVERY, hold_text
from kubefence.dataplane.nft._render import _NEIGHBOUR_DISCOVERY

CIDRS = (ipaddress.ip_network("198.18.1.0/24"), ipaddress.ip_network("fd00:6b66::c612:100/120"))


def _chain(text: str, name: str) -> str:
    start = text.index(f"chain {name} {{")
    return text[start : text.index("\n\t}", start)]


def test_without_pod_cidrs_only_forwarded_connections_are_held() -> None:
    text = hold_text()
    assert "chain input" not in text
    assert f'drop comment "{HOLD_COMMENT}"' in _chain(text, "forward")


def test_with_pod_cidrs_their_connections_to_the_node_are_held_too() -> None:
    text = hold_text(CIDRS)
    assert _chain(text, "forward") == _chain(hold_text(), "forward")
    chain = _chain(text, "input")
    lines = [line.strip() for line in chain.splitlines()]
    assert lines[1:] == [
        "type filter hook input priority filter; policy accept;",
        "ct state established,related accept",
        f"{NEIGHBOUR_DISCOVERY} accept",
        f'ip saddr {{ 198.18.1.0/24 }} fib saddr type != local drop comment "{HOLD_COMMENT}"',
        f"ip6 saddr {{ fd00:6b66::c612:100/120 }} fib saddr type != local "
        f'drop comment "{HOLD_COMMENT}"',
    ]
    assert NEIGHBOUR_DISCOVERY == _NEIGHBOUR_DISCOVERY  # as the planned table's input chain
    only_v4 = _chain(hold_text(CIDRS[:1]), "input")
    assert "ip6 saddr" not in only_v4
