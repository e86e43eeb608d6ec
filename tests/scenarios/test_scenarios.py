"""Every expectation of the scenario corpus, checked against the reference evaluator.

Why this module exists: the corpus (``tests/scenarios/*.yaml``) is the shared truth of what
Kubernetes NetworkPolicy means in documented situations; this runs each check as its own test
with a readable id (``scenario-name:from->to:port/proto``).
"""

from __future__ import annotations

import pytest
from tests.scenarios.corpus import (
    Check,
    Scenario,
    all_checks,
    load_scenarios,
    load_tier_scenarios,
)

from kubefence.semantics import decide

SCENARIOS = load_scenarios()
CASES = all_checks(SCENARIOS)
TIER_SCENARIOS = load_tier_scenarios()
TIER_CASES = all_checks(TIER_SCENARIOS)


def test_corpus_is_large_and_uniquely_named() -> None:
    """The corpus holds at least 40 scenarios, each with a description, source and checks."""
    assert len(SCENARIOS) >= 40
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)
    assert all(s.description and s.source and s.checks for s in SCENARIOS)


def test_corpus_covers_allow_and_deny() -> None:
    """Expectations go both ways, so a constant evaluator cannot pass the corpus."""
    verdicts = {c.expect_allowed for _, c in CASES}
    assert verdicts == {True, False}


@pytest.mark.parametrize(("scenario", "check"), CASES, ids=[f"{s.name}:{c.id}" for s, c in CASES])
def test_scenario(scenario: Scenario, check: Check) -> None:
    """``decide`` gives the verdict the scenario expects for this connection."""
    decision = decide(
        scenario.inventory(), check.src, check.dst, port=check.port, protocol=check.protocol
    )
    verdict = "allow" if decision.allowed else "deny"
    expected = "allow" if check.expect_allowed else "deny"
    assert verdict == expected, f"{scenario.name}: {check.id} is {verdict}: {decision}"


def test_tier_corpus_covers_every_action_and_both_verdicts() -> None:
    """The tier scenarios are uniquely named, distinct from the others, and use every action."""
    names = {s.name for s in TIER_SCENARIOS}
    assert len(TIER_SCENARIOS) >= 4
    assert len(names) == len(TIER_SCENARIOS)
    assert not names & {s.name for s in SCENARIOS}
    assert {c.expect_allowed for _, c in TIER_CASES} == {True, False}
    actions = {
        rule.action
        for scenario in TIER_SCENARIOS
        for policy in scenario.inventory().admin_policies
        for rule in (*policy.ingress, *policy.egress)
    }
    assert {a.value for a in actions} == {"Accept", "Deny", "Pass"}


@pytest.mark.parametrize(
    ("scenario", "check"), TIER_CASES, ids=[f"{s.name}:{c.id}" for s, c in TIER_CASES]
)
def test_tier_scenario(scenario: Scenario, check: Check) -> None:
    """``decide`` with admin tiers gives the verdict the scenario expects."""
    decision = decide(
        scenario.inventory(), check.src, check.dst, port=check.port, protocol=check.protocol
    )
    verdict = "allow" if decision.allowed else "deny"
    expected = "allow" if check.expect_allowed else "deny"
    assert verdict == expected, f"{scenario.name}: {check.id} is {verdict}: {decision}"
