"""The cluster as packets of one address family see it: IPv4 only, or IPv6 only.

Why this module exists: a packet carries addresses of one family, but a dual-stack pod has one
of each, and an ipBlock peer matches a pod when any of its addresses lies in the block (S15).
So on the full inventory a pod matches ``cidr: 198.18.0.0/15`` even for its IPv6 packets, which
that ipBlock never admits on the wire. Restricting the inventory to one family before it is
evaluated (each pod and each Service keeps only its addresses of that family; policies stay
as they are, and an ipBlock of the other family then matches nothing) makes every execution,
the reference evaluator, the engine and the sandbox's prediction, exact for packets of that
family, without any of them knowing about families.

A pod left without an address of the family is treated as any pod of unknown address: no
ipBlock matches it, selectors still do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from kubefence.api._inventory import Inventory
from kubefence.api._models import IPAddress

__all__ = ["FAMILIES", "restrict_to_family"]

FAMILIES = (4, 6)  # the IP versions, as ``ipaddress`` numbers them


def _of_family(addresses: Sequence[IPAddress], family: int) -> tuple[IPAddress, ...]:
    return tuple(ip for ip in addresses if ip.version == family)


def restrict_to_family(inventory: Inventory, family: int) -> Inventory:
    """``inventory`` with every pod's and Service's addresses of IP version ``family`` (4 or 6)
    only; objects whose addresses are all of that family are kept as they are."""
    if family not in FAMILIES:
        raise ValueError(f"family must be 4 or 6, not {family!r}")
    pods = tuple(
        pod
        if all(ip.version == family for ip in pod.ips)
        else dataclasses.replace(pod, ips=_of_family(pod.ips, family))
        for pod in inventory.pods
    )
    services = tuple(
        service
        if all(ip.version == family for ip in service.cluster_ips)
        else dataclasses.replace(service, cluster_ips=_of_family(service.cluster_ips, family))
        for service in inventory.services
    )
    return dataclasses.replace(inventory, pods=pods, services=services)
