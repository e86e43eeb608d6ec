"""Every expectation of the scenario corpus, checked against the reference evaluator.

Why this module exists: the corpus (``tests/scenarios/*.yaml``) is the shared truth of what
Kubernetes NetworkPolicy means in documented situations; this runs each check as its own test
with a readable id (``scenario-name:from->to:port/proto``).
"""

from __future__ import annotations

import pytest
from tests.scenarios.corpus import Check, Scenario, all_checks, load_scenarios

from kubefence.semantics import decide

SCENARIOS = load_scenarios()
CASES = all_checks(SCENARIOS)


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
