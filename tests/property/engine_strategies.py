"""Hypothesis strategies for random clusters that exercise every NetworkPolicy feature.

Why this module exists: the engine must equal the reference evaluator on any input, so the
differential tests need clusters mixing matchExpressions, AND/OR peers, ipBlocks with except
(IPv4 and IPv6), endPort ranges, named ports whose numbers clash across pods, UDP, defaulted and
explicit policyTypes, hostNetwork pods on nodes and namespaces with and without labels. Pools
are small on purpose so that selectors actually hit.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from kubefence.api import (
    METADATA_NAME_LABEL,
    ContainerPort,
    Inventory,
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

NAMESPACES = ("alpha", "beta", "gamma")
POD_LABELS = {"app": ("web", "db"), "tier": ("front",)}
NS_LABELS = {"team": ("x", "y"), "env": ("prod",)}
CONTAINER_PORTS = (
    ContainerPort(80, Protocol.TCP, "http"),
    ContainerPort(8080, Protocol.TCP, "http"),  # the same name, another number
    ContainerPort(443, Protocol.TCP, "https"),
    ContainerPort(53, Protocol.UDP, "dns"),
    ContainerPort(53, Protocol.TCP, "dns-tcp"),
    ContainerPort(9090, Protocol.TCP, None),
)
QUERY_PORTS: tuple[int | str, ...] = (80, 443, 53, 8080, 9090, 81, "http", "dns", "https")
V4 = tuple(ipaddress.IPv4Address(f"10.0.0.{n}") for n in (1, 5, 20, 130, 200))
V6 = tuple(ipaddress.IPv6Address(f"fd00::{n}") for n in (1, 2, 0x100))
BLOCKS = (
    IPBlock(ipaddress.ip_network("10.0.0.0/24")),
    IPBlock(
        ipaddress.ip_network("10.0.0.0/24"),
        (ipaddress.ip_network("10.0.0.0/28"), ipaddress.ip_network("10.0.0.128/25")),
    ),
    IPBlock(ipaddress.ip_network("0.0.0.0/0"), (ipaddress.ip_network("10.0.0.16/28"),)),
    IPBlock(ipaddress.ip_network("fd00::/120")),
    IPBlock(ipaddress.ip_network("192.168.0.0/16")),
)


def labels(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in pool.items()}).map(
        dict
    )


def requirements(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[Requirement]:
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


def selectors(pool: dict[str, tuple[str, ...]]) -> st.SearchStrategy[LabelSelector]:
    """Empty selectors (S14) about a third of the time, so that policies select and match."""
    return st.one_of(
        st.just(LabelSelector()),
        st.builds(lambda ml: LabelSelector(Labels(ml)), labels(pool)),
        st.builds(
            lambda ml, me: LabelSelector(Labels(ml), tuple(me)),
            labels(pool),
            st.lists(requirements(pool), min_size=1, max_size=2),
        ),
    )


def ns_selectors() -> st.SearchStrategy[LabelSelector]:
    pool = dict(NS_LABELS)
    pool[METADATA_NAME_LABEL] = NAMESPACES
    return selectors(pool)


peers = st.one_of(
    st.builds(lambda s: Peer(pod_selector=s), selectors(POD_LABELS)),  # S11
    st.builds(lambda s: Peer(namespace_selector=s), ns_selectors()),  # S12
    st.builds(
        lambda p, n: Peer(pod_selector=p, namespace_selector=n),
        selectors(POD_LABELS),
        ns_selectors(),
    ),  # S13
    st.builds(lambda b: Peer(ip_block=b), st.sampled_from(BLOCKS)),  # S15
)

policy_ports = st.one_of(
    st.builds(PolicyPort, st.sampled_from(list(Protocol))),  # S19
    st.builds(
        lambda proto, port: PolicyPort(proto, port),
        st.sampled_from((Protocol.TCP, Protocol.UDP)),
        st.sampled_from((80, 443, 53, 8080, 9090, "http", "dns", "https", "dns-tcp", "nope")),
    ),
    st.builds(
        lambda low, width: PolicyPort(Protocol.TCP, low, low + width),  # S20
        st.sampled_from((53, 80, 443, 8000)),
        st.integers(0, 9000),
    ),
)

rules = st.builds(
    lambda ps, ports: Rule(tuple(ps), tuple(ports)),
    st.lists(peers, max_size=2),
    st.lists(policy_ports, max_size=2),
)
"""Rules: an empty ``from``/``to`` or ``ports`` (S09) a third of the time each."""


@st.composite
def policies(draw: st.DrawFn, name: str) -> NetworkPolicy:
    ingress = tuple(draw(st.lists(rules, max_size=2)))
    egress = tuple(draw(st.lists(rules, max_size=2)))
    explicit = draw(
        st.sampled_from(
            (
                (),
                (PolicyType.INGRESS,),
                (PolicyType.EGRESS,),
                (PolicyType.INGRESS, PolicyType.EGRESS),
            )
        )
    )
    # S02 defaulting as the API server applies it: [Ingress] + Egress when egress has a rule.
    types = explicit or (
        (PolicyType.INGRESS, PolicyType.EGRESS) if egress else (PolicyType.INGRESS,)
    )
    return NetworkPolicy(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=name,
        pod_selector=draw(selectors(POD_LABELS)),
        policy_types=types,
        ingress=ingress,
        egress=egress,
    )


@st.composite
def pods(draw: st.DrawFn, name: str) -> Pod:
    host = draw(st.booleans()) and draw(st.booleans())  # about one pod in four
    return Pod(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=name,
        labels=Labels(draw(labels(POD_LABELS))),
        ports=tuple(draw(st.lists(st.sampled_from(CONTAINER_PORTS), max_size=3, unique=True))),
        ips=tuple(
            draw(st.sampled_from(((), *((ip,) for ip in V4))))
            + tuple(draw(st.lists(st.sampled_from(V6), max_size=1)))
        ),
        host_network=host,
        node=draw(st.sampled_from((None, "node-1", "node-2"))),
    )


@st.composite
def inventories(draw: st.DrawFn, *, max_pods: int = 7, max_policies: int = 4) -> Inventory:
    """A random cluster: some namespaces declared with labels, pods, policies."""
    declared = draw(st.lists(st.sampled_from(NAMESPACES), unique=True))
    namespaces = [
        Namespace(n, Labels({**draw(labels(NS_LABELS)), METADATA_NAME_LABEL: n})) for n in declared
    ]
    pod_count = draw(st.integers(0, max_pods))
    policy_count = draw(st.integers(0, max_policies))
    all_pods = [draw(pods(f"p{i}")) for i in range(pod_count)]
    all_policies = [draw(policies(f"np{i}")) for i in range(policy_count)]
    return Inventory.of(namespaces=namespaces, pods=all_pods, policies=all_policies)


queries = st.tuples(
    st.sampled_from(QUERY_PORTS), st.sampled_from((Protocol.TCP, Protocol.TCP, Protocol.UDP))
)
