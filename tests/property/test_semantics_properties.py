"""Algebraic laws of NetworkPolicy that the reference evaluator must obey on random clusters.

Why this module exists: the scenario corpus checks chosen situations; these laws check the
evaluator on clusters nobody wrote by hand (every feature, see ``strategies``): no policy means
no isolation, policies only ever add once a pod is isolated, OR is never narrower than AND, and
no order of objects changes an answer.
"""

from __future__ import annotations

import dataclasses
import json
import random

from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import Query, inventories, network_policies, queries
from tests.scenarios.corpus import Scenario, load_scenarios

from kubefence.api import Inventory, NetworkPolicy, Peer, Rule
from kubefence.cli._render_decision import decision_to_json, render_text
from kubefence.semantics import (
    Decision,
    Direction,
    Reason,
    SideDecision,
    compile_policy,
    decide,
    selects_pod,
)
from kubefence.sources.objects import inventory_from_objects

SCENARIOS = load_scenarios()


def _ask(inventory: Inventory, query: Query) -> Decision:
    return decide(inventory, query.src, query.dst, port=query.port, protocol=query.protocol)


@given(st.data())
def test_removing_every_policy_allows_everything(data: st.DataObject) -> None:
    """Without policies nothing is isolated (S03): every connection is allowed unless the asked
    port name does not exist at the destination (S21)."""
    inventory = dataclasses.replace(data.draw(inventories()), policies=())
    query = data.draw(queries(inventory))
    decision = _ask(inventory, query)
    if decision.reason is Reason.UNRESOLVED_PORT:
        assert isinstance(query.port, str)
    else:
        assert decision.allowed, decision


def _side(decision: Decision, direction: Direction) -> SideDecision | None:
    return decision.egress if direction is Direction.EGRESS else decision.ingress


@given(st.data())
def test_an_added_policy_only_isolates_or_adds(data: st.DataObject) -> None:
    """Adding a policy (S03, S04): a side it does not select is unchanged; a side that was
    already isolated can only gain allowances; a side it newly isolates can only lose them."""
    before_inventory = data.draw(inventories(max_policies=3))
    namespace = data.draw(st.sampled_from([n.name for n in before_inventory.namespaces]))
    added = data.draw(network_policies(namespace=namespace, name="zz-added"))
    after_inventory = dataclasses.replace(
        before_inventory, policies=(*before_inventory.policies, added)
    )
    compiled = compile_policy(added)
    query = data.draw(queries(before_inventory))
    before, after = _ask(before_inventory, query), _ask(after_inventory, query)
    assert before.reason is after.reason  # special reasons never depend on policies
    for direction in Direction:
        old, new = _side(before, direction), _side(after, direction)
        if old is None or new is None or not old.applicable:
            continue
        pod = after_inventory.pod_by_key[old.endpoint]
        selected = compiled.rules(direction) is not None and selects_pod(compiled, pod)
        if not selected:
            assert (new.isolated, new.allowed) == (old.isolated, old.allowed)
        elif old.isolated:
            assert new.allowed or not old.allowed  # only adds
        else:
            assert new.isolated
            assert old.allowed  # was open; may now be closed


def _split_and_peers(policy: NetworkPolicy) -> NetworkPolicy:
    def split(rule: Rule) -> Rule:
        peers: list[Peer] = []
        for peer in rule.peers:
            if peer.pod_selector is not None and peer.namespace_selector is not None:
                peers.append(Peer(namespace_selector=peer.namespace_selector))
                peers.append(Peer(pod_selector=peer.pod_selector))
            else:
                peers.append(peer)
        return Rule(peers=tuple(peers), ports=rule.ports)

    return dataclasses.replace(
        policy,
        ingress=tuple(split(r) for r in policy.ingress),
        egress=tuple(split(r) for r in policy.egress),
    )


@given(st.data())
def test_splitting_an_and_peer_into_or_peers_never_allows_less(data: st.DataObject) -> None:
    """S13: a peer with both selectors (AND) admits a subset of what the two selectors admit
    as separate peers (OR), so splitting never turns an allowed connection into a denied one."""
    inventory = data.draw(inventories())
    split = dataclasses.replace(
        inventory, policies=tuple(_split_and_peers(p) for p in inventory.policies)
    )
    query = data.draw(queries(inventory))
    if _ask(inventory, query).allowed:
        assert _ask(split, query).allowed


def _verdict(decision: Decision) -> tuple[bool, Reason, int | None]:
    return decision.allowed, decision.reason, decision.port


@given(st.data(), st.randoms(use_true_random=False))
def test_order_of_policies_and_objects_does_not_matter(
    data: st.DataObject, rng: random.Random
) -> None:
    """S04: shuffling policies, pods and namespaces of an inventory changes no verdict."""
    inventory = data.draw(inventories())
    shuffled = Inventory(
        namespaces=tuple(rng.sample(inventory.namespaces, len(inventory.namespaces))),
        pods=tuple(rng.sample(inventory.pods, len(inventory.pods))),
        policies=tuple(rng.sample(inventory.policies, len(inventory.policies))),
    )
    for _ in range(3):
        query = data.draw(queries(inventory))
        assert _verdict(_ask(inventory, query)) == _verdict(_ask(shuffled, query))


@given(
    st.sampled_from(SCENARIOS),
    st.randoms(use_true_random=False),
)
def test_order_of_manifests_does_not_matter(scenario: Scenario, rng: random.Random) -> None:
    """Loading a scenario's manifests in any order gives the same verdict for every check."""
    objects = list(scenario.objects)
    rng.shuffle(objects)
    shuffled = inventory_from_objects(objects)
    for check in scenario.checks:
        expected = decide(
            scenario.inventory(), check.src, check.dst, port=check.port, protocol=check.protocol
        )
        got = decide(shuffled, check.src, check.dst, port=check.port, protocol=check.protocol)
        assert _verdict(got) == _verdict(expected)


@given(st.data())
def test_every_decision_is_consistent_and_renders(data: st.DataObject) -> None:
    """The verdict is egress AND ingress (S05); an isolated side is allowed exactly when it
    names an admitting rule, and denied exactly when every isolating policy has a miss; every
    decision renders as text and as JSON."""
    inventory = data.draw(inventories())
    decision = _ask(inventory, data.draw(queries(inventory)))
    if decision.egress is not None and decision.ingress is not None:
        assert decision.allowed == (decision.egress.allowed and decision.ingress.allowed)
        for side in (decision.egress, decision.ingress):
            if not side.isolated:
                assert side.allowed
                assert (side.admitted_by, side.misses) == ((), ())
            elif side.allowed:
                assert side.admitted_by
                assert side.misses == ()
            else:
                assert side.admitted_by == ()
                assert [m.policy for m in side.misses] == list(side.isolating)
    text = render_text(decision)
    assert text.startswith("ALLOWED" if decision.allowed else "DENIED")
    assert json.loads(json.dumps(decision_to_json(decision)))["allowed"] is decision.allowed
