"""The compiled algebra: every nil-vs-empty case of the table in semantics/_algebra.py."""

from __future__ import annotations

import ipaddress

from kubefence.api import (
    ContainerPort,
    IPBlock,
    Labels,
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
from kubefence.semantics import (
    ANY_INDEX,
    PeerKind,
    Settings,
    block_intervals,
    compile_policy,
    ip_in_block,
    peer_matches_ip,
    peer_matches_pod,
    port_matches,
    selector_matches,
    selects_pod,
)

ALL = LabelSelector()
APP_WEB = LabelSelector(match_labels=Labels({"app": "web"}))


def _policy(**kwargs: object) -> NetworkPolicy:
    base: dict[str, object] = {
        "namespace": "ns",
        "name": "p",
        "pod_selector": ALL,
        "policy_types": (PolicyType.INGRESS,),
    }
    base.update(kwargs)
    return NetworkPolicy(**base)  # type: ignore[arg-type]


def test_s08_direction_in_policy_types_without_rules_isolates_and_allows_nothing() -> None:
    """An Ingress policy with no ingress rules compiles to () (isolating), egress to None."""
    compiled = compile_policy(_policy())
    assert compiled.ingress == ()
    assert compiled.egress is None


def test_s09_empty_peers_and_ports_compile_to_single_any_matchers() -> None:
    """A rule with no from and no ports becomes one ANY peer and one all-protocol port."""
    compiled = compile_policy(_policy(ingress=(Rule(),)))
    assert compiled.ingress is not None
    (rule,) = compiled.ingress
    (peer,) = rule.peers
    (port,) = rule.ports
    assert peer.kind is PeerKind.ANY
    assert peer.index == ANY_INDEX
    assert port.protocol is None
    assert port.index == ANY_INDEX


def test_s11_pod_selector_only_peer_is_scoped_to_policy_namespace() -> None:
    """A podSelector-only peer matches pods of the policy's own namespace only."""
    compiled = compile_policy(_policy(ingress=(Rule(peers=(Peer(pod_selector=APP_WEB),)),)))
    assert compiled.ingress is not None
    peer = compiled.ingress[0].peers[0]
    web_here = Pod(namespace="ns", name="a", labels=Labels({"app": "web"}))
    web_there = Pod(namespace="other", name="a", labels=Labels({"app": "web"}))
    assert peer_matches_pod(peer, web_here, {})
    assert not peer_matches_pod(peer, web_there, {})


def test_s12_s13_namespace_selector_alone_and_anded_with_pod_selector() -> None:
    """namespaceSelector alone matches every pod there; with a podSelector both must hold."""
    staging = LabelSelector(match_labels=Labels({"env": "staging"}))
    policy = _policy(
        ingress=(
            Rule(
                peers=(
                    Peer(namespace_selector=staging),
                    Peer(namespace_selector=staging, pod_selector=APP_WEB),
                )
            ),
        )
    )
    compiled = compile_policy(policy)
    assert compiled.ingress is not None
    ns_only, both = compiled.ingress[0].peers
    plain = Pod(namespace="s", name="x")
    web = Pod(namespace="s", name="y", labels=Labels({"app": "web"}))
    staging_labels = {"env": "staging"}
    assert peer_matches_pod(ns_only, plain, staging_labels)
    assert not peer_matches_pod(both, plain, staging_labels)
    assert peer_matches_pod(both, web, staging_labels)
    assert not peer_matches_pod(both, web, {"env": "prod"})


def test_s14_empty_namespace_selector_matches_every_namespace() -> None:
    """namespaceSelector {} selects all namespaces, unlike an absent namespaceSelector."""
    compiled = compile_policy(_policy(ingress=(Rule(peers=(Peer(namespace_selector=ALL),)),)))
    assert compiled.ingress is not None
    peer = compiled.ingress[0].peers[0]
    assert peer.namespace is None
    assert peer_matches_pod(peer, Pod(namespace="far", name="x"), {"any": "thing"})


def test_s15_ipblock_except_and_family() -> None:
    """cidr minus except; an IPv6 address never matches an IPv4 block; pods without IPs never."""
    block = IPBlock(
        cidr=ipaddress.ip_network("198.18.0.0/16"),
        except_=(ipaddress.ip_network("198.18.1.0/24"),),
    )
    assert ip_in_block(ipaddress.ip_address("198.18.2.1"), block)
    assert not ip_in_block(ipaddress.ip_address("198.18.1.7"), block)
    assert not ip_in_block(ipaddress.ip_address("fd00::1"), block)
    compiled = compile_policy(_policy(ingress=(Rule(peers=(Peer(ip_block=block),)),)))
    assert compiled.ingress is not None
    peer = compiled.ingress[0].peers[0]
    assert peer_matches_ip(peer, ipaddress.ip_address("198.18.9.9"))
    assert not peer_matches_pod(peer, Pod(namespace="ns", name="no-ip"), {})
    with_ip = Pod(namespace="ns", name="ip", ips=(ipaddress.ip_address("198.18.9.9"),))
    assert peer_matches_pod(peer, with_ip, {})
    assert not peer_matches_pod(peer, with_ip, {}, settings=Settings(ipblock_matches_pods=False))


def test_s15_block_intervals_are_cidr_minus_excepts_as_ip_in_block_says() -> None:
    """``block_intervals``: disjoint inclusive ranges, overlapping and other-family excepts
    handled, holding exactly the addresses ``ip_in_block`` admits."""
    block = IPBlock(
        cidr=ipaddress.ip_network("10.0.0.0/28"),
        except_=(
            ipaddress.ip_network("10.0.0.4/30"),
            ipaddress.ip_network("10.0.0.6/31"),
            ipaddress.ip_network("10.0.0.15/32"),
            ipaddress.ip_network("fd00::/64"),
        ),
    )
    base = int(ipaddress.ip_address("10.0.0.0"))
    assert block_intervals(block) == ((base, base + 3), (base + 8, base + 14))
    for offset in range(-2, 18):
        address = ipaddress.ip_address(base + offset)
        inside = any(lo <= int(address) <= hi for lo, hi in block_intervals(block))
        assert inside == ip_in_block(address, block)


def test_s17_selector_operators() -> None:
    """In needs the key present with a listed value; NotIn holds for an absent key."""
    sel = LabelSelector(
        match_expressions=(
            Requirement("tier", Operator.IN, ("a", "b")),
            Requirement("env", Operator.NOT_IN, ("prod",)),
            Requirement("team", Operator.EXISTS),
            Requirement("legacy", Operator.DOES_NOT_EXIST),
        )
    )
    assert selector_matches(sel, {"tier": "a", "team": "x"})
    assert not selector_matches(sel, {"tier": "c", "team": "x"})
    assert not selector_matches(sel, {"tier": "a", "team": "x", "env": "prod"})
    assert not selector_matches(sel, {"tier": "a"})
    assert not selector_matches(sel, {"tier": "a", "team": "x", "legacy": ""})


def test_s19_s20_s21_port_matching() -> None:
    """Protocol-only entries, inclusive endPort ranges, and named ports by name AND protocol."""
    policy = _policy(
        ingress=(
            Rule(
                ports=(
                    PolicyPort(protocol=Protocol.UDP),
                    PolicyPort(port=8000, end_port=8080),
                    PolicyPort(port="http"),
                )
            ),
        )
    )
    compiled = compile_policy(policy)
    assert compiled.ingress is not None
    any_udp, tcp_range, named = compiled.ingress[0].ports
    dest = (ContainerPort(9090, Protocol.UDP, "http"), ContainerPort(8443, Protocol.TCP, "http"))
    assert port_matches(any_udp, 53, Protocol.UDP, dest)
    assert not port_matches(any_udp, 53, Protocol.TCP, dest)
    assert port_matches(tcp_range, 8080, Protocol.TCP, dest)
    assert not port_matches(tcp_range, 8081, Protocol.TCP, dest)
    assert port_matches(named, 8443, Protocol.TCP, dest)
    assert not port_matches(named, 9090, Protocol.TCP, dest)
    assert not port_matches(named, 8443, Protocol.TCP, None)  # towards an IP: no names


def test_s23_host_network_pods_are_not_targets_or_pod_peers() -> None:
    """hostNetwork pods are neither selected by podSelectors nor matched as pod peers."""
    compiled = compile_policy(_policy(ingress=(Rule(peers=(Peer(pod_selector=ALL),)),)))
    host = Pod(namespace="ns", name="h", host_network=True)
    assert not selects_pod(compiled, host)
    assert compiled.ingress is not None
    assert not peer_matches_pod(compiled.ingress[0].peers[0], host, {})
    assert selects_pod(compiled, host, settings=Settings(host_network_selectable=True))
