"""Typed models of Kubernetes objects, manifest parsing with API-server defaulting, validation.

The bottom layer above ``errors``: pure, no I/O. ``sources`` hands it decoded documents.
``__all__`` is the contract other packages use: the models, ``Inventory``, ``build_inventory``
with ``Document`` and the line-carrying containers ``sources`` builds, selector matching, and
the one spelling of a rule path, a port and the S16 namespace-label fallback. How parsing is
split into modules is private (``_parse_*``, ``_build_inventory``).
"""

from __future__ import annotations

from kubefence.api._build_inventory import build_inventory
from kubefence.api._cnp_models import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    Tier,
)
from kubefence.api._family import FAMILIES, restrict_to_family
from kubefence.api._inventory import Inventory
from kubefence.api._models import (
    METADATA_NAME_LABEL,
    ContainerPort,
    IPAddress,
    IPBlock,
    IPNetwork,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    Origin,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Requirement,
    Rule,
    Service,
    ServicePort,
    labels_of_namespace,
    port_label,
    rule_path,
)
from kubefence.api._selectors import requirement_holds, selector_matches
from kubefence.api._tree import Document, LineDict, LineList, ObjectKey

__all__ = [
    "FAMILIES",
    "METADATA_NAME_LABEL",
    "AdminAction",
    "AdminPeer",
    "AdminPeerKind",
    "AdminPort",
    "AdminRule",
    "ClusterNetworkPolicy",
    "ContainerPort",
    "Document",
    "IPAddress",
    "IPBlock",
    "IPNetwork",
    "Inventory",
    "LabelSelector",
    "Labels",
    "LineDict",
    "LineList",
    "Namespace",
    "NetworkPolicy",
    "Node",
    "ObjectKey",
    "Operator",
    "Origin",
    "Peer",
    "Pod",
    "PolicyPort",
    "PolicyType",
    "Protocol",
    "Requirement",
    "Rule",
    "Service",
    "ServicePort",
    "Tier",
    "build_inventory",
    "labels_of_namespace",
    "port_label",
    "requirement_holds",
    "restrict_to_family",
    "rule_path",
    "selector_matches",
]
