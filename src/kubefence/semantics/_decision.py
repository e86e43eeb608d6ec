"""A verdict as data: what was decided, on which side, by which policy and rule, and why not.

Why this module exists: "which policy dropped my packet?" needs more than a boolean. A
``Decision`` records, for egress at the source and ingress at the destination, whether the side
is isolated and by which policies, which (policy, rule, peer, port) admitted the connection, and
for a denial the nearest miss of every isolating policy (which rule came closest, whether its
peer matched, which port entries it lists, which label was missing). It is plain frozen data:
text and JSON are produced only in ``kubefence.cli``.

Indices are 0-based positions in the manifest lists (``spec.ingress[i].from[j].ports[k]``);
``ANY_INDEX`` (-1) marks the implicit matcher of an absent or empty ``from``/``to``/``ports``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kubefence.api import IPAddress, IPNetwork, Operator, Protocol
from kubefence.semantics._algebra import Direction, PeerKind

__all__ = [
    "Admission",
    "Decision",
    "Endpoint",
    "EndpointKind",
    "MissReason",
    "PeerMiss",
    "PolicyMiss",
    "PolicyRef",
    "PortEntry",
    "Reason",
    "RuleMiss",
    "SideDecision",
    "TierRule",
    "Unevaluated",
    "Unmet",
]


class Reason(Enum):
    """Why the verdict is what it is, at the level of the whole connection."""

    POLICIES = "policies"  # decided by the policies of both sides (S03-S05)
    HOST_NETWORK = "host-network"  # a side is a hostNetwork pod acting as its node's IP (S23)
    SELF = "self"  # a pod talking to itself (S07)
    FROM_NODE = "from-node"  # from the destination pod's own node (S24)
    UNRESOLVED_PORT = "unresolved-port"  # a port name the destination does not declare (S21)
    SERVICE = "service"  # to a Service: decided per backend pod after translation (S22)
    NO_BACKENDS = "no-backends"  # to a Service that selects no pod


class EndpointKind(Enum):
    POD = "pod"  # a pod policies can select and match
    HOST_NETWORK_POD = "host-network-pod"  # a hostNetwork pod: acts as its node's IP (S23)
    NODE = "node"  # a node (``node:NAME`` or a node IP known from hostNetwork pods)
    SERVICE = "service"  # a Service ClusterIP (``svc:NS/NAME`` or the address)
    EXTERNAL = "external"  # an address of no known pod (S05)


class MissReason(Enum):
    """Why one peer of a rule did not match the other endpoint."""

    NOT_A_POD = "not-a-pod"  # a pod peer, but the endpoint is an address or a node
    HOST_NETWORK = "host-network"  # a pod peer, but the endpoint is a hostNetwork pod (S23)
    OTHER_NAMESPACE = "other-namespace"  # podSelector-only peer: the policy's namespace only (S11)
    LABELS = "labels"  # namespace and/or pod selector requirements unmet (S12-S14, S17)
    NO_ADDRESS = "no-address"  # ipBlock peer, endpoint has no known IP (S15)
    OUTSIDE_CIDR = "outside-cidr"  # ipBlock peer, address outside ``cidr``
    IN_EXCEPT = "in-except"  # ipBlock peer, address inside an ``except`` range
    IPBLOCK_IGNORES_PODS = "ipblock-ignores-pods"  # ipBlock vs pod with the setting off (S15)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of the connection as kubefence understood it."""

    kind: EndpointKind
    name: str  # "ns/pod", "node:NAME", "ns/service" or the address
    address: IPAddress | None = None  # the address used for ipBlock matching, when known
    node: str | None = None  # the pod's node or the node itself


@dataclass(frozen=True, slots=True)
class PolicyRef:
    namespace: str
    name: str
    file: str | None = None
    line: int | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Admission:
    """The first peer and port entry of one rule that together admitted the connection."""

    policy: PolicyRef
    rule: int
    peer: int
    port: int
    line: int | None = None  # source line of the rule


@dataclass(frozen=True, slots=True)
class Unmet:
    """A selector requirement the endpoint's labels fail; ``actual`` is their value for ``key``.

    A ``matchLabels`` entry ``k: v`` is reported as ``In`` with the single value ``v``."""

    key: str
    operator: Operator
    values: tuple[str, ...]
    actual: str | None


@dataclass(frozen=True, slots=True)
class PeerMiss:
    """Why peer ``index`` of a rule did not match the other endpoint."""

    index: int
    kind: PeerKind
    reason: MissReason
    subject: str  # the endpoint that was tested, e.g. "default/busybox"
    expected_namespace: str | None = None  # OTHER_NAMESPACE: the policy's namespace
    namespace: str | None = None  # the endpoint pod's namespace
    namespace_unmet: tuple[Unmet, ...] = ()
    pod_unmet: tuple[Unmet, ...] = ()
    address: IPAddress | None = None
    cidr: IPNetwork | None = None
    except_: IPNetwork | None = None  # IN_EXCEPT: the excluding range


@dataclass(frozen=True, slots=True)
class PortEntry:
    """One port entry of a rule, with a named port resolved against the destination."""

    index: int
    protocol: Protocol | None  # None: the implicit "every port, every protocol" entry
    low: int | None = None
    high: int | None = None
    name: str | None = None
    resolved: int | None = None  # the number ``name`` resolves to at the destination, if any
    matched: bool = False


@dataclass(frozen=True, slots=True)
class RuleMiss:
    """One rule of an isolating policy that did not admit the connection, and how close it was."""

    rule: int
    line: int | None
    peer_matched: bool
    port_matched: bool
    peers: tuple[PeerMiss, ...]  # every peer that missed (empty when ``peer_matched``)
    ports: tuple[PortEntry, ...]  # every port entry of the rule


@dataclass(frozen=True, slots=True)
class PolicyMiss:
    """An isolating policy that admitted nothing for this connection.

    ``rules`` is empty when the policy lists no rule for the direction (``ingress: []`` or
    absent with the type in policyTypes, S08): it isolates and allows nothing."""

    policy: PolicyRef
    rules: tuple[RuleMiss, ...]

    @property
    def nearest(self) -> RuleMiss | None:
        """The rule that came closest: peer matched first, then port matched, then first."""
        if not self.rules:
            return None
        return max(self.rules, key=lambda r: (r.peer_matched, r.port_matched, -r.rule))


@dataclass(frozen=True, slots=True)
class TierRule:
    """The rule of a tiered policy (ClusterNetworkPolicy, AdminNetworkPolicy,
    BaselineAdminNetworkPolicy) that matched one side of a connection, and what it did.

    ``port`` is ``ANY_INDEX`` when the rule lists no ``protocols``/``ports``."""

    tier: str  # "Admin" or "Baseline"
    kind: str  # the manifest kind
    policy: str
    priority: int | None  # None: a BaselineAdminNetworkPolicy (it has none)
    rule: int
    rule_name: str | None
    action: str  # "Accept", "Deny" or "Pass"
    peer: int
    port: int
    file: str | None = None
    line: int | None = None  # source line of the rule


@dataclass(frozen=True, slots=True)
class Unevaluated:
    """A peer kubefence cannot evaluate offline (``domainNames``; ``nodes`` with a selector,
    since manifests carry no node labels), skipped as if it did not match."""

    tier: str
    kind: str
    policy: str
    rule: int
    peer: int
    peer_kind: str  # "domainNames" or "nodes"
    why: str


@dataclass(frozen=True, slots=True)
class SideDecision:
    """Egress at the source or ingress at the destination.

    ``applicable`` False: the endpoint is not a pod policies select (an external address, a
    node, a hostNetwork pod), so this side imposes nothing (S05, S23)."""

    direction: Direction
    endpoint: str
    applicable: bool
    isolated: bool
    allowed: bool
    isolating: tuple[PolicyRef, ...] = ()
    admitted_by: tuple[Admission, ...] = ()  # one per admitting (policy, rule), policy order
    misses: tuple[PolicyMiss, ...] = ()  # when denied: one per isolating policy
    # Admin tiers (only when the inventory has tiered policies; None/() otherwise):
    # ``tier`` is the tier that decided: "Admin", "NetworkPolicy", "Baseline" or "Default".
    # ``isolated``/``isolating``/``admitted_by``/``misses`` describe NetworkPolicy and are only
    # evaluated when the Admin tier did not decide.
    tier: str | None = None
    tier_rule: TierRule | None = None  # the Accept/Deny rule that decided (Admin, Baseline)
    passed: tuple[TierRule, ...] = ()  # Pass rules that handed the decision to the next tier
    unevaluated: tuple[Unevaluated, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one connection ``source`` -> ``destination`` on ``port``/``protocol``.

    ``port`` is the number the connection uses (the resolved one when ``port_name`` was
    asked); None when the name could not be resolved. ``egress``/``ingress`` are None when a
    special ``reason`` (self traffic, from the node, unresolvable port, a Service) decided
    without evaluating that side. A Service destination is decided per backend pod
    (``backends``): allowed iff it has backends and every backend admits the connection, since
    the Service may send it to any of them.
    """

    allowed: bool
    reason: Reason
    source: Endpoint
    destination: Endpoint
    protocol: Protocol
    port: int | None
    port_name: str | None = None
    egress: SideDecision | None = None
    ingress: SideDecision | None = None
    backends: tuple[Decision, ...] = ()
