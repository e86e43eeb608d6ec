"""The per-policy metrics from rule counters: parsing ``nft -j`` listings, attribution, totals.

The kernel is replaced by listings written here in the shape ``nft -j -t list table`` prints
(checked against nft 1.0.6); tests/netns/test_agent_flows.py reads a real table.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from tests.builders import inventory, namespace, pod, policy

from kubefence.agent._counters import Label, PolicyCounters, attribute, parse_listing
from kubefence.dataplane.nft import RulesetPlan, plan_ruleset

INVENTORY = inventory(
    namespace("a"),
    pod("a/web", ip="198.18.1.2", node="n1", app="web", ports=[{"containerPort": 80}]),
    pod("a/db", ip="198.18.1.3", node="n1", app="db"),
    policy("a/deny-all", {"podSelector": {}, "policyTypes": ["Ingress"]}),
    policy(
        "a/allow-web",
        {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": 80}]}]},
    ),
)


def _plan() -> RulesetPlan:
    return plan_ruleset(INVENTORY, addresses={p.key: p.ips for p in INVENTORY.pods}, counters=True)


def _web_chain(plan: RulesetPlan) -> str:
    (cls,) = [c for c in plan.ingress if "a/web" in c.pods]
    return cls.chain


def _listing(table: int, rules: list[tuple[str, int, str, int]], over: int = 0) -> str:
    """(chain, handle, "allow"/"deny", packets) -> the JSON nft prints."""
    items: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "kubefence", "handle": table}},
        {"counter": {"name": "flow_over", "table": "kubefence", "handle": 2, "packets": over}},
    ]
    for chain, handle, kind, packets in rules:
        expressions: list[dict[str, Any]] = []
        if kind == "allow":
            expressions.append({"match": {"op": "==", "left": {}, "right": f"@{chain}"}})
        expressions.append({"counter": {"packets": packets, "bytes": 60 * packets}})
        if kind == "allow":
            expressions.append({"return": None})
        else:
            expressions += [{"limit": {"rate": 200}}, {"log": {"group": 17}}, {"drop": None}]
        items.append({"rule": {"chain": chain, "handle": handle, "expr": expressions}})
    items.append({"rule": {"chain": "x", "handle": 99, "expr": [{"counter": "flow_over"}]}})
    return json.dumps({"nftables": items})


class Fake(PolicyCounters):
    def __init__(self, plan: RulesetPlan) -> None:
        super().__init__(netns=None, plan=lambda: plan, max_age=0.0)
        self.text = ""

    def _listing(self) -> str:
        return self.text


def _label(name: str, verdict: str) -> Label:
    return Label("NetworkPolicy", "a", name, direction="ingress", verdict=verdict)


def test_parse_keeps_anonymous_counters_lookups_and_the_over_limit_counter() -> None:
    rules, named = parse_listing(_listing(7, [("in_c1", 4, "allow", 3), ("in_c1", 5, "deny", 2)]))
    assert [(r.key, r.lookup, r.verdict, r.packets) for r in rules] == [
        ((7, 4), "in_c1", "return", 3),
        ((7, 5), None, "drop", 2),
    ]
    assert named == {(7, 2): 0}


def test_denied_counts_every_isolating_policy_allowed_only_those_with_rules() -> None:
    plan = _plan()
    chain = _web_chain(plan)
    rules, _ = parse_listing(_listing(1, [(chain, 4, "allow", 1), (chain, 5, "deny", 1)]))
    allowed, denied = (attribute(plan, r) for r in rules)
    assert allowed == (_label("allow-web", "allowed"),)
    assert set(denied) == {_label("deny-all", "denied"), _label("allow-web", "denied")}
    # a rule of a chain the plan does not have is nobody's
    (stray,) = parse_listing(_listing(1, [("in_c99", 4, "allow", 1)]))[0]
    assert attribute(plan, stray) == ()


def test_totals_grow_by_what_each_rule_counted_and_survive_replaced_tables() -> None:
    plan = _plan()
    chain = _web_chain(plan)
    fake = Fake(plan)
    fake.text = _listing(1, [(chain, 4, "allow", 3), (chain, 5, "deny", 2)], over=1)
    fake.refresh()
    assert fake.totals == {
        _label("allow-web", "allowed"): 3,
        _label("deny-all", "denied"): 2,
        _label("allow-web", "denied"): 2,
    }
    fake.text = _listing(1, [(chain, 4, "allow", 5), (chain, 5, "deny", 2)], over=4)
    fake.refresh()
    assert fake.totals[_label("allow-web", "allowed")] == 5
    assert fake.totals[_label("deny-all", "denied")] == 2
    # a whole-table install: new table handle, counters from 0 again; nothing goes down
    fake.text = _listing(2, [(chain, 4, "allow", 1), (chain, 5, "deny", 0)], over=0)
    fake.refresh()
    assert fake.totals[_label("allow-web", "allowed")] == 6
    assert fake.totals[_label("deny-all", "denied")] == 2
    assert fake.over_limit == 4


def test_metrics_text_and_no_kernel_read_when_registered() -> None:
    plan = _plan()
    chain = _web_chain(plan)
    fake = Fake(plan)
    registry = CollectorRegistry()
    registry.register(fake)  # describe(): no listing needed
    fake.text = _listing(1, [(chain, 4, "allow", 2), (chain, 5, "deny", 1)])
    text = generate_latest(registry).decode()
    assert (
        'kubefence_policy_connections_total{direction="ingress",namespace="a",'
        'policy="allow-web",tier="NetworkPolicy",verdict="allowed"} 2.0'
    ) in text
    assert (
        'kubefence_policy_connections_total{direction="ingress",namespace="a",'
        'policy="deny-all",tier="NetworkPolicy",verdict="denied"} 1.0'
    ) in text
    assert "kubefence_agent_flow_log_not_logged_total 0.0" in text


def test_nothing_is_read_before_the_agent_installed_a_plan() -> None:
    counters = PolicyCounters(netns="no-such-namespace", plan=lambda: None)
    counters.refresh()  # would fail if it ran nft in a namespace that does not exist
    assert counters.totals == {}


def test_tier_steps_count_for_their_own_policy_by_action() -> None:
    from tests.scenarios.corpus import load_tier_scenarios
    from tests.unit.dataplane.test_nft_scenarios import _placed

    from kubefence.agent._counters import CountedRule

    (scenario,) = [s for s in load_tier_scenarios() if s.name == "tiers-multi-tenant"]
    inventory = _placed(scenario.inventory())
    plan = plan_ruleset(
        inventory, addresses={pod.key: pod.ips for pod in inventory.pods}, counters=True
    )
    assert plan.tiers is not None
    seen = set()
    for group in plan.tiers.groups:
        for cls in group.classes:
            for step in cls.steps:
                if not step.elements:
                    continue
                rule = CountedRule((1, 1), step.name, None, "", 1)  # its chain's first rule
                labels = attribute(plan, rule)
                names = {r.split(" ", 1)[0] for r in step.rules}
                assert {label.policy for label in labels} == names
                verdict = {"Accept": "allowed", "Deny": "denied", "Pass": "passed"}[step.action]
                assert {(x.tier, x.namespace, x.verdict) for x in labels} == {
                    (group.tier, "", verdict)
                }
                seen.add((group.tier, verdict))
                # the class chain's lookup itself is no policy's count
                assert attribute(plan, CountedRule((1, 2), cls.chain, cls.verdict_map, "", 1)) == ()
    assert ("Admin", "denied") in seen
    assert ("Baseline", "allowed") in seen
