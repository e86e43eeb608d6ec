"""Typed, immutable models of the Kubernetes objects kubefence reasons about.

Why this module exists: every layer above (semantics, engine, data plane, CLI) reads these and
nothing else, so the YAML shape, defaulting and validation stay in ``api`` alone. Models carry
data and where it came from (``Origin``), no behaviour: selector matching is ``api._selectors``.

Defaults of the API server are already applied when a model exists: ``policy_types`` is never
empty (S02), ``protocol`` is always set (S18), every namespace has its
``kubernetes.io/metadata.name`` label (S16). A missing and an empty ``from``/``to``/``ports``
list mean the same thing (S09), so rules store tuples where ``()`` means "everything".
"""

from __future__ import annotations

import ipaddress
from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

__all__ = [
    "METADATA_NAME_LABEL",
    "ContainerPort",
    "IPAddress",
    "IPBlock",
    "IPNetwork",
    "LabelSelector",
    "Labels",
    "Namespace",
    "NetworkPolicy",
    "Node",
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
    "labels_of_namespace",
    "port_label",
    "rule_path",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_NAME_LABEL = "kubernetes.io/metadata.name"


def labels_of_namespace(known: Mapping[str, Mapping[str, str]], name: str) -> Mapping[str, str]:
    """Labels of namespace ``name``; one ``known`` does not list has only its
    ``kubernetes.io/metadata.name`` label (S16). The one definition of that fallback."""
    labels = known.get(name)
    return labels if labels is not None else {METADATA_NAME_LABEL: name}


def rule_path(direction: str, index: int) -> str:
    """API field path of a policy rule: ``rule_path("ingress", 0) == "spec.ingress[0]"``."""
    return f"spec.{direction}[{index}]"


def port_label(port: int | str, protocol: str) -> str:
    """The one spelling of a port in kubefence's output: ``80/TCP``, ``http/TCP``, ``1-2/UDP``."""
    return f"{port}/{protocol}"


class Protocol(StrEnum):
    """The three protocols a NetworkPolicy port may name (S18)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class PolicyType(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class Operator(StrEnum):
    """Set-based selector operators (S17)."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object was read: file (``-`` for stdin), 1-based line, 0-based document index."""

    file: str
    line: int
    document: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Labels(Mapping[str, str]):
    """An immutable, hashable label map with a deterministic (sorted) iteration order."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, str] = dict(sorted((items or {}).items()))
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def items(self) -> ItemsView[str, str]:
        # The dict's own view: the Mapping mixin would iterate through __getitem__ (slow in
        # selector matching, which reads matchLabels for every pod and namespace).
        return self._items.items()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Labels):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Labels({self._items!r})"

    def with_label(self, key: str, value: str) -> Labels:
        merged = dict(self._items)
        merged[key] = value
        return Labels(merged)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry; ``values`` is sorted and empty for Exists/DoesNotExist."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``matchLabels`` AND every ``matchExpressions`` entry. The empty selector matches all."""

    match_labels: Labels = field(default_factory=Labels)
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A port a pod declares; ``name`` is what named policy ports resolve against (S21)."""

    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Labels  # always holds kubernetes.io/metadata.name=<name> (S16)
    origin: Origin | None = None
    implicit: bool = False  # referenced by an object but never declared


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod, declared directly or expanded from a workload template (``owner``)."""

    namespace: str
    name: str
    labels: Labels = field(default_factory=Labels)
    ports: tuple[ContainerPort, ...] = ()  # in declaration order across containers
    ips: tuple[IPAddress, ...] = ()  # status.podIPs (or podIP); empty when unknown
    host_network: bool = False
    phase: str | None = None
    node: str | None = None
    images: tuple[str, ...] = ()
    owner: str | None = None  # "Deployment/web" for pods made from a workload template
    origin: Origin | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    target_port: int | str  # a number, or a container port name
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    selector: Labels | None  # None: no selector (endpoints managed elsewhere)
    ports: tuple[ServicePort, ...] = ()
    cluster_ips: tuple[IPAddress, ...] = ()
    type: str = "ClusterIP"
    origin: Origin | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class PolicyPort:
    """A NetworkPolicyPort after defaulting.

    ``port`` is None (every port of ``protocol``, S19), a number (with optional inclusive
    ``end_port``, S20), or a name resolved against the destination pod's ports (S21).
    """

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True, slots=True)
class IPBlock:
    """``cidr`` minus every ``except`` range (S15). Host bits of ``cidr`` are masked."""

    cidr: IPNetwork
    except_: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class Peer:
    """One ``from``/``to`` list item: either ``ip_block`` or at least one selector (V04).

    ``pod_selector`` None with a namespace selector: every pod of the matched namespaces (S12).
    ``namespace_selector`` None with a pod selector: the policy's own namespace (S11).
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """An ingress or egress rule. ``peers == ()`` matches every peer, ``ports == ()`` every port."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """A networking.k8s.io/v1 NetworkPolicy after API-server defaulting.

    ``lines`` maps API-server field paths (``spec.ingress[0]``, ``spec.ingress[0].from[1]``) to
    the line where they start, for explanations and lint findings that point at the source.
    """

    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[PolicyType, ...]  # defaulted (S02), never empty
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    origin: Origin | None = None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def affects_ingress(self) -> bool:
        return PolicyType.INGRESS in self.policy_types

    @property
    def affects_egress(self) -> bool:
        return PolicyType.EGRESS in self.policy_types

    def line_of(self, path: str) -> int | None:
        """The source line of a field path, or of the nearest enclosing path that has one."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return self.origin.line if self.origin else None


@dataclass(frozen=True, slots=True)
class Node:
    """A node: labels for the tiers' ``nodes`` peer, InternalIP/ExternalIP ``addresses``."""

    name: str
    labels: Labels = field(default_factory=Labels)
    addresses: tuple[IPAddress, ...] = ()
    origin: Origin | None = None
