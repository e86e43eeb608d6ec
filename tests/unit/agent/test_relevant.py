"""``relevant_pods``: the node's table planned from the pods it keeps decides every connection
as the table planned from every pod, on random clusters; pods elsewhere are dropped."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Collection
from typing import Any

import pytest
from tests.builders import inventory, namespace, pod, policy

from kubefence.agent._relevant import relevant_pods
from kubefence.api import Inventory, IPAddress, Pod, Protocol
from kubefence.dataplane.nft import PROTOCOL_NUMBERS, RulesetPlan, plan_ruleset
from kubefence.semantics import DEFAULT_SETTINGS

NAMESPACES = ("a", "b", "c", "d", "e")
APPS = ("web", "db", "api")
PORTS = [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53,
         "protocol": "UDP"}, {"containerPort": 80}]  # fmt: skip
EXTERNAL = ipaddress.ip_address("198.19.200.7")


def _peer(rng: random.Random) -> dict[str, Any]:
    choice = rng.randrange(5)
    app = {"matchLabels": {"app": rng.choice(APPS)}}
    team = {"matchLabels": {"team": rng.choice(("x", "y"))}}
    if choice == 0:
        return {"podSelector": app}
    if choice == 1:
        return {"namespaceSelector": team}
    if choice == 2:
        return {"namespaceSelector": team, "podSelector": app}
    if choice == 3:
        return {"namespaceSelector": {}}
    octet = rng.randrange(4)
    return {"ipBlock": {"cidr": f"198.18.{octet}.0/24", "except": [f"198.18.{octet}.0/30"]}}


def _rule(rng: random.Random, direction: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if rng.random() < 0.8:
        rule["from" if direction == "ingress" else "to"] = [
            _peer(rng) for _ in range(rng.randrange(1, 3))
        ]
    if rng.random() < 0.6:
        port = rng.choice(("http", "dns", 80, 8080, 53))
        protocol = "UDP" if port in ("dns", 53) else "TCP"
        rule["ports"] = [{"port": port, "protocol": protocol}]
    return rule


def random_cluster(seed: int) -> Inventory:
    rng = random.Random(seed)
    objects: list[Any] = [namespace(ns, team=rng.choice(("x", "y"))) for ns in NAMESPACES]
    for i in range(24):
        ns = rng.choice(NAMESPACES)
        ports = rng.sample(PORTS, k=rng.randrange(0, 3))
        ip = f"198.18.{i % 4}.{10 + i}"
        objects.append(pod(f"{ns}/p{i}", ip=ip, node=rng.choice(("n1", "n2", "n3")),
                           ports=ports, app=rng.choice(APPS)))  # fmt: skip
    for i in range(rng.randrange(1, 7)):
        ns = rng.choice(NAMESPACES)
        types = rng.choice((["Ingress"], ["Egress"], ["Ingress", "Egress"]))
        spec: dict[str, Any] = {
            "podSelector": rng.choice(({}, {"matchLabels": {"app": rng.choice(APPS)}})),
            "policyTypes": types,
        }
        for direction in ("ingress", "egress"):
            if direction.capitalize() in types:
                spec[direction] = [_rule(rng, direction) for _ in range(rng.randrange(0, 3))]
        objects.append(policy(f"{ns}/q{i}", spec))
    return inventory(*objects)


def keep(whole: Inventory, local: Collection[str]) -> tuple[Pod, ...]:
    return relevant_pods(
        whole.pods,
        whole.policies,
        local=local,
        namespace_labels=whole.namespace_labels,
        settings=DEFAULT_SETTINGS,
    )


def plan_of(inv: Inventory, local: frozenset[str]) -> RulesetPlan:
    return plan_ruleset(inv, addresses={p.key: p.ips for p in inv.pods}, local=local)


def verdicts(plan: RulesetPlan, everyone: list[IPAddress]) -> list[bool]:
    found = []
    for src in everyone:
        for dst in everyone:
            for port, protocol in ((80, Protocol.TCP), (8080, Protocol.TCP), (53, Protocol.UDP)):
                number = PROTOCOL_NUMBERS[protocol]
                found.append(plan.verdict(src, dst, protocol=number, port=port))
    return found


@pytest.mark.parametrize("seed", range(150))
def test_the_kept_pods_plan_the_same_table(seed: int) -> None:
    whole = random_cluster(seed)
    local = frozenset(p.key for p in whole.pods if p.node == "n1")
    kept = keep(whole, local)
    assert local <= {p.key for p in kept}
    trimmed = Inventory(namespaces=whole.namespaces, pods=kept, policies=whole.policies)
    everyone = [p.ips[0] for p in whole.pods] + [EXTERNAL]
    assert verdicts(plan_of(trimmed, local), everyone) == verdicts(plan_of(whole, local), everyone)


def test_pods_no_peer_can_match_are_dropped_and_named_egress_keeps_everyone() -> None:
    objects = [
        namespace("a"), namespace("b"),
        pod("a/web", ip="198.18.0.2", node="n1", app="web"),
        pod("a/db", ip="198.18.1.2", node="n2", app="db"),
        pod("b/other", ip="198.18.2.2", node="n2", app="db"),
        policy("a/p", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    ]  # fmt: skip
    whole = inventory(*objects)
    assert [p.key for p in keep(whole, {"a/web"})] == ["a/db", "a/web"]
    named = policy("a/n", {"podSelector": {}, "policyTypes": ["Egress"],
                           "egress": [{"ports": [{"port": "http"}]}]})  # fmt: skip
    whole = inventory(*objects, named)
    assert len(keep(whole, {"a/web"})) == 3


def test_an_egress_named_port_through_an_ip_block_keeps_the_pods_in_the_block() -> None:
    spec = {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "198.18.1.0/24"}}],
                        "ports": [{"port": "http"}]}]}  # fmt: skip
    whole = inventory(
        namespace("a"), namespace("b"),
        pod("a/web", ip="198.18.0.2", node="n1", app="web"),
        pod("b/api", ip="198.18.1.2", node="n2", app="api", ports=[PORTS[0]]),
        pod("b/far", ip="198.18.2.2", node="n2", app="api", ports=[PORTS[0]]),
        policy("a/out", spec),
    )  # fmt: skip
    kept = keep(whole, {"a/web"})
    assert [p.key for p in kept] == ["a/web", "b/api"]
    trimmed = Inventory(namespaces=whole.namespaces, pods=kept, policies=whole.policies)
    web, api = whole.pod_by_key["a/web"].ips[0], whole.pod_by_key["b/api"].ips[0]
    tcp = PROTOCOL_NUMBERS[Protocol.TCP]
    for plan in (plan_of(trimmed, frozenset({"a/web"})), plan_of(whole, frozenset({"a/web"}))):
        assert plan.verdict(web, api, protocol=tcp, port=8080)
        assert not plan.verdict(web, api, protocol=tcp, port=80)
