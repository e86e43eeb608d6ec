"""Hypothesis strategies: the test suite's one generator of random clusters.

Why this module exists: the reference evaluator, the engine and the data plane are all checked
against random clusters, and "engine == reference" only means something if every test draws
from one distribution that uses every feature. (It replaces two generators, one written for the
semantics laws and one for the engine, whose features are all kept here.)

What a cluster may contain, on purpose small pools so that selectors and peers actually hit:

- namespaces ``alpha``/``beta``/``gamma`` with ``env``/``team`` labels; either every namespace
  in use is declared, or a random non-empty subset (unused ones declared, used ones missing:
  S16's fallback);
- pods with ``app``/``tier`` labels, on node ``node-1``, ``node-2`` or none, about one in four
  on the host network (S23, S24); container ports with one name on two numbers (``http`` = 80
  or 8080, S21), UDP, SCTP and an unnamed port; addresses in 198.18.0.0/24, unique per cluster,
  IPv4 only, dual-stack, IPv6 only or unknown (S15: an unknown address never matches);
- selectors ``{}`` (S14), matchLabels with valid or crossed key/value pairs, and one or two
  matchExpressions of all four operators (S17); namespace selectors may also select by
  ``kubernetes.io/metadata.name``;
- peers podSelector only (S11), namespaceSelector only (S12), both (S13), ipBlock (S15):
  random CIDRs with random excepts, fixed blocks (the whole pod range with two excepts,
  ``0.0.0.0/0`` minus a range, one matching no pod), IPv6 blocks with and without except;
- port entries: protocol only (S19), a number, a range with ``endPort`` narrow or wide (S20), a
  name, declared or not (S21), for every protocol (S18); absent/empty lists (S08, S09);
- policyTypes defaulted (S02) or explicit, 0-2 rules per direction, 0-2 peers and ports each;
- with ``max_cluster_policies``: admin tiers (T01-T07): Admin/Baseline ClusterNetworkPolicy,
  AdminNetworkPolicy and the one BaselineAdminNetworkPolicy, tied priorities, Accept/Deny/Pass,
  every peer kind (networks holding pod IPs, nodes with and without Node objects, domainNames)
  and every port kind (numbers, ranges, named ports).

Import as ``from tests.property.strategies import inventories``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hypothesis import reject
from hypothesis import strategies as st

from kubefence.api import (
    METADATA_NAME_LABEL,
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    ContainerPort,
    Inventory,
    IPAddress,
    IPBlock,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Requirement,
    Rule,
    Tier,
)

__all__ = [
    "CONTAINER_PORTS",
    "EXTERNAL_ADDRESSES",
    "NAMESPACES",
    "NAMESPACE_LABELS",
    "NAMESPACE_NAMES",
    "NS_LABELS",
    "POD_LABELS",
    "PORT_QUERIES",
    "Query",
    "cluster_network_policies",
    "inventories",
    "label_selectors",
    "labels",
    "network_policies",
    "peers",
    "pods",
    "policies",
    "policy_ports",
    "port_queries",
    "queries",
    "rules",
]

NAMESPACE_NAMES = ("alpha", "beta", "gamma")
NAMESPACES = NAMESPACE_NAMES
NAMESPACE_LABELS = {"env": ("prod", "staging"), "team": ("red", "blue")}
NS_LABELS = NAMESPACE_LABELS
POD_LABELS = {"app": ("web", "db", "api"), "tier": ("front", "back")}
NODES = (None, "node-1", "node-2")
CONTAINER_PORTS = (
    ContainerPort(80, Protocol.TCP, "http"),
    ContainerPort(8080, Protocol.TCP, "http"),  # same name, another number: S21 per destination
    ContainerPort(443, Protocol.TCP, "https"),
    ContainerPort(53, Protocol.UDP, "dns"),
    ContainerPort(53, Protocol.TCP, "dns-tcp"),
    ContainerPort(5000, Protocol.SCTP, "sig"),
    ContainerPort(9090, Protocol.TCP, None),  # unnamed: only numbers and ranges reach it
)
NUMBERS = (53, 80, 443, 5000, 8080, 9090)
RANGE_STARTS = (53, 80, 443, 5000, 8000, 8080)
NAMES = ("http", "https", "dns", "dns-tcp", "sig", "missing")
PORT_QUERIES: tuple[int | str, ...] = (*NUMBERS, 81, "http", "dns", "https")
EXTERNAL_ADDRESSES = ("198.19.0.7", "198.18.0.200", "198.18.1.9", "fd00::99")
HOSTS = st.one_of(st.integers(2, 60), st.sampled_from((130, 200)))  # pod i gets 198.18.0.<host>
_CIDRS = ("198.18.0.0/24", "198.18.0.0/26", "198.18.0.32/27", "198.18.0.0/15", "0.0.0.0/0")
_EXCEPTS = ("198.18.0.0/28", "198.18.0.16/28", "198.18.0.40/29", "198.18.1.0/24")
_V6_CIDRS = ("fd00::/64", "fd00::/120")


def _block(cidr: str, *excepts: str) -> IPBlock:
    return IPBlock(ipaddress.ip_network(cidr), tuple(ipaddress.ip_network(e) for e in excepts))


FIXED_BLOCKS = (
    _block("198.18.0.0/24", "198.18.0.0/28", "198.18.0.128/25"),
    _block("0.0.0.0/0", "198.18.0.16/28"),
    _block("198.19.0.0/16"),  # no pod lives there
    _block("fd00::/120"),
)


# --- labels and selectors -----------------------------------------------------------------------


def labels(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[dict[str, str]]:
    """A label map drawn from ``pool``: each key present or not, with one of its values."""
    return st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in pool.items()}).map(
        dict
    )


def _requirements(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[Requirement]:
    keys = st.sampled_from(sorted(pool))
    values = st.sampled_from(sorted({v for vs in pool.values() for v in vs}))
    return st.one_of(
        st.builds(
            lambda k, vs, op: Requirement(k, op, tuple(sorted(set(vs)))),
            keys,
            st.lists(values, min_size=1, max_size=2),
            st.sampled_from((Operator.IN, Operator.NOT_IN)),
        ),
        st.builds(
            lambda k, op: Requirement(k, op),
            keys,
            st.sampled_from((Operator.EXISTS, Operator.DOES_NOT_EXIST)),
        ),
    )


def _selectors(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[LabelSelector]:
    """``{}`` (S14) about a third of the time; matchLabels valid per key or crossed (a value of
    another key: matches nothing); with one or two expressions of all four operators (S17)."""
    keys = sorted(pool)
    values = sorted({v for vs in pool.values() for v in vs})
    match_labels = st.one_of(
        labels(pool),
        st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=2),
    )
    return st.one_of(
        st.just(LabelSelector()),
        st.builds(lambda ml: LabelSelector(Labels(ml)), match_labels),
        st.builds(
            lambda ml, me: LabelSelector(Labels(ml), tuple(me)),
            match_labels,
            st.lists(_requirements(pool), min_size=1, max_size=2),
        ),
    )


# Strategies are built once: rebuilding them per draw costs hypothesis more than the tests.
_POD_SELECTORS = _selectors(POD_LABELS)
_NAMESPACE_SELECTORS = _selectors({**NAMESPACE_LABELS, METADATA_NAME_LABEL: NAMESPACE_NAMES})


def label_selectors(*, for_namespaces: bool = False) -> st.SearchStrategy[LabelSelector]:
    """Selectors over the pod (or namespace) label pool."""
    return _NAMESPACE_SELECTORS if for_namespaces else _POD_SELECTORS


# --- peers, ports, rules, policies --------------------------------------------------------------


def _random_blocks() -> st.SearchStrategy[IPBlock]:
    def build(cidr: str, excepts: list[str]) -> IPBlock:
        network = ipaddress.ip_network(cidr)
        inside = tuple(
            ipaddress.ip_network(e)
            for e in excepts
            if ipaddress.ip_network(e).subnet_of(network)  # type: ignore[arg-type]
            and ipaddress.ip_network(e) != network
        )
        return IPBlock(cidr=network, except_=tuple(sorted(set(inside), key=str)))

    v4 = st.builds(build, st.sampled_from(_CIDRS), st.lists(st.sampled_from(_EXCEPTS), max_size=2))
    v6 = st.builds(build, st.sampled_from(_V6_CIDRS), st.just(["fd00::/124"]))
    return st.one_of(v4, v6)


_IP_BLOCKS = st.one_of(_random_blocks(), st.sampled_from(FIXED_BLOCKS))
_PEERS = st.one_of(
    st.builds(Peer, pod_selector=_POD_SELECTORS),
    st.builds(Peer, namespace_selector=_NAMESPACE_SELECTORS),
    st.builds(Peer, pod_selector=_POD_SELECTORS, namespace_selector=_NAMESPACE_SELECTORS),
    st.builds(Peer, ip_block=_IP_BLOCKS),
)


def peers() -> st.SearchStrategy[Peer]:
    """podSelector only (S11), namespaceSelector only (S12), both (S13 AND), or ipBlock (S15)."""
    return _PEERS


@st.composite
def _policy_port(draw: st.DrawFn) -> PolicyPort:
    protocol = draw(st.sampled_from(list(Protocol)))
    kind = draw(st.sampled_from(["all", "number", "range", "name"]))
    if kind == "all":
        return PolicyPort(protocol=protocol)
    if kind == "name":
        return PolicyPort(protocol=protocol, port=draw(st.sampled_from(NAMES)))
    if kind == "range":
        low = draw(st.sampled_from(RANGE_STARTS))
        width = draw(st.one_of(st.integers(0, 600), st.integers(0, 9000)))
        return PolicyPort(protocol=protocol, port=low, end_port=low + width)
    return PolicyPort(protocol=protocol, port=draw(st.sampled_from(NUMBERS)))


_POLICY_PORTS = _policy_port()


def policy_ports() -> st.SearchStrategy[PolicyPort]:
    """A port entry: protocol only (S19), a number, a range with endPort (S20), or a name that
    some pods declare and some do not (S21), for any protocol (S18)."""
    return _POLICY_PORTS


_RULES = st.builds(
    Rule,
    peers=st.lists(_PEERS, max_size=2).map(tuple),
    ports=st.lists(_POLICY_PORTS, max_size=2).map(tuple),
)
_RULE_LISTS = st.lists(_RULES, max_size=2).map(tuple)
_POLICY_TYPES = st.sampled_from(
    [None, (PolicyType.INGRESS,), (PolicyType.EGRESS,), (PolicyType.INGRESS, PolicyType.EGRESS)]
)


def rules() -> st.SearchStrategy[Rule]:
    """A rule; empty ``peers``/``ports`` (absent or ``[]``) mean everything (S09)."""
    return _RULES


@st.composite
def network_policies(draw: st.DrawFn, *, name: str, namespace: str | None = None) -> NetworkPolicy:
    """A policy with defaulted (S02) or explicit policyTypes and 0-2 rules per direction, in
    ``namespace`` (default: any of the pool)."""
    ingress = draw(_RULE_LISTS)
    egress = draw(_RULE_LISTS)
    explicit = draw(_POLICY_TYPES)
    if explicit is None:  # S02: [Ingress] + Egress when egress has at least one rule
        explicit = (PolicyType.INGRESS, PolicyType.EGRESS) if egress else (PolicyType.INGRESS,)
    return NetworkPolicy(
        namespace=namespace or draw(st.sampled_from(NAMESPACE_NAMES)),
        name=name,
        pod_selector=draw(_POD_SELECTORS),
        policy_types=explicit,
        ingress=ingress,
        egress=egress,
    )


def policies(name: str) -> st.SearchStrategy[NetworkPolicy]:
    """``network_policies(name=name)``: a policy in any namespace of the pool."""
    return network_policies(name=name)


# --- admin tiers: ClusterNetworkPolicy and the v1alpha1 kinds ----------------------------------

NODE_LABELS = {"zone": ("a", "b"), "role": ("edge",)}
_NODE_SELECTORS = _selectors(NODE_LABELS)
_TIER_NETWORKS = (*_CIDRS, "198.18.0.0/27", "198.18.0.64/26", "fd00::/120", "::/0")
_ADMIN_ACTIONS = (AdminAction.ACCEPT, AdminAction.DENY, AdminAction.PASS)
PRIORITIES = (0, 1, 1, 5)  # repeats on purpose: equal priorities are ordered by name (T02)
# Tiered subjects and peers select every namespace more often than NetworkPolicy peers do, so
# that a few tiered policies on a handful of pods overlap and their order matters.
_TIER_NAMESPACES = st.one_of(st.just(LabelSelector()), _NAMESPACE_SELECTORS)


@st.composite
def _admin_peer(draw: st.DrawFn, index: int, *, egress: bool) -> AdminPeer:
    kinds = [AdminPeerKind.NAMESPACES, AdminPeerKind.PODS, AdminPeerKind.PODS]
    if egress:
        kinds += [AdminPeerKind.NETWORKS, AdminPeerKind.NETWORKS, AdminPeerKind.NODES]
        kinds += [AdminPeerKind.DOMAIN_NAMES]
    kind = draw(st.sampled_from(kinds))
    if kind is AdminPeerKind.NAMESPACES:
        return AdminPeer(index, kind, namespace_selector=draw(_TIER_NAMESPACES))
    if kind is AdminPeerKind.PODS:
        return AdminPeer(
            index,
            kind,
            namespace_selector=draw(_TIER_NAMESPACES),
            pod_selector=draw(_POD_SELECTORS),
        )
    if kind is AdminPeerKind.NETWORKS:
        chosen = draw(
            st.lists(st.sampled_from(_TIER_NETWORKS), min_size=1, max_size=2, unique=True)
        )
        return AdminPeer(index, kind, networks=tuple(ipaddress.ip_network(c) for c in chosen))
    if kind is AdminPeerKind.NODES:
        return AdminPeer(index, kind, node_selector=draw(_NODE_SELECTORS))
    return AdminPeer(index, kind, domain_names=("example.com",))


@st.composite
def _admin_port(draw: st.DrawFn, index: int) -> AdminPort:
    kind = draw(st.sampled_from(["number", "range", "name"]))
    if kind == "name":
        return AdminPort(index, name=draw(st.sampled_from(NAMES)))
    protocol = draw(st.sampled_from(list(Protocol)))
    low = draw(st.sampled_from(RANGE_STARTS if kind == "range" else NUMBERS))
    high = low + draw(st.integers(1, 9000)) if kind == "range" else low
    return AdminPort(index, protocol=protocol, low=low, high=min(high, 65535))


@st.composite
def _admin_rules(draw: st.DrawFn, *, egress: bool, baseline_v1: bool) -> tuple[AdminRule, ...]:
    out = []
    actions = _ADMIN_ACTIONS[:2] if baseline_v1 else _ADMIN_ACTIONS
    for i in range(draw(st.sampled_from((0, 1, 1, 2, 2, 3)))):
        count = draw(st.integers(1, 2))
        peer_list = tuple(draw(_admin_peer(k, egress=egress)) for k in range(count))
        ports = (
            ()
            if draw(st.booleans())
            else tuple(draw(_admin_port(k)) for k in range(draw(st.integers(1, 2))))
        )
        out.append(
            AdminRule(
                index=i,
                action=draw(st.sampled_from(actions)),
                peers=peer_list,
                ports=ports,
                name=draw(st.sampled_from((None, f"r{i}"))),
            )
        )
    return tuple(out)


@st.composite
def cluster_network_policies(draw: st.DrawFn, *, name: str) -> ClusterNetworkPolicy:
    """A tiered policy named ``name``: Admin or Baseline ClusterNetworkPolicy (or the v1alpha1
    AdminNetworkPolicy), priority from a small pool so ties occur, a namespace or pods subject,
    0-3 rules per direction with Accept/Deny/Pass, every peer kind (egress: networks that hold
    pod IPs, nodes, domainNames) and every port kind (number, range, named)."""
    kind = draw(
        st.sampled_from(["ClusterNetworkPolicy", "ClusterNetworkPolicy", "AdminNetworkPolicy"])
    )
    tier = Tier.ADMIN if kind == "AdminNetworkPolicy" else draw(st.sampled_from(list(Tier)))
    pods_subject = draw(st.booleans())
    return ClusterNetworkPolicy(
        name=name,
        kind=kind,
        tier=tier,
        priority=draw(st.sampled_from(PRIORITIES)),
        namespace_selector=draw(_TIER_NAMESPACES),
        pod_selector=draw(_POD_SELECTORS) if pods_subject else None,
        ingress=draw(_admin_rules(egress=False, baseline_v1=False)),
        egress=draw(_admin_rules(egress=True, baseline_v1=False)),
    )


@st.composite
def _baseline_v1(draw: st.DrawFn) -> ClusterNetworkPolicy:
    """The one BaselineAdminNetworkPolicy (named ``default``, no priority, no Pass)."""
    return ClusterNetworkPolicy(
        name="default",
        kind="BaselineAdminNetworkPolicy",
        tier=Tier.BASELINE,
        priority=None,
        namespace_selector=draw(_TIER_NAMESPACES),
        pod_selector=draw(_POD_SELECTORS) if draw(st.booleans()) else None,
        ingress=draw(_admin_rules(egress=False, baseline_v1=True)),
        egress=draw(_admin_rules(egress=True, baseline_v1=True)),
    )


def _nodes() -> st.SearchStrategy[list[Node]]:
    """Node objects for some of the pool's nodes (a node without one: T05's unknown labels)."""
    return st.lists(
        st.builds(
            Node,
            name=st.sampled_from(NODES[1:]),
            labels=labels(NODE_LABELS).map(Labels),
        ),
        max_size=2,
        unique_by=lambda n: n.name,
    )


# --- pods and clusters --------------------------------------------------------------------------


@st.composite
def _addresses(draw: st.DrawFn, host: int, *, dual_stack: bool = True) -> tuple[IPAddress, ...]:
    """Unknown (S15), IPv4, dual-stack or IPv6-only addresses for pod number ``host``; the
    IPv6 address lies inside or outside ``fd00::/120``."""
    kinds = ["none", "v4", "v4", "v4", "dual", "v6"] if dual_stack else ["none", "v4"]
    kind = draw(st.sampled_from(kinds))
    v4 = ipaddress.IPv4Address(f"198.18.0.{host}")
    v6 = ipaddress.IPv6Address(f"fd00::{'1:' if draw(st.booleans()) else ''}{host:x}")
    return {"none": (), "v4": (v4,), "dual": (v4, v6), "v6": (v6,)}[kind]


_POD_LABEL_MAPS = labels(POD_LABELS)
_CONTAINER_PORT_LISTS = st.lists(st.sampled_from(CONTAINER_PORTS), max_size=3, unique=True)


@st.composite
def pods(
    draw: st.DrawFn,
    name: str,
    *,
    namespace: str | None = None,
    ips: tuple[IPAddress, ...] | None = None,
) -> Pod:
    """A pod named ``name`` in ``namespace`` (default: any of the pool) with ``ips`` (default:
    drawn for a random host); about one in four on the host network."""
    host_network = draw(st.booleans()) and draw(st.booleans())
    return Pod(
        namespace=namespace or draw(st.sampled_from(NAMESPACE_NAMES)),
        name=name,
        labels=Labels(draw(_POD_LABEL_MAPS)),
        ports=tuple(draw(_CONTAINER_PORT_LISTS)),
        ips=draw(_addresses(draw(HOSTS))) if ips is None else ips,
        host_network=host_network,
        node=draw(st.sampled_from(NODES)),
    )


@st.composite
def inventories(
    draw: st.DrawFn,
    *,
    max_pods: int = 7,
    max_policies: int = 4,
    dual_stack: bool = True,
    max_cluster_policies: int = 0,
) -> Inventory:
    """A random cluster: 0..max_pods pods with unique addresses and 0..max_policies policies
    in 1-3 namespaces, declared all or in part (see the module docstring); with
    ``max_cluster_policies``, also 1 to that many tiered policies (``cluster_network_policies``,
    sometimes a BaselineAdminNetworkPolicy) and Node objects for some nodes."""
    used = draw(
        st.lists(st.sampled_from(NAMESPACE_NAMES), min_size=1, max_size=3, unique=True).map(sorted)
    )
    if draw(st.booleans()):
        declared = used
    else:
        declared = draw(st.lists(st.sampled_from(NAMESPACE_NAMES), min_size=1, unique=True))
    namespaces = [
        Namespace(ns, Labels({**draw(labels(NAMESPACE_LABELS)), METADATA_NAME_LABEL: ns}))
        for ns in declared
    ]
    count = draw(st.integers(0, max_pods))
    hosts = draw(st.lists(HOSTS, min_size=count, max_size=count, unique=True))
    pod_list = [
        draw(
            pods(
                f"p{i}",
                namespace=draw(st.sampled_from(used)),
                ips=draw(_addresses(host, dual_stack=dual_stack)),
            )
        )
        for i, host in enumerate(hosts)
    ]
    policy_list = [
        draw(network_policies(name=f"np{i}", namespace=draw(st.sampled_from(used))))
        for i in range(draw(st.integers(0, max_policies)))
    ]
    tiered: list[ClusterNetworkPolicy] = []
    nodes: list[Node] = []
    if max_cluster_policies:
        tiered = [
            draw(cluster_network_policies(name=f"cnp{i}"))
            for i in range(draw(st.integers(1, max_cluster_policies)))
        ]
        if draw(st.integers(0, 3)) == 0:
            tiered.append(draw(_baseline_v1()))
        nodes = draw(_nodes())
    return Inventory.of(
        namespaces=namespaces,
        pods=pod_list,
        policies=policy_list,
        admin_policies=tiered,
        nodes=nodes,
    )


# --- questions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    src: str
    dst: str
    port: int | str
    protocol: Protocol


@st.composite
def queries(draw: st.DrawFn, inventory: Inventory, *, externals: bool = True) -> Query:
    """A connection to ask about: a pod or an outside address at each end (never both outside),
    a port number or name, any protocol. A cluster without pods has nothing to ask: rejected."""
    endpoints = [p.key for p in inventory.pods]
    if not endpoints:
        reject()
    choices = [*endpoints, *EXTERNAL_ADDRESSES] if externals else endpoints
    src = draw(st.sampled_from(choices))
    dst = draw(st.sampled_from(endpoints if src not in endpoints else choices))
    return Query(
        src=src,
        dst=dst,
        port=draw(st.sampled_from(PORT_QUERIES)),
        protocol=draw(st.sampled_from(list(Protocol))),
    )


port_queries = st.tuples(
    st.sampled_from(PORT_QUERIES),
    st.sampled_from((Protocol.TCP, Protocol.TCP, Protocol.UDP, Protocol.SCTP)),
)
"""(port, protocol) to compute a whole matrix for; TCP drawn most often."""
