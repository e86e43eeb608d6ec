"""Hypothesis strategies for random clusters that use every NetworkPolicy feature.

Why this module exists: the reference evaluator, the engine and the data plane are all checked
against random clusters, and they must draw from the same distribution so that "engine ==
reference" means something. Import as ``from tests.property.strategies import inventories``.

The pools are small on purpose, so that random selectors and peers actually hit pods: a few
namespaces with ``env``/``team`` labels, pods with ``app``/``tier`` labels, container ports that
include the same name with different numbers on different pods (``http`` = 80 or 8080) and UDP
and SCTP ports, pod IPs in 198.18.0.0/24 (and sometimes fd00::/64), and policies with
matchLabels and matchExpressions (all four operators), AND and OR peers, ipBlock with except,
endPort ranges, named ports, absent/empty lists, and policyTypes both defaulted and explicit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hypothesis import strategies as st

from kubefence.api import (
    METADATA_NAME_LABEL,
    ContainerPort,
    Inventory,
    IPAddress,
    IPBlock,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Operator,
    Peer,
    Pod,
    PolicyPort,
    PolicyType,
    Protocol,
    Requirement,
    Rule,
)

__all__ = [
    "EXTERNAL_ADDRESSES",
    "NAMESPACE_NAMES",
    "PORT_QUERIES",
    "Query",
    "inventories",
    "label_selectors",
    "network_policies",
    "peers",
    "pods",
    "policy_ports",
    "queries",
    "rules",
]

NAMESPACE_NAMES = ("alpha", "beta", "gamma")
NAMESPACE_LABELS = {"env": ("prod", "staging"), "team": ("red", "blue")}
POD_LABELS = {"app": ("web", "db", "api"), "tier": ("front", "back")}
CONTAINER_PORTS = (
    ContainerPort(80, Protocol.TCP, "http"),
    ContainerPort(8080, Protocol.TCP, "http"),  # same name, another number: S21 per destination
    ContainerPort(443, Protocol.TCP, "https"),
    ContainerPort(53, Protocol.UDP, "dns"),
    ContainerPort(53, Protocol.TCP, "dns-tcp"),
    ContainerPort(5000, Protocol.SCTP, "sig"),
)
NUMBERS = (53, 80, 443, 5000, 8080)
NAMES = ("http", "https", "dns", "dns-tcp", "sig", "missing")
PORT_QUERIES: tuple[int | str, ...] = (*NUMBERS, 81, "http", "dns", "https")
EXTERNAL_ADDRESSES = ("203.0.113.7", "198.18.0.200", "198.18.1.9", "fd00::99")
_CIDRS = ("198.18.0.0/24", "198.18.0.0/26", "198.18.0.32/27", "198.18.0.0/15", "0.0.0.0/0")
_EXCEPTS = ("198.18.0.0/28", "198.18.0.16/28", "198.18.0.40/29", "198.18.1.0/24")
_V6_CIDRS = ("fd00::/64", "fd00::/120")


def _selector(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[LabelSelector]:
    keys = sorted(pool)
    values = sorted({v for vs in pool.values() for v in vs})
    labels = st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=2)
    requirement = st.one_of(
        st.builds(
            Requirement,
            key=st.sampled_from(keys),
            operator=st.sampled_from([Operator.IN, Operator.NOT_IN]),
            values=st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True).map(
                lambda vs: tuple(sorted(vs))
            ),
        ),
        st.builds(
            Requirement,
            key=st.sampled_from(keys),
            operator=st.sampled_from([Operator.EXISTS, Operator.DOES_NOT_EXIST]),
        ),
    )
    return st.builds(
        LabelSelector,
        match_labels=labels.map(Labels),
        match_expressions=st.lists(requirement, max_size=1).map(tuple),
    )


# Strategies are built once: rebuilding them per draw costs hypothesis more than the tests.
_POD_SELECTORS = st.one_of(st.just(LabelSelector()), _selector(POD_LABELS))
_NAMESPACE_SELECTORS = st.one_of(st.just(LabelSelector()), _selector(NAMESPACE_LABELS))


def label_selectors(*, for_namespaces: bool = False) -> st.SearchStrategy[LabelSelector]:
    """Selectors over the pod (or namespace) label pool; ``{}`` is drawn often."""
    return _NAMESPACE_SELECTORS if for_namespaces else _POD_SELECTORS


def _ip_blocks() -> st.SearchStrategy[IPBlock]:
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


_PEERS = st.one_of(
    st.builds(Peer, pod_selector=_POD_SELECTORS),
    st.builds(Peer, namespace_selector=_NAMESPACE_SELECTORS),
    st.builds(Peer, pod_selector=_POD_SELECTORS, namespace_selector=_NAMESPACE_SELECTORS),
    st.builds(Peer, ip_block=_ip_blocks()),
)


def peers() -> st.SearchStrategy[Peer]:
    """podSelector only (S11), namespaceSelector only (S12), both (S13 AND), or ipBlock (S15)."""
    return _PEERS


@st.composite
def policy_ports(draw: st.DrawFn) -> PolicyPort:
    """A port entry: protocol only (S19), a number with optional endPort (S20), or a name (S21)."""
    protocol = draw(st.sampled_from(list(Protocol)))
    kind = draw(st.sampled_from(["all", "number", "range", "name"]))
    if kind == "all":
        return PolicyPort(protocol=protocol)
    if kind == "name":
        return PolicyPort(protocol=protocol, port=draw(st.sampled_from(NAMES)))
    number = draw(st.sampled_from(NUMBERS))
    if kind == "range":
        return PolicyPort(
            protocol=protocol, port=number, end_port=number + draw(st.integers(0, 600))
        )
    return PolicyPort(protocol=protocol, port=number)


_RULES = st.builds(
    Rule,
    peers=st.lists(_PEERS, max_size=2).map(tuple),
    ports=st.lists(policy_ports(), max_size=2).map(tuple),
)
_RULE_LISTS = st.lists(_RULES, max_size=2).map(tuple)
_POLICY_TYPES = st.sampled_from(
    [None, (PolicyType.INGRESS,), (PolicyType.EGRESS,), (PolicyType.INGRESS, PolicyType.EGRESS)]
)


def rules() -> st.SearchStrategy[Rule]:
    """A rule; empty ``peers``/``ports`` (absent or ``[]``) mean everything (S09)."""
    return _RULES


@st.composite
def network_policies(draw: st.DrawFn, *, namespace: str, name: str) -> NetworkPolicy:
    """A policy with defaulted (S02) or explicit policyTypes and 0-2 rules per direction."""
    ingress = draw(_RULE_LISTS)
    egress = draw(_RULE_LISTS)
    explicit = draw(_POLICY_TYPES)
    if explicit is None:  # S02: [Ingress] + Egress when egress has at least one rule
        explicit = (PolicyType.INGRESS, PolicyType.EGRESS) if egress else (PolicyType.INGRESS,)
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=draw(label_selectors()),
        policy_types=explicit,
        ingress=ingress,
        egress=egress,
    )


_POD_LABEL_MAPS = st.fixed_dictionaries(
    {}, optional={k: st.sampled_from(v) for k, v in POD_LABELS.items()}
)
_NAMESPACE_LABEL_MAPS = st.fixed_dictionaries(
    {}, optional={k: st.sampled_from(v) for k, v in NAMESPACE_LABELS.items()}
)
_CONTAINER_PORT_LISTS = st.lists(st.sampled_from(CONTAINER_PORTS), max_size=3, unique=True)


@st.composite
def pods(draw: st.DrawFn, *, namespace: str, name: str, ips: tuple[IPAddress, ...]) -> Pod:
    labels = draw(_POD_LABEL_MAPS)
    ports = draw(_CONTAINER_PORT_LISTS)
    return Pod(
        namespace=namespace,
        name=name,
        labels=Labels(labels),
        ports=tuple(ports),
        ips=ips,
        node="node-1",
    )


@st.composite
def inventories(
    draw: st.DrawFn, *, max_pods: int = 6, max_policies: int = 4, dual_stack: bool = True
) -> Inventory:
    """A random cluster: 1-3 namespaces, 1..max_pods pods with unique IPs, 0..max_policies
    policies. Some pods have no IP (ipBlocks never match them, S15)."""
    names = draw(
        st.lists(st.sampled_from(NAMESPACE_NAMES), min_size=1, max_size=3, unique=True).map(sorted)
    )
    namespaces = []
    for ns in names:
        labels = draw(_NAMESPACE_LABEL_MAPS)
        namespaces.append(Namespace(name=ns, labels=Labels({**labels, METADATA_NAME_LABEL: ns})))
    count = draw(st.integers(1, max_pods))
    hosts = draw(st.lists(st.integers(2, 60), min_size=count, max_size=count, unique=True))
    pod_list = []
    for i, host in enumerate(hosts):
        ips: tuple[IPAddress, ...] = ()
        if draw(st.integers(0, 9)) > 0:
            ips = (ipaddress.IPv4Address(f"198.18.0.{host}"),)
            if dual_stack and draw(st.booleans()):
                ips = (*ips, ipaddress.IPv6Address(f"fd00::{host:x}"))
        ns = draw(st.sampled_from(names))
        pod_list.append(draw(pods(namespace=ns, name=f"pod-{i}", ips=ips)))
    policy_count = draw(st.integers(0, max_policies))
    policies = [
        draw(network_policies(namespace=draw(st.sampled_from(names)), name=f"policy-{i}"))
        for i in range(policy_count)
    ]
    return Inventory.of(namespaces=namespaces, pods=pod_list, policies=policies)


@dataclass(frozen=True, slots=True)
class Query:
    src: str
    dst: str
    port: int | str
    protocol: Protocol


@st.composite
def queries(draw: st.DrawFn, inventory: Inventory, *, externals: bool = True) -> Query:
    """A connection to ask about: pod or external address at each end, a number or a name."""
    endpoints = [p.key for p in inventory.pods]
    choices = [*endpoints, *EXTERNAL_ADDRESSES] if externals else endpoints
    src = draw(st.sampled_from(choices))
    dst = draw(st.sampled_from(endpoints if src not in endpoints else choices))
    if src in EXTERNAL_ADDRESSES and dst in EXTERNAL_ADDRESSES:
        dst = draw(st.sampled_from(endpoints))
    return Query(
        src=src,
        dst=dst,
        port=draw(st.sampled_from(PORT_QUERIES)),
        protocol=draw(st.sampled_from(list(Protocol))),
    )
