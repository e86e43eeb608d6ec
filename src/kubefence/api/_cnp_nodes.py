"""Parsing a ``v1`` Node: its name, labels and addresses, for the ``nodes`` peer of the tiers.

Why this module exists: ClusterNetworkPolicy's ``nodes`` peer selects nodes by label and
matches their ``status.addresses``; without Node objects kubefence can only evaluate the empty
selector. Nodes are read leniently (a ``kubectl get nodes -o yaml`` dump carries much that
kubefence has no use for): ``metadata`` as every kind, the top-level fields strictly, and of
``status.addresses`` the ``InternalIP``/``ExternalIP`` entries, each a valid IP address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubefence.api._models import Labels, Node, Origin
from kubefence.api._parse_fields import ObjectReader

__all__ = ["node"]

_NODE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_IP_TYPES = ("InternalIP", "ExternalIP")


def node(
    obj: ObjectReader, raw: Mapping[Any, Any], *, name: str, labels: Labels, origin: Origin
) -> Node:
    """The node; a problem on ``obj`` for each address that is not an IP address."""
    obj.unknown_fields(raw, _NODE_FIELDS, "")
    obj.mapping(raw, "spec", "spec")
    status = obj.mapping(raw, "status", "status") or {}
    entries = obj.sequence(status, "addresses", "status.addresses") or []
    texts: list[tuple[str, str, int | None]] = []
    for at, entry, line in obj.entries(entries, "status.addresses", Mapping, "an object"):
        kind = obj.string(entry, "type", f"{at}.type")
        address = obj.string(entry, "address", f"{at}.address")
        if kind in _IP_TYPES and address is not None:
            texts.append((address, f"{at}.address", line))
    return Node(name=name, labels=labels, addresses=obj.addresses(texts), origin=origin)
