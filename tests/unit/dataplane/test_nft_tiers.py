"""The admin tiers through the nftables plan: the table decides as the reference evaluator.

Why this module exists: the tier chains (``dataplane/nft/_tiers``) must mirror
``semantics._tiers`` exactly. Here, without root, ``RulesetPlan.verdict`` (what the rendered
table does with a first packet) is compared with ``decide`` for every pod pair, on every port a
scenario names or a pod declares, TCP, UDP and SCTP, and every written check of the tier
scenarios; then on random clusters with random tiers and NetworkPolicies.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.property.strategies import CONTAINER_PORTS, inventories, label_selectors
from tests.scenarios.corpus import Scenario, load_tier_scenarios
from tests.unit.dataplane.test_nft_scenarios import _addresses, _placed, _port

from kubefence.api import (
    AdminAction,
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    IPAddress,
    Protocol,
    Tier,
)
from kubefence.dataplane.nft import PROTOCOL_NUMBERS, plan_ruleset, render_plan, ruleset_update
from kubefence.semantics import decide

SCENARIOS = load_tier_scenarios()
PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


def _compare_all_pairs(inventory: Inventory, ports: set[int]) -> int:
    addresses = {pod.key: pod.ips for pod in inventory.pods}
    plan = plan_ruleset(inventory, addresses=addresses)
    compared = 0
    for src, dst in itertools.product(inventory.pods, repeat=2):
        if src.host_network or dst.host_network:
            continue  # their traffic does not cross the forward hook (S23)
        for a, b in itertools.product(src.ips, dst.ips):
            if a.version != b.version:
                continue
            for port, protocol in itertools.product(sorted(ports), PROTOCOLS):
                got = plan.verdict(a, b, protocol=PROTOCOL_NUMBERS[protocol], port=port)
                want = decide(inventory, str(a), str(b), port=port, protocol=protocol)
                assert got == want.allowed, (
                    f"{src.key} ({a}) -> {dst.key} ({b}) {protocol.value}/{port}: table "
                    f"{'allows' if got else 'denies'}, reference {want.allowed}"
                )
                compared += 1
    return compared


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_tier_scenario_every_pair_as_the_reference(scenario: Scenario) -> None:
    """Every pod pair, port and protocol: the table's verdict is the reference's."""
    inventory = _placed(scenario.inventory())
    ports = {c.port for c in scenario.checks if isinstance(c.port, int)}
    ports |= {p.port for pod in inventory.pods for p in pod.ports}
    assert _compare_all_pairs(inventory, ports | {1}) > 0


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_tier_scenario_checks_through_the_table(scenario: Scenario) -> None:
    """Each written check between addresses (pods or IPs) gets its expected verdict."""
    original = scenario.inventory()
    inventory = _placed(original)
    plan = plan_ruleset(inventory, addresses={pod.key: pod.ips for pod in inventory.pods})
    checked = 0
    for check in scenario.checks:
        protocol = Protocol(check.protocol.upper())
        port = _port(inventory, check, protocol)
        sources, destinations = _addresses(inventory, check.src), _addresses(inventory, check.dst)
        if port is None or sources is None or destinations is None:
            continue
        if any(
            inventory.pod_by_key[e].host_network
            for e in (check.src, check.dst)
            if e in inventory.pod_by_key
        ):
            continue
        for a, b in itertools.product(sources, destinations):
            if a.version != b.version or a == b:
                continue
            got = plan.verdict(a, b, protocol=PROTOCOL_NUMBERS[protocol], port=port)
            want = decide(inventory, str(a), str(b), port=port, protocol=protocol).allowed
            assert got == want, f"{check.id} ({a} -> {b})"
            if all(original.pod_by_key[e].ips for e in (check.src, check.dst) if "/" in e):
                assert got == check.expect_allowed, f"{check.id} ({a} -> {b})"
            checked += 1
    assert checked > 0


def test_no_tiers_text_unchanged_and_tiers_force_a_full_install() -> None:
    """Without tiered policies there are no tier objects; adding one is not an update."""
    (scenario,) = [s for s in SCENARIOS if s.name == "tiers-multi-tenant"]
    inventory = _placed(scenario.inventory())
    addresses = {pod.key: pod.ips for pod in inventory.pods}
    plain = dataclasses.replace(inventory, admin_policies=())
    before = plan_ruleset(plain, addresses=addresses)
    after = plan_ruleset(inventory, addresses=addresses)
    assert before.tiers is None
    text = render_plan(before)
    assert "egress_tiers" not in text
    assert "goto" not in text
    tiered = render_plan(after)
    assert "jump egress_tiers" in tiered
    assert "jump ingress_tiers" in tiered
    assert ruleset_update(before, after) is None
    assert ruleset_update(after, after) == ""


def test_external_addresses_and_networks() -> None:
    """Admin networks peers match external addresses and pod IPs alike (T05)."""
    (scenario,) = [s for s in SCENARIOS if s.name == "tiers-multi-tenant"]
    inventory = _placed(scenario.inventory())
    plan = plan_ruleset(inventory, addresses={pod.key: pod.ips for pod in inventory.pods})
    client = inventory.pod_by_key["red/client"].ips[0]
    for text in ("198.19.0.5", "198.19.255.254", "198.18.200.1", "203.0.113.9"):
        other: IPAddress = ipaddress.ip_address(text)
        for port in (80, 443):
            got = plan.verdict(client, other, protocol=6, port=port)
            want = decide(inventory, str(client), text, port=port).allowed
            assert got == want, (text, port)


_NETWORKS = ("198.18.0.0/26", "198.18.0.32/27", "0.0.0.0/0", "198.19.0.0/16", "fd00::/64")
_NAMES = tuple(sorted({p.name for p in CONTAINER_PORTS if p.name}))


@st.composite
def _admin_peer(draw: st.DrawFn, index: int, *, egress: bool) -> AdminPeer:
    kinds = [AdminPeerKind.NAMESPACES, AdminPeerKind.PODS]
    if egress:
        kinds.append(AdminPeerKind.NETWORKS)
    kind = draw(st.sampled_from(kinds))
    if kind is AdminPeerKind.NETWORKS:
        chosen = draw(st.lists(st.sampled_from(_NETWORKS), min_size=1, max_size=2, unique=True))
        return AdminPeer(index, kind, networks=tuple(ipaddress.ip_network(n) for n in chosen))
    namespaces = draw(label_selectors(for_namespaces=True))
    pods = draw(label_selectors()) if kind is AdminPeerKind.PODS else None
    return AdminPeer(index, kind, namespace_selector=namespaces, pod_selector=pods)


@st.composite
def _admin_port(draw: st.DrawFn, index: int, *, named: bool) -> AdminPort:
    if named and draw(st.booleans()):
        return AdminPort(index, name=draw(st.sampled_from(_NAMES)))
    protocol = draw(st.sampled_from(PROTOCOLS))
    low = draw(st.sampled_from((53, 80, 443, 5000, 8080)))
    high = low if draw(st.booleans()) else low + draw(st.sampled_from((1, 500, 8000)))
    return AdminPort(index, protocol=protocol, low=low, high=high)


@st.composite
def _admin_rule(draw: st.DrawFn, index: int, *, egress: bool) -> AdminRule:
    peers = tuple(draw(_admin_peer(i, egress=egress)) for i in range(draw(st.integers(1, 2))))
    named = not any(p.kind is AdminPeerKind.NETWORKS for p in peers)  # the CRD's CEL rule
    count = draw(st.integers(0, 2))
    return AdminRule(
        index=index,
        action=draw(st.sampled_from(tuple(AdminAction))),
        peers=peers,
        ports=tuple(draw(_admin_port(i, named=named)) for i in range(count)),
    )


@st.composite
def tiered_clusters(draw: st.DrawFn) -> Inventory:
    """A random cluster (``tests.property.strategies``) with 1-4 random tiered policies,
    priorities drawn from a small pool so that ties (ordered by name) happen."""
    inventory = draw(inventories(max_pods=6, max_policies=3))
    policies = []
    for i in range(draw(st.integers(1, 4))):
        pods = draw(st.none() | label_selectors())
        policies.append(
            ClusterNetworkPolicy(
                name=f"cnp{i}",
                kind="ClusterNetworkPolicy",
                tier=draw(st.sampled_from(tuple(Tier))),
                priority=draw(st.sampled_from((0, 5, 5, 10))),
                namespace_selector=draw(label_selectors(for_namespaces=True)),
                pod_selector=pods,
                ingress=tuple(
                    draw(_admin_rule(j, egress=False)) for j in range(draw(st.integers(0, 3)))
                ),
                egress=tuple(
                    draw(_admin_rule(j, egress=True)) for j in range(draw(st.integers(0, 3)))
                ),
            )
        )
    return dataclasses.replace(inventory, admin_policies=tuple(policies))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_clusters())
def test_random_tiers_table_equals_reference(inventory: Inventory) -> None:
    """Random pods, NetworkPolicies and tiered policies: every pair agrees."""
    placed = _placed(inventory)
    ports = {p.port for pod in placed.pods for p in pod.ports} | {80, 443, 53}
    _compare_all_pairs(placed, ports)


def test_flow_log_golden_names_tier_and_rule_on_tier_drops() -> None:
    """``tests/golden/flow-log/tiers-multi-tenant.nft``: every tier Deny step logs its set,
    tier and first rule (``KUBEFENCE_UPDATE_GOLDEN=1`` rewrites it), then counts over the
    limit; Accept and Pass steps log nothing of their own."""
    import os
    from pathlib import Path

    from kubefence.dataplane.nft import FlowLog

    (scenario,) = [s for s in SCENARIOS if s.name == "tiers-multi-tenant"]
    inventory = _placed(scenario.inventory())
    plan = plan_ruleset(
        inventory, addresses={pod.key: pod.ips for pod in inventory.pods}, flow_log=FlowLog()
    )
    text = render_plan(plan)
    golden = Path(__file__).resolve().parents[2] / "golden" / "flow-log" / "tiers-multi-tenant.nft"
    if os.environ.get("KUBEFENCE_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert (
        'log prefix "kf deny ad_eg_s2 Admin deny-management-network egress[0]" group 17 drop'
    ) in text
    assert 'log prefix "kf deny bl_in_s2 Baseline tenant-isolation ingress[1]"' in text
    assert text.count('counter name "flow_over" drop') == text.count('log prefix "kf deny')


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tiered_clusters(), min_size=2, max_size=4))
def test_memoised_planning_gives_the_same_tier_plan(clusters: list[Inventory]) -> None:
    """One ``MemoisedRenderer`` across a sequence (tier entries reused) plans what a fresh
    ``plan_ruleset`` plans, text included; also when only a tiered policy changes."""
    from kubefence.dataplane.nft import MemoisedRenderer

    renderer = MemoisedRenderer()
    placed = [_placed(c) for c in clusters]
    # the same pods with the next cluster's tiers: the pod side stays, the tiers change
    sequence = [
        *placed,
        *(dataclasses.replace(placed[0], admin_policies=c.admin_policies) for c in placed[1:]),
    ]
    for inventory in sequence:
        addresses = {pod.key: pod.ips for pod in inventory.pods}
        memoised = renderer.plan(inventory, addresses=addresses)
        fresh = plan_ruleset(inventory, addresses=addresses)
        assert memoised == fresh
        assert render_plan(memoised) == render_plan(fresh)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tiered_clusters(), min_size=2, max_size=4), st.data())
def test_reused_class_drafts_plan_what_a_fresh_plan_does(
    clusters: list[Inventory], data: st.DataObject
) -> None:
    """The NetworkPolicy class drafts of the previous call are reused while the pods and the
    namespaced policies stay (``PlanMemo.class_drafts``): one memo across the first cluster
    with each cluster's tiers, with a changing ``local`` (an agent's own pods) and now and then
    a namespaced policy dropped, plans exactly what a fresh ``plan_ruleset`` does."""
    from kubefence.dataplane.nft import PlanMemo

    memo = PlanMemo()
    first = _placed(clusters[0])
    addresses = {pod.key: pod.ips for pod in first.pods}
    keys = sorted(addresses)
    for cluster in [*clusters, *clusters]:
        inventory = dataclasses.replace(first, admin_policies=_placed(cluster).admin_policies)
        if first.policies and data.draw(st.booleans(), label="drop a policy"):
            inventory = dataclasses.replace(inventory, policies=inventory.policies[1:])
        local = data.draw(st.none() | st.sets(st.sampled_from(keys)) if keys else st.none())
        memoised = plan_ruleset(inventory, addresses=addresses, memo=memo, local=local)
        fresh = plan_ruleset(inventory, addresses=addresses, local=local)
        assert memoised == fresh
        assert render_plan(memoised) == render_plan(fresh)


def test_a_tier_change_alone_does_not_draft_the_classes_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the tiered policies changed: the NetworkPolicy classes come from the memo (no
    ``draft_classes`` call), and the plan is still the fresh one; a namespaced policy change
    drafts them again."""
    import kubefence.dataplane.nft._plan as plan_module
    from kubefence.dataplane.nft import PlanMemo

    (scenario,) = [s for s in SCENARIOS if s.name == "tiers-multi-tenant"]
    inventory = _placed(scenario.inventory())
    assert inventory.policies
    assert len(inventory.admin_policies) > 1
    addresses = {pod.key: pod.ips for pod in inventory.pods}
    memo = PlanMemo()
    plan_ruleset(inventory, addresses=addresses, memo=memo)
    drafted: list[object] = []
    original = plan_module.draft_classes

    def counting(*args: object, **kwargs: object) -> object:
        drafted.append(args[3])
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(plan_module, "draft_classes", counting)
    fewer = dataclasses.replace(inventory, admin_policies=inventory.admin_policies[1:])
    memoised = plan_ruleset(fewer, addresses=addresses, memo=memo)
    assert drafted == []
    assert memoised == plan_ruleset(fewer, addresses=addresses)
    drafted.clear()
    other = dataclasses.replace(fewer, policies=fewer.policies[1:])
    memoised = plan_ruleset(other, addresses=addresses, memo=memo)
    assert len(drafted) == 2  # the two directions
    assert memoised == plan_ruleset(other, addresses=addresses)
