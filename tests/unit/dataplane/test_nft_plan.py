"""The nftables plan (classes, sets, dispatch) decides like the reference evaluator.

``RulesetPlan.verdict`` answers what the rendered table does with the first packet of a
connection; these tests hold it to ``kubefence.semantics.decide`` rule by rule and on random
clusters, without root.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders import namespace_model as namespace
from tests.builders import pod_model
from tests.builders import policy_model as policy
from tests.builders import selector as sel

from kubefence.api import (
    ContainerPort,
    Inventory,
    IPAddress,
    IPBlock,
    LabelSelector,
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
from kubefence.dataplane.nft import PROTOCOL_NUMBERS, RulesetPlan, plan_ruleset
from kubefence.errors import DataplaneError
from kubefence.semantics import DEFAULT_SETTINGS, Settings, decide

NODE_IP = ipaddress.ip_address("198.18.255.254")
EXTERNAL = (ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("2001:db8::5"))
ALL = (PolicyType.INGRESS, PolicyType.EGRESS)
INGRESS = (PolicyType.INGRESS,)
EGRESS = (PolicyType.EGRESS,)


# Every pod of these tests runs on node n1 (S24: NODE_IP is that node's address).
pod = functools.partial(pod_model, node="n1")


def addresses_of(inventory: Inventory) -> dict[str, tuple[IPAddress, ...]]:
    return {p.key: p.ips for p in inventory.pods if p.ips}


def plan_of(inventory: Inventory, settings_: Settings = DEFAULT_SETTINGS) -> RulesetPlan:
    """The plan with NODE_IP as the node's address when the inventory knows it as one (the
    reference learns node addresses from hostNetwork pods; otherwise it is external)."""
    known = any(p.host_network and NODE_IP in p.ips for p in inventory.pods)
    return plan_ruleset(
        inventory,
        addresses=addresses_of(inventory),
        settings=settings_,
        node_addresses=(NODE_IP,) if known else (),
    )


def first_ip(inventory: Inventory, endpoint: str, version: int = 4) -> IPAddress:
    if "/" not in endpoint:
        return ipaddress.ip_address(endpoint)
    return next(ip for ip in inventory.pod_by_key[endpoint].ips if ip.version == version)


def table_allows(
    inventory: Inventory,
    src: str,
    dst: str,
    port: int,
    protocol: Protocol = Protocol.TCP,
    *,
    version: int = 4,
    settings_: Settings = DEFAULT_SETTINGS,
) -> bool:
    """The data plane's verdict, asserted equal to the reference's before it is returned."""
    plan = plan_of(inventory, settings_)
    source, destination = first_ip(inventory, src, version), first_ip(inventory, dst, version)
    got = plan.verdict(source, destination, protocol=PROTOCOL_NUMBERS[protocol], port=port)
    expected = decide(
        inventory, str(source), str(destination), port=port, protocol=protocol, settings=settings_
    ).allowed
    assert got == expected, f"{src} -> {dst} {protocol}/{port}: table {got}, reference {expected}"
    return got


def two_namespaces(*policies: NetworkPolicy, extra: Sequence[Pod] = ()) -> Inventory:
    return Inventory.of(
        namespaces=[namespace("default"), namespace("test", team="blue")],
        pods=[
            pod("default/busybox", "198.18.0.1", "fd00::1", labels={"app": "busybox"}),
            pod(
                "test/nginx",
                "198.18.0.2",
                "fd00::2",
                labels={"app": "nginx"},
                ports=[ContainerPort(80, name="http"), ContainerPort(53, Protocol.UDP, "dns")],
            ),
            pod("test/client", "198.18.0.3", "fd00::3", labels={"app": "client"}),
            *extra,
        ],
        policies=list(policies),
    )


def test_s03_pods_without_policies_are_not_dispatched() -> None:
    """S03: with no policy nothing is isolated, the maps are empty and everything passes."""
    inventory = two_namespaces()
    plan = plan_of(inventory)
    assert plan.egress == plan.ingress == ()
    assert plan.egress_dispatch == plan.ingress_dispatch == ()
    assert table_allows(inventory, "default/busybox", "test/nginx", 80)


def test_s08_ingress_empty_isolates_and_allows_nothing_own_namespace_too() -> None:
    """S08: ``ingress: []`` gives a class chain with no set: every new connection is dropped."""
    inventory = two_namespaces(policy("test/deny", LabelSelector(), INGRESS))
    plan = plan_of(inventory)
    assert len(plan.ingress) == 1
    assert plan.ingress[0].elements == ()
    assert plan.ingress[0].pods == ("test/client", "test/nginx")
    assert not table_allows(inventory, "default/busybox", "test/nginx", 80)
    assert not table_allows(inventory, "test/client", "test/nginx", 80, version=6)
    assert table_allows(inventory, "test/nginx", "default/busybox", 80)


def test_s07_self_traffic_never_crosses_the_table() -> None:
    """S07: a pod reaching itself is allowed even when isolated in both directions."""
    inventory = two_namespaces(policy("test/deny", LabelSelector(), ALL))
    assert table_allows(inventory, "test/nginx", "test/nginx", 80)


def test_s11_pod_selector_peer_covers_own_namespace_only() -> None:
    """S11: a podSelector-only peer admits the policy's namespace, not the same labels elsewhere."""
    allow = policy(
        "test/allow",
        sel(app="nginx"),
        INGRESS,
        ingress=[Rule(peers=(Peer(pod_selector=sel(app="client")),))],
    )
    stranger = pod("default/client", "198.18.0.4", labels={"app": "client"})
    inventory = two_namespaces(allow, extra=[stranger])
    assert table_allows(inventory, "test/client", "test/nginx", 80)
    assert not table_allows(inventory, "default/client", "test/nginx", 80)


def test_s12_s13_and_peer_versus_or_peers() -> None:
    """S13: namespaceSelector and podSelector in one item are ANDed; two items are ORed (S12)."""
    and_peer = Peer(namespace_selector=sel(team="red"), pod_selector=sel(app="busybox"))
    staging = pod("staging/busybox", "198.18.0.5", labels={"app": "busybox"})
    other = pod("staging/other", "198.18.0.6", labels={"app": "other"})
    base = [namespace("default"), namespace("test"), namespace("staging", team="red")]
    nginx = pod("test/nginx", "198.18.0.2", labels={"app": "nginx"})
    busybox = pod("default/busybox", "198.18.0.1", labels={"app": "busybox"})
    pods = [staging, other, nginx, busybox]
    anded = Inventory.of(
        namespaces=base,
        pods=pods,
        policies=[policy("test/p", LabelSelector(), INGRESS, ingress=[Rule(peers=(and_peer,))])],
    )
    assert table_allows(anded, "staging/busybox", "test/nginx", 80)
    assert not table_allows(anded, "staging/other", "test/nginx", 80)
    assert not table_allows(anded, "default/busybox", "test/nginx", 80)
    or_peers = (
        Peer(namespace_selector=sel(team="red")),
        Peer(pod_selector=sel(app="busybox")),
    )
    ored = Inventory.of(
        namespaces=base,
        pods=pods,
        policies=[policy("test/p", LabelSelector(), INGRESS, ingress=[Rule(peers=or_peers)])],
    )
    assert table_allows(ored, "staging/other", "test/nginx", 80)
    assert not table_allows(ored, "default/busybox", "test/nginx", 80)


def test_s15_ipblock_with_except_matches_pod_addresses() -> None:
    """S15: ipBlock cidr minus except admits pods and external addresses inside, not the hole."""
    block = IPBlock(
        cidr=ipaddress.ip_network("198.18.0.0/24"),
        except_=(ipaddress.ip_network("198.18.0.2/31"),),
    )
    allow = policy(
        "test/p", sel(app="nginx"), INGRESS, ingress=[Rule(peers=(Peer(ip_block=block),))]
    )
    outsider = pod("default/outsider", "198.18.1.9")
    inventory = two_namespaces(allow, extra=[outsider])
    assert table_allows(inventory, "default/busybox", "test/nginx", 80)
    assert not table_allows(inventory, "test/client", "test/nginx", 80)  # .3 is in the except
    assert not table_allows(inventory, "default/outsider", "test/nginx", 80)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 80, version=6)
    assert table_allows(inventory, "198.18.0.200", "test/nginx", 80)


def test_s15_setting_ipblock_ignores_pods_removes_pod_addresses() -> None:
    """S15 setting off: ipBlocks match external addresses only, the pods' are cut out."""
    block = IPBlock(cidr=ipaddress.ip_network("198.18.0.0/24"))
    allow = policy(
        "test/p", sel(app="nginx"), INGRESS, ingress=[Rule(peers=(Peer(ip_block=block),))]
    )
    inventory = two_namespaces(allow)
    off = Settings(ipblock_matches_pods=False)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 80, settings_=off)
    assert table_allows(inventory, "198.18.0.77", "test/nginx", 80, settings_=off)


def test_s18_s19_s20_protocols_and_port_ranges() -> None:
    """S19: a protocol without port admits all its ports; S20: endPort is inclusive; S18: only
    the listed protocol passes, while a rule without ports admits every protocol."""
    ports = (
        PolicyPort(Protocol.UDP),
        PolicyPort(Protocol.TCP, 8000, 8080),
        PolicyPort(Protocol.SCTP, 9000),
    )
    allow = policy("test/p", sel(app="nginx"), INGRESS, ingress=[Rule(ports=ports)])
    inventory = two_namespaces(allow)
    for port in (1, 53, 65535):
        assert table_allows(inventory, "default/busybox", "test/nginx", port, Protocol.UDP)
    assert table_allows(inventory, "default/busybox", "test/nginx", 8000)
    assert table_allows(inventory, "default/busybox", "test/nginx", 8080)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 8081)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 7999)
    assert table_allows(inventory, "default/busybox", "test/nginx", 9000, Protocol.SCTP)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 9000)
    plan = plan_of(inventory)
    source, destination = first_ip(inventory, "default/busybox"), first_ip(inventory, "test/nginx")
    assert not plan.verdict(source, destination, protocol=1, port=0)  # ICMP: not listed
    open_ = two_namespaces(policy("test/p", sel(app="nginx"), INGRESS, ingress=[Rule()]))
    assert plan_of(open_).verdict(source, destination, protocol=1, port=0)  # S09: all protocols


def test_s21_ingress_named_port_resolves_per_selected_pod() -> None:
    """S21: pods declaring ``http`` on different numbers fall in different ingress classes."""
    other_web = pod(
        "test/web2", "198.18.0.9", labels={"app": "nginx"}, ports=[ContainerPort(8080, name="http")]
    )
    no_name = pod("test/bare", "198.18.0.10", labels={"app": "nginx"})
    allow = policy(
        "test/p", sel(app="nginx"), INGRESS, ingress=[Rule(ports=(PolicyPort(port="http"),))]
    )
    inventory = two_namespaces(allow, extra=[other_web, no_name])
    plan = plan_of(inventory)
    assert len(plan.ingress) == 3
    assert [n.port for c in plan.ingress for n in c.named_ports] == [None, 80, 8080]
    assert table_allows(inventory, "default/busybox", "test/nginx", 80)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 8080)
    assert table_allows(inventory, "default/busybox", "test/web2", 8080)
    assert not table_allows(inventory, "default/busybox", "test/web2", 80)
    assert not table_allows(inventory, "default/busybox", "test/bare", 80)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 80, Protocol.UDP)


def test_s21_egress_named_port_resolves_per_destination_pod() -> None:
    """S21: an egress name becomes peer-address . protocol . that peer's own port; towards an
    external address it matches nothing."""
    other_web = pod("test/web2", "198.18.0.9", ports=[ContainerPort(8080, name="http")])
    allow = policy(
        "default/p", LabelSelector(), EGRESS, egress=[Rule(ports=(PolicyPort(port="http"),))]
    )
    inventory = two_namespaces(allow, extra=[other_web])
    assert table_allows(inventory, "default/busybox", "test/nginx", 80)
    assert table_allows(inventory, "default/busybox", "test/web2", 8080)
    assert not table_allows(inventory, "default/busybox", "test/web2", 80)
    assert not table_allows(inventory, "default/busybox", "203.0.113.5", 80)
    assert table_allows(inventory, "default/busybox", "test/nginx", 80, version=6)


def test_s05_egress_to_external_and_ingress_from_external() -> None:
    """S05: to an external address only the source's egress applies, from one only ingress."""
    deny_egress = policy("default/deny", LabelSelector(), EGRESS)
    inventory = two_namespaces(deny_egress)
    assert not table_allows(inventory, "default/busybox", "203.0.113.5", 443)
    assert not table_allows(inventory, "default/busybox", "test/nginx", 80)
    assert table_allows(inventory, "203.0.113.5", "default/busybox", 80)
    assert table_allows(inventory, "test/client", "test/nginx", 80)


def test_s23_host_network_pods_are_not_dispatched_nor_pod_peers() -> None:
    """S23: a hostNetwork pod shares the node address: no chain, no member of pod peers, but
    ipBlocks may match its address."""
    host = pod("test/agent", str(NODE_IP), labels={"app": "client"}, host_network=True)
    allow = policy(
        "test/p",
        LabelSelector(),
        ALL,
        ingress=[Rule(peers=(Peer(pod_selector=sel(app="client")),))],
        egress=[Rule(peers=(Peer(pod_selector=sel(app="client")),))],
    )
    inventory = two_namespaces(allow, extra=[host])
    plan = plan_of(inventory)
    dispatched = {d.pod for d in (*plan.egress_dispatch, *plan.ingress_dispatch)}
    assert "test/agent" not in dispatched
    assert plan.atom_of(NODE_IP) == 0  # in no peer's address set
    assert not table_allows(inventory, "test/nginx", str(NODE_IP), 80)


def test_s24_node_addresses_are_accepted_unless_the_setting_is_off() -> None:
    """S24: packets from the node's addresses pass; with the setting off ingress applies."""
    inventory = two_namespaces(policy("test/deny", LabelSelector(), INGRESS))
    node = str(NODE_IP)
    host = pod("test/agent", node, host_network=True)  # makes NODE_IP the node's known address
    inventory = two_namespaces(policy("test/deny", LabelSelector(), INGRESS), extra=[host])
    assert table_allows(inventory, node, "test/nginx", 80)
    off = Settings(allow_from_node=False)
    assert plan_of(inventory, off).node_addresses == ()
    assert not table_allows(inventory, node, "test/nginx", 80, settings_=off)


def test_classes_group_pods_by_selecting_policies() -> None:
    """Pods selected by the same policies share one chain; dispatch lists every address."""
    inventory = two_namespaces(
        policy("test/all", LabelSelector(), INGRESS, ingress=[Rule()]),
        policy("test/nginx-only", sel(app="nginx"), INGRESS),
    )
    plan = plan_of(inventory)
    assert [c.pods for c in plan.ingress] == [("test/client",), ("test/nginx",)]
    assert [s.policy for s in plan.ingress[1].sources] == ["test/all", "test/nginx-only"]
    assert [(str(d.address), d.number) for d in plan.ingress_dispatch] == [
        ("198.18.0.2", 2),
        ("198.18.0.3", 1),
        ("fd00::2", 2),
        ("fd00::3", 1),
    ]


def test_pod_without_address_is_not_dispatched_and_matches_nothing() -> None:
    """A pod missing from ``addresses`` has no IP: no dispatch entry, no element anywhere."""
    inventory = two_namespaces(policy("test/p", LabelSelector(), INGRESS, ingress=[Rule()]))
    addresses = addresses_of(inventory)
    del addresses["test/client"]
    plan = plan_ruleset(inventory, addresses=addresses)
    assert {d.pod for d in plan.ingress_dispatch} == {"test/nginx"}


def test_shared_address_between_pods_is_a_dataplane_error() -> None:
    """Two ordinary pods given one address cannot be told apart: DataplaneError names both."""
    inventory = two_namespaces()
    addresses = addresses_of(inventory)
    addresses["test/client"] = addresses["test/nginx"]
    with pytest.raises(DataplaneError, match="test/client"):
        plan_ruleset(inventory, addresses=addresses)


# --- random clusters against the reference --------------------------------------------------

_LABELS = st.fixed_dictionaries({}, optional={"app": st.sampled_from(["web", "db"])})
_CONTAINER_PORTS = st.lists(
    st.sampled_from(
        [
            ContainerPort(80, Protocol.TCP, "http"),
            ContainerPort(8080, Protocol.TCP, "http"),
            ContainerPort(53, Protocol.UDP, "dns"),
            ContainerPort(5000, Protocol.SCTP, "sig"),
        ]
    ),
    max_size=2,
)
_SELECTORS = st.sampled_from(
    [
        LabelSelector(),
        sel(app="web"),
        sel(app="db"),
        LabelSelector(match_expressions=(Requirement("app", Operator.DOES_NOT_EXIST),)),
    ]
)
_NS_SELECTORS = st.sampled_from([LabelSelector(), sel(team="red"), sel(team="blue")])
_BLOCKS = st.sampled_from(
    [
        IPBlock(ipaddress.ip_network("198.18.0.0/29"), (ipaddress.ip_network("198.18.0.4/30"),)),
        IPBlock(ipaddress.ip_network("0.0.0.0/0"), (ipaddress.ip_network("198.18.0.0/30"),)),
        IPBlock(ipaddress.ip_network("fd00::/126")),
        IPBlock(ipaddress.ip_network("198.18.255.0/24")),
    ]
)
_PEERS = st.one_of(
    st.builds(Peer, pod_selector=_SELECTORS),
    st.builds(Peer, namespace_selector=_NS_SELECTORS),
    st.builds(Peer, pod_selector=_SELECTORS, namespace_selector=_NS_SELECTORS),
    st.builds(Peer, ip_block=_BLOCKS),
    st.builds(Peer, ip_block=_BLOCKS),  # twice: ipBlock-vs-pod cases need to be frequent
)
_PORTS = st.sampled_from(
    [
        PolicyPort(Protocol.TCP, 80),
        PolicyPort(Protocol.TCP, 79, 8080),
        PolicyPort(Protocol.UDP),
        PolicyPort(Protocol.TCP, "http"),
        PolicyPort(Protocol.UDP, "dns"),
        PolicyPort(Protocol.SCTP, "sig"),
    ]
)
_RULES = st.builds(
    Rule,
    peers=st.lists(_PEERS, max_size=2).map(tuple),
    ports=st.lists(_PORTS, max_size=2).map(tuple),
)
_PROBES = ((Protocol.TCP, 80), (Protocol.TCP, 8080), (Protocol.UDP, 53), (Protocol.SCTP, 5000))


@st.composite
def _clusters(draw: st.DrawFn) -> Inventory:
    namespaces = [namespace("a", team="red"), namespace("b", team="blue")]
    pods = []
    count = draw(st.integers(1, 5))
    for i in range(count):
        host = draw(st.booleans()) if i == count - 1 else False
        ips = [str(NODE_IP)] if host else [f"198.18.0.{i + 1}"]
        if not host and draw(st.booleans()):
            ips.append(f"fd00::{i + 1}")
        pods.append(
            pod(
                f"{draw(st.sampled_from(['a', 'b']))}/p{i}",
                *ips,
                labels=draw(_LABELS),
                ports=draw(_CONTAINER_PORTS),
                host_network=host,
            )
        )
    policies = [
        policy(
            f"{draw(st.sampled_from(['a', 'b']))}/np{i}",
            draw(_SELECTORS),
            draw(st.sampled_from([INGRESS, EGRESS, ALL])),
            ingress=draw(st.lists(_RULES, max_size=2)),
            egress=draw(st.lists(_RULES, max_size=2)),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    return Inventory.of(namespaces=namespaces, pods=pods, policies=policies)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    _clusters(),
    st.sampled_from(
        [DEFAULT_SETTINGS, Settings(ipblock_matches_pods=False), Settings(allow_from_node=False)]
    ),
)
def test_s04_s10_s21_random_clusters_table_equals_reference(
    inventory: Inventory, settings_: Settings
) -> None:
    """S04/S05/S10/S15/S21/S23/S24: for every address pair, protocol and port the table's
    verdict equals the reference evaluator's."""
    plan = plan_of(inventory, settings_)
    addresses = sorted(
        {ip for p in inventory.pods for ip in p.ips} | set(EXTERNAL) | {NODE_IP},
        key=lambda a: (a.version, int(a)),
    )
    pod_ips = {ip for p in inventory.pods if not p.host_network for ip in p.ips}
    for src, dst in itertools.product(addresses, repeat=2):
        if src.version != dst.version or not ({src, dst} & pod_ips):
            continue
        for protocol, port in _PROBES:
            expected = decide(
                inventory, str(src), str(dst), port=port, protocol=protocol, settings=settings_
            ).allowed
            got = plan.verdict(src, dst, protocol=PROTOCOL_NUMBERS[protocol], port=port)
            assert got == expected, f"{src} -> {dst} {protocol}/{port}"


def test_atoms_share_a_number_for_replicas_and_both_families() -> None:
    """Pods no peer tells apart (same namespace and labels) share one atom, and so do the two
    addresses of a dual-stack pod; an address in no peer set is atom 0."""
    replica = pod("test/nginx-2", "198.18.0.8", "fd00::8", labels={"app": "nginx"})
    allow = policy(
        "default/p",
        LabelSelector(),
        EGRESS,
        egress=[Rule(peers=(Peer(pod_selector=sel(app="nginx"), namespace_selector=sel()),))],
    )
    inventory = two_namespaces(allow, extra=[replica])
    plan = plan_of(inventory)
    atoms = {
        plan.atom_of(ip)
        for key in ("test/nginx", "test/nginx-2")
        for ip in addresses_of(inventory)[key]
    }
    assert atoms == {1}
    assert plan.atom_of(first_ip(inventory, "test/client")) == 0
    assert plan.legend[1] == ("default/p egress[0].to[0]",)
    assert table_allows(inventory, "default/busybox", "test/nginx-2", 80, version=6)
    assert not table_allows(inventory, "default/busybox", "test/client", 80)
