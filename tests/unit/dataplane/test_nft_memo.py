"""A ``PlanMemo`` carried across calls never changes the ruleset, and does save the work.

The sandbox re-renders its whole table on every ``apply`` with one memo for its life; these
tests hold the memoised text to a fresh render after every kind of change (policies, pod labels,
addresses, namespaces, settings) and check that an unchanged policy is not compiled again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.dataplane.test_nft_plan import (
    INGRESS,
    _clusters,
    addresses_of,
    namespace,
    pod,
    policy,
    sel,
)

import kubefence.dataplane.nft._memo as memo_module
from kubefence.api import ContainerPort, Inventory, Peer, PolicyPort, Protocol, Rule
from kubefence.dataplane.nft import MemoisedRenderer, PlanMemo, render_plan, render_ruleset
from kubefence.dataplane.nft._plan import plan_ruleset
from kubefence.semantics import DEFAULT_SETTINGS, Settings

_SETTINGS = st.sampled_from(
    [DEFAULT_SETTINGS, Settings(ipblock_matches_pods=False), Settings(allow_from_node=False)]
)


def _fresh(inventory: Inventory, settings_: Settings) -> str:
    return render_ruleset(inventory, addresses=addresses_of(inventory), settings=settings_)


def _base(*, web_label: str = "web", extra_policy: bool = False) -> Inventory:
    rules = [
        Rule(peers=(Peer(pod_selector=sel(app="db")),), ports=(PolicyPort(Protocol.TCP, "http"),))
    ]
    policies = [
        policy("a/allow-db", sel(app=web_label), INGRESS, ingress=rules),
        policy("a/deny", sel(app="db"), INGRESS),
    ]
    if extra_policy:
        policies.append(policy("b/other", sel(), INGRESS, ingress=[Rule()]))
    return Inventory.of(
        namespaces=[namespace("a"), namespace("b")],
        pods=[
            pod(
                "a/w",
                "198.18.0.1",
                labels={"app": "web"},
                ports=[ContainerPort(80, Protocol.TCP, "http")],
            ),
            pod("a/d", "198.18.0.2", "fd00::2", labels={"app": "db"}),
            pod("b/x", "198.18.0.3", labels={"app": "web"}),
        ],
        policies=policies,
    )


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(st.lists(st.tuples(_clusters(), _SETTINGS), min_size=2, max_size=4))
def test_s04_s21_memoised_text_equals_fresh_text_over_any_sequence(
    steps: Sequence[tuple[Inventory, Settings]],
) -> None:
    """Rendering a sequence of random clusters with one memo gives, at every step, exactly the
    text a fresh render gives (the memo only ever reuses what its keys pin down)."""
    renderer = MemoisedRenderer()
    for inventory, settings_ in steps:
        memoised = renderer(inventory, addresses=addresses_of(inventory), settings=settings_)
        assert memoised == _fresh(inventory, settings_)


@pytest.mark.parametrize(
    "second",
    [
        _base(web_label="db"),  # one policy's podSelector changed
        _base(extra_policy=True),  # a policy added
        Inventory.of(  # a pod's labels changed: selection must be recomputed
            namespaces=_base().namespaces,
            pods=[
                pod("a/w", "198.18.0.1", labels={"app": "db"}),
                *_base().pods[1:],
            ],
            policies=_base().policies,
        ),
        Inventory.of(  # a namespace's labels changed
            namespaces=[namespace("a", team="red"), namespace("b")],
            pods=_base().pods,
            policies=_base().policies,
        ),
    ],
    ids=["policy-changed", "policy-added", "pod-labels", "namespace-labels"],
)
def test_s01_s21_memo_follows_each_kind_of_change(second: Inventory) -> None:
    """After a first render, a change of policy, pod labels or namespace labels renders with
    the memo exactly as without it, and going back renders the first text again."""
    first = _base()
    renderer = MemoisedRenderer()
    assert renderer(first, addresses=addresses_of(first)) == _fresh(first, DEFAULT_SETTINGS)
    assert renderer(second, addresses=addresses_of(second)) == _fresh(second, DEFAULT_SETTINGS)
    assert renderer(first, addresses=addresses_of(first)) == _fresh(first, DEFAULT_SETTINGS)


def test_memo_follows_changed_addresses() -> None:
    """The same inventory with other sandbox addresses renders the new addresses, not the
    remembered ones."""
    inventory = _base()
    memo = PlanMemo()
    before = addresses_of(inventory)
    after = {
        key: (ipaddress.ip_address(f"198.18.1.{n}"),) for n, key in enumerate(sorted(before), 1)
    }
    render_plan(plan_ruleset(inventory, addresses=before, memo=memo))
    memoised = render_plan(plan_ruleset(inventory, addresses=after, memo=memo))
    assert memoised == render_ruleset(inventory, addresses=after)
    assert "198.18.1.1" in memoised


def test_memo_compiles_only_the_changed_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy equal to one of the previous call (even as another object) is not compiled
    again: after one policy changes, exactly one compilation happens."""
    first, second = _base(), _base(web_label="db")  # separate objects, one policy differs
    memo = PlanMemo()
    plan_ruleset(first, addresses=addresses_of(first), memo=memo)
    compiled: list[str] = []
    original = memo_module.compile_policy

    def counting(policy_: memo_module.NetworkPolicy) -> memo_module.CompiledPolicy:
        compiled.append(policy_.key)
        return original(policy_)

    monkeypatch.setattr(memo_module, "compile_policy", counting)
    plan_ruleset(second, addresses=addresses_of(second), memo=memo)
    assert compiled == ["a/allow-db"]


def test_class_blocks_reused_by_render_follow_flow_log_and_counters() -> None:
    """The planner's memo hands the same ``PodClass`` objects on while nothing they are made of
    changed, and ``render_plan`` reuses their rendered blocks; turning the flow log or the
    counters on or off (the same classes) still renders what a fresh plan does."""
    from kubefence.dataplane.nft import FlowLog

    inventory = _base(extra_policy=True)
    addresses = addresses_of(inventory)
    memo = PlanMemo()
    texts = []
    for flow_log, counters in [(None, False), (FlowLog(), False), (None, True), (None, False)]:
        memoised = plan_ruleset(
            inventory, addresses=addresses, memo=memo, flow_log=flow_log, counters=counters
        )
        fresh = plan_ruleset(inventory, addresses=addresses, flow_log=flow_log, counters=counters)
        assert render_plan(memoised) == render_plan(fresh)
        texts.append(render_plan(memoised))
    assert len(set(texts)) == 3
    assert texts[0] == texts[3]
