"""Rule counters for the agent's per-policy metrics: an option, off by default.

With ``counters`` every verdict rule of a class chain (the allowing lookup, the drop) and of a
tier chain (each step's lookup) carries one anonymous ``counter``; without it the text is byte
for byte the default golden. Switching it is a whole-table install; updates keep the counters
on the chains they re-render. The kernel accepts the text: tests/netns/test_agent_flows.py
installs it through the agent.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from kubefence.dataplane.nft import FlowLog, plan_ruleset, render_plan, ruleset_update

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
sys.path.insert(0, str(GOLDEN))
from test_golden import load_case, node_addresses, sandbox_addresses  # noqa: E402

CASE = "walkthrough-5-default-deny"


def _chains(text: str) -> dict[str, list[str]]:
    found = {}
    for chunk in text.split("\tchain ")[1:]:
        name = chunk.split()[0]
        found[name] = [line.strip() for line in chunk.split("\n\t}")[0].splitlines()[1:]]
    return found


def test_without_counters_the_text_is_the_golden() -> None:
    inventory = load_case(CASE)
    plan = plan_ruleset(
        inventory,
        addresses=sandbox_addresses(inventory),
        node_addresses=node_addresses(inventory),
    )
    assert not plan.counters
    assert render_plan(plan) == (GOLDEN / f"{CASE}.nft").read_text(encoding="utf-8")


def test_every_class_verdict_rule_counts_once() -> None:
    inventory = load_case(CASE)
    for flow_log in (None, FlowLog()):
        plan = plan_ruleset(
            inventory,
            addresses=sandbox_addresses(inventory),
            flow_log=flow_log,
            counters=True,
        )
        chains = {n: b for n, b in _chains(render_plan(plan)).items() if n[:4] in ("eg_c", "in_c")}
        assert chains
        for name, body in chains.items():
            rules = [line for line in body if not line.startswith("comment")]
            lookups = [r for r in rules if f"@{name} " in r]
            assert all(r.endswith("counter return") for r in lookups), rules
            drops = [r for r in rules if r.endswith("drop") and "flow_over" not in r]
            assert len(drops) == 1, rules
            assert drops[0].startswith("counter "), rules
            # the over-limit rule has no anonymous counter: a drop is counted once
            assert sum(r.count("counter") for r in rules) == len(lookups) + 1 + (
                flow_log is not None
            )


def test_switching_counters_installs_the_table_and_updates_keep_them() -> None:
    inventory = load_case(CASE)
    smaller = load_case("walkthrough-3-own-namespace")
    plain = plan_ruleset(inventory, addresses=sandbox_addresses(inventory))
    counted = plan_ruleset(inventory, addresses=sandbox_addresses(inventory), counters=True)
    assert dataclasses.replace(counted, counters=False) == plain
    assert ruleset_update(plain, counted) is None
    assert ruleset_update(counted, plain) is None
    after = plan_ruleset(smaller, addresses=sandbox_addresses(smaller), counters=True)
    update = ruleset_update(counted, after)
    assert update is not None
    for line in update.splitlines():
        stripped = line.strip()
        if (stripped.endswith(("return", "drop")) and "@" in stripped) or stripped == "drop":
            assert "counter" in stripped, line


def test_every_tier_step_counts_once() -> None:
    """With counters, every claim of a class verdict map goes to its step's own chain, whose
    first rule is the step's one anonymous counter (then the flow log, then the verdict)."""
    from tests.scenarios.corpus import load_tier_scenarios
    from tests.unit.dataplane.test_nft_scenarios import _placed

    (scenario,) = [s for s in load_tier_scenarios() if s.name == "tiers-multi-tenant"]
    inventory = _placed(scenario.inventory())
    addresses = {pod.key: pod.ips for pod in inventory.pods}
    for flow_log in (None, FlowLog()):
        plan = plan_ruleset(inventory, addresses=addresses, flow_log=flow_log, counters=True)
        assert plan.tiers is not None
        chains = _chains(render_plan(plan))
        steps = {s.name: s for g in plan.tiers.groups for s in g.sets}
        used = {label for g in plan.tiers.groups for c in g.classes for _, label in c.verdicts}
        reachable = {
            s.name for g in plan.tiers.groups for c in g.classes for s in c.steps if s.elements
        }
        assert used
        assert used <= reachable <= steps.keys()
        actions = set()
        for name in used:
            body = [rule for rule in chains[name] if rule]
            assert body[0] == "counter", body
            assert sum("counter" in r and "flow_over" not in r for r in body) == 1, body
            assert body[-1].endswith(("drop", "return")) or body[-1].startswith("goto "), body
            actions.add(steps[name].action)
        assert {"Accept", "Deny"} <= actions
