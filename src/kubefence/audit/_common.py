"""Small pieces the lint checks and the namespace report share: the text forms of selectors,
ipBlocks and port lists, the isolation count, and the cluster facts both assume by default.

Why this module exists: a selector, a block or a rule's ports must read the same in a finding
and in the report (one spelling each; ports as ``80/TCP``, ``api.port_label``, like every other
command), and "how many pods are isolated" must be counted one way
(through ``isolating_policies``, the semantic core's single definition of S03) by KF009/KF010
and by the coverage columns.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from kubefence.api import (
    IPAddress,
    IPBlock,
    IPNetwork,
    LabelSelector,
    Operator,
    Pod,
    Protocol,
    port_label,
)
from kubefence.semantics import CompiledPolicy, Direction, PortMatcher, Settings, isolating_policies

__all__ = [
    "DEFAULT_SERVICE_CIDRS",
    "NODE_LOCAL_DNS",
    "describe_block",
    "describe_ports",
    "describe_selector",
    "isolated_count",
    "range_label",
]

DEFAULT_SERVICE_CIDRS: tuple[IPNetwork, ...] = (ipaddress.ip_network("10.96.0.0/12"),)
NODE_LOCAL_DNS: IPAddress = ipaddress.ip_address("169.254.20.10")


def describe_selector(selector: LabelSelector | None) -> str:
    """A short, stable text form of a selector: ``{app=web, tier in (a,b)}``; None is 'all'."""
    if selector is None or selector.is_empty:
        return "{}"
    parts = [f"{k}={v}" for k, v in selector.match_labels.items()]
    for req in selector.match_expressions:
        if req.operator in (Operator.IN, Operator.NOT_IN):
            op = "in" if req.operator is Operator.IN else "notin"
            parts.append(f"{req.key} {op} ({','.join(req.values)})")
        elif req.operator is Operator.EXISTS:
            parts.append(req.key)
        else:
            parts.append(f"!{req.key}")
    return "{" + ", ".join(parts) + "}"


def describe_block(block: IPBlock) -> str:
    """``10.0.0.0/8`` or ``10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16``."""
    if not block.except_:
        return str(block.cidr)
    return f"{block.cidr} except {', '.join(str(e) for e in block.except_)}"


def range_label(protocol: Protocol, low: int, high: int) -> str:
    """``80/TCP`` or ``8000-9000/TCP``."""
    return port_label(low if low == high else f"{low}-{high}", protocol.value)


def describe_ports(ports: Sequence[PortMatcher]) -> str:
    """``80/TCP, 8000-9000/TCP, http/TCP, all/UDP``; ``all ports`` for the implicit entry."""
    parts = []
    for m in ports:
        if m.protocol is None:
            return "all ports"
        if m.name is not None:
            parts.append(port_label(m.name, m.protocol.value))
        elif m.low is None or m.high is None:
            parts.append(port_label("all", m.protocol.value))
        else:
            parts.append(range_label(m.protocol, m.low, m.high))
    return ", ".join(parts)


def isolated_count(
    pods: Sequence[Pod],
    compiled: Sequence[CompiledPolicy],
    direction: Direction,
    *,
    settings: Settings,
) -> int:
    """How many of ``pods`` some policy of ``compiled`` selects and isolates in ``direction``
    (asked once per namespace, label set and hostNetwork flag: all that selecting reads)."""
    seen: dict[tuple[object, ...], bool] = {}
    count = 0
    for pod in pods:
        key = (pod.namespace, pod.labels, pod.host_network)
        hit = seen.get(key)
        if hit is None:
            hit = seen[key] = bool(isolating_policies(compiled, pod, direction, settings=settings))
        count += hit
    return count
