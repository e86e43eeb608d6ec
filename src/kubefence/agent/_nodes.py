"""The agent's Nodes: name, labels, InternalIP/ExternalIP addresses, for tier ``nodes`` peers.

Why this module exists: a ClusterNetworkPolicy rule with a ``nodes`` peer matches nodes by the
labels of their Node objects and stands for their ``status.addresses`` (T05, decided in
``semantics._tiers``; the planner reads ``Inventory.nodes`` the same way). Without Node objects
only an empty node selector can be evaluated, so the agent lists and watches Nodes and hands
them to the planner with the rest of its copy of the cluster.

A Node changes often in ways the tiers never read: the kubelet rewrites its status (conditions,
heartbeat times, images) every few seconds on every node. So a Node is reduced to what the
tiers read (name, labels, the InternalIP/ExternalIP entries) before anything else is done, and
only a change of that reduced form is parsed (through ``kubefence.sources.objects``, the
parser every input uses) and counted as a change; a heartbeat costs a dictionary comparison.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubefence.api import Node
from kubefence.client import Resource
from kubefence.errors import ValidationError
from kubefence.sources.objects import inventory_from_objects

__all__ = ["NODES", "NodeTable", "Parsed", "parse_node", "reduced"]

NODES = Resource("", "v1", "nodes", namespaced=False)
_ADDRESS_TYPES = ("InternalIP", "ExternalIP")  # as ``api._cnp_nodes`` reads them


def reduced(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The Node manifest with only what the ``nodes`` peer reads (equal for a heartbeat)."""
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    assert isinstance(status, Mapping)
    entries = status.get("addresses")
    addresses = [
        {"type": e.get("type"), "address": e.get("address")}
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, Mapping) and e.get("type") in _ADDRESS_TYPES
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {k: metadata[k] for k in ("name", "labels") if k in metadata},
        "status": {"addresses": addresses},
    }


def _is_address(text: object) -> bool:
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return False
    return isinstance(text, str)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A Node as the tiers read it, and why part of it was left out (None: nothing was)."""

    node: Node | None
    problem: str | None


def parse_node(manifest: Mapping[str, Any]) -> Parsed:
    """Parse a ``reduced`` manifest. An address that is no IP address is left out (and said);
    when even the name or labels cannot be read the node is left out: a ``nodes`` peer then
    does not match its addresses (no selector can be decided on labels nobody can read)."""
    try:
        return Parsed(inventory_from_objects([dict(manifest)]).nodes[0], None)
    except ValidationError as exc:
        message = "; ".join(str(p) for p in exc.problems)[:1000] if exc.problems else str(exc)
    status = manifest.get("status") or {}
    kept = [e for e in status.get("addresses", []) if _is_address(e.get("address"))]
    try:
        node = inventory_from_objects([{**manifest, "status": {"addresses": kept}}]).nodes[0]
    except ValidationError:
        return Parsed(None, message)
    return Parsed(node, message)


class NodeTable:
    """The Nodes by name, their reduced manifests, and the tuple the inventory takes.

    Not thread-safe: the store calls it under its lock."""

    __slots__ = ("_models", "_reduced", "_sorted")

    def __init__(self) -> None:
        self._reduced: dict[str, dict[str, Any]] = {}
        self._models: dict[str, Node] = {}
        self._sorted: tuple[Node, ...] | None = ()

    def unchanged(self, key: str, manifest: Mapping[str, Any]) -> bool:
        """Is ``manifest`` (``reduced``) what the table already holds for ``key``?"""
        return self._reduced.get(key) == manifest

    def keep(self, key: str, manifest: dict[str, Any], parsed: Parsed) -> bool:
        """Hold ``key``'s new reduced manifest and model; did the model change?"""
        self._reduced[key] = manifest
        old = self._models.get(key)
        if parsed.node is None:
            changed = self._models.pop(key, None) is not None
        else:
            changed = old != parsed.node
            self._models[key] = parsed.node
        if changed:
            self._sorted = None
        return changed

    def remove(self, key: str) -> bool:
        self._reduced.pop(key, None)
        gone = self._models.pop(key, None) is not None
        if gone:
            self._sorted = None
        return gone

    def __len__(self) -> int:
        return len(self._reduced)

    def models(self) -> tuple[Node, ...]:
        """The parsed Nodes by name (the same tuple while none changed)."""
        if self._sorted is None:
            self._sorted = tuple(self._models[k] for k in sorted(self._models))
        return self._sorted
