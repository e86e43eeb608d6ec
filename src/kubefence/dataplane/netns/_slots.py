"""Where every pod of a sandbox lives: namespace, interface names and addresses (pure).

Why this module exists: the sandbox's topology must be deterministic (the same manifests give
the same namespaces and addresses, so probes and rulesets are reproducible) and stable across
``apply`` (a pod that stays keeps its namespace and address while others come and go). Both are
decided here, without touching the machine, so they can be unit-tested; so is the inventory
as the sandbox runs it (``sandbox_inventory``: each pod with the addresses it was given).

Address plan (all inside the ranges the sandbox may use):

| what                      | IPv4                         | IPv6                             |
|---------------------------|------------------------------|----------------------------------|
| pods                      | 198.18.0.0/15, /32 each      | fd00:6b66::/96 + the IPv4 bits   |
| the node (source for S24) | 198.19.255.254               | fd00:6b66::c613:fffe             |
| pod default gateway       | 169.254.1.1 (on the node)    | fe80::1 (on each node veth)      |

A pod keeps its manifest ``status.podIP`` when it lies in 198.18.0.0/15 (and its IPv6 address
when in fd00::/8) and no earlier pod (sorted by ``namespace/name``) claimed it; other pods get
the lowest free address from 198.18.0.2 upwards. hostNetwork pods get no namespace: they would
share the node's address, so the sandbox does not run them and reports them as unprobed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubefence.api import Inventory, Pod
from kubefence.errors import InputError

__all__ = [
    "GATEWAY_V4",
    "GATEWAY_V6",
    "NODE_V4",
    "NODE_V6",
    "POD_NETWORK_V4",
    "POD_NETWORK_V6",
    "PodSlot",
    "check_name",
    "node_netns",
    "plan_slots",
    "pod_netns",
    "sandbox_inventory",
]

POD_NETWORK_V4 = ipaddress.IPv4Network("198.18.0.0/15")
POD_NETWORK_V6 = ipaddress.IPv6Network("fd00::/8")
_DERIVED_V6 = ipaddress.IPv6Network("fd00:6b66::/96")  # "kf"; low 32 bits = the IPv4 address
NODE_V4 = ipaddress.IPv4Address("198.19.255.254")
NODE_V6 = ipaddress.IPv6Address(int(_DERIVED_V6.network_address) | int(NODE_V4))
GATEWAY_V4 = ipaddress.IPv4Address("169.254.1.1")
GATEWAY_V6 = ipaddress.IPv6Address("fe80::1")
_FIRST_POD_V4 = ipaddress.IPv4Address("198.18.0.2")

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")


def check_name(name: str) -> str:
    """A sandbox name: 1-20 lowercase letters, digits and '-', not starting or ending with '-'."""
    if not _NAME.match(name):
        raise InputError(
            f"invalid sandbox name {name!r}: use 1-20 lowercase letters, digits and '-' "
            "(not at either end)"
        )
    return name


def node_netns(name: str) -> str:
    return f"kf-{name}-node"


def pod_netns(name: str, index: int) -> str:
    return f"kf-{name}-{index}"


def owned_netns_pattern(name: str) -> re.Pattern[str]:
    """Namespaces of sandbox ``name`` (never those of a sandbox whose name merely starts so)."""
    return re.compile(rf"^kf-{re.escape(name)}-(node|\d+)$")


@dataclass(frozen=True, slots=True)
class PodSlot:
    """One pod's place in the sandbox: its namespace, node-side interface and addresses."""

    key: str
    index: int
    netns: str
    node_if: str  # the node side of the pod's veth; the pod side is always ``eth0``
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address

    @property
    def addresses(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv6Address]:
        return (self.ipv4, self.ipv6)


def _derived_v6(ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(_DERIVED_V6.network_address) | int(ipv4))


def _wanted_v4(pod: Pod) -> ipaddress.IPv4Address | None:
    for ip in pod.ips:
        if isinstance(ip, ipaddress.IPv4Address) and ip in POD_NETWORK_V4 and ip != NODE_V4:
            return ip
    return None


def _wanted_v6(pod: Pod) -> ipaddress.IPv6Address | None:
    for ip in pod.ips:
        if isinstance(ip, ipaddress.IPv6Address) and ip in POD_NETWORK_V6 and ip != NODE_V6:
            return ip
    return None


def plan_slots(
    name: str,
    pods: Iterable[Pod],
    *,
    previous: Mapping[str, PodSlot] | None = None,
) -> dict[str, PodSlot]:
    """Assign a slot to every pod that runs in the sandbox (hostNetwork pods run nowhere).

    Pods present in ``previous`` keep their slot; new pods take fresh indices after the highest
    one in use and the lowest free addresses, in ``namespace/name`` order.
    """
    previous = previous or {}
    runnable = sorted((p for p in pods if not p.host_network), key=lambda p: p.key)
    slots: dict[str, PodSlot] = {}
    taken_v4: set[ipaddress.IPv4Address] = {NODE_V4}
    taken_v6: set[ipaddress.IPv6Address] = {NODE_V6}
    for pod in runnable:
        old = previous.get(pod.key)
        if old is not None:
            slots[pod.key] = old
            taken_v4.add(old.ipv4)
            taken_v6.add(old.ipv6)
    next_index = max((s.index for s in slots.values()), default=-1) + 1
    fresh = [p for p in runnable if p.key not in slots]
    # First pass: manifest addresses in our ranges, first claimant wins.
    chosen_v4: dict[str, ipaddress.IPv4Address] = {}
    chosen_v6: dict[str, ipaddress.IPv6Address] = {}
    for pod in fresh:
        v4 = _wanted_v4(pod)
        if v4 is not None and v4 not in taken_v4:
            chosen_v4[pod.key] = v4
            taken_v4.add(v4)
        v6 = _wanted_v6(pod)
        if v6 is not None and v6 not in taken_v6:
            chosen_v6[pod.key] = v6
            taken_v6.add(v6)
    # Second pass: the lowest free addresses for the rest.
    cursor = int(_FIRST_POD_V4)
    last = int(POD_NETWORK_V4.broadcast_address) - 1
    for pod in fresh:
        v4 = chosen_v4.get(pod.key)
        if v4 is None:
            while ipaddress.IPv4Address(cursor) in taken_v4:
                cursor += 1
            if cursor > last:
                raise InputError("the sandbox ran out of pod addresses in 198.18.0.0/15")
            v4 = ipaddress.IPv4Address(cursor)
            taken_v4.add(v4)
        v6 = chosen_v6.get(pod.key)
        if v6 is None:
            v6 = _derived_v6(v4)
            while v6 in taken_v6:
                v6 = ipaddress.IPv6Address(int(v6) + (1 << 32))
            taken_v6.add(v6)
        slots[pod.key] = PodSlot(
            key=pod.key,
            index=next_index,
            netns=pod_netns(name, next_index),
            node_if=f"kfp{next_index}",
            ipv4=v4,
            ipv6=v6,
        )
        next_index += 1
    return dict(sorted(slots.items()))


def sandbox_inventory(
    inventory: Inventory, slots: Mapping[str, PodSlot], *, node: str | None = None
) -> Inventory:
    """The inventory as the sandbox runs it: each running pod carries the addresses it was
    given and, with ``node``, that node's name: every sandbox pod lives behind the one node
    namespace, which is therefore "the pod's own node" of S24."""
    pods = []
    for pod in inventory.pods:
        slot = slots.get(pod.key)
        if slot is None:
            pods.append(pod)  # a hostNetwork pod: not run, keeps its manifest node and IPs
        elif node is None:
            pods.append(dataclasses.replace(pod, ips=slot.addresses))
        else:
            pods.append(dataclasses.replace(pod, ips=slot.addresses, node=node))
    return dataclasses.replace(inventory, pods=tuple(pods))
