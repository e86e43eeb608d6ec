"""The scenario corpus run through the vectorised engine.

Why this module exists: the corpus is the shared truth of what NetworkPolicy means in documented
situations. The engine must give each pod-to-pod expectation, and beyond the listed checks its
whole matrix must equal the reference evaluator on every pair of the scenario's pods; the
admin-tier scenarios (``tiers/``) too, on every port class of their policies.
"""

from __future__ import annotations

import pytest
from tests.scenarios.corpus import Scenario, load_scenarios, load_tier_scenarios

from kubefence.api import Protocol
from kubefence.engine import ReachabilityAnalysis, port_classes
from kubefence.semantics import decide

SCENARIOS = load_scenarios()
TIER_SCENARIOS = load_tier_scenarios()


def _has_pod_to_pod_check(scenario: Scenario) -> bool:
    pods = scenario.inventory().pod_by_key
    return any(c.src in pods and c.dst in pods for c in scenario.checks)


# Scenarios whose checks all involve external addresses or Services have no matrix cell to check.
POD_SCENARIOS = [s for s in SCENARIOS if _has_pod_to_pod_check(s)]


def _queries(scenario: Scenario) -> list[tuple[int | str, Protocol]]:
    seen = {(c.port, Protocol(c.protocol.upper())) for c in scenario.checks}
    return sorted(seen, key=lambda q: (str(q[0]), q[1]))


@pytest.mark.parametrize("scenario", POD_SCENARIOS, ids=[s.name for s in POD_SCENARIOS])
def test_engine_gives_every_pod_to_pod_expectation(scenario: Scenario) -> None:
    """Each check between two pods has the expected verdict in the engine's matrix."""
    inventory = scenario.inventory()
    analysis = ReachabilityAnalysis(inventory)
    pods = set(inventory.pod_by_key)
    checked = 0
    for check in scenario.checks:
        if check.src not in pods or check.dst not in pods:
            continue  # external addresses and services are not matrix endpoints
        matrix = analysis.matrix(check.port, Protocol(check.protocol.upper()))
        verdict = matrix.allowed(check.src, check.dst)
        assert verdict == check.expect_allowed, f"{scenario.name}: {check.id}"
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_engine_matrix_equals_reference_on_every_pair(scenario: Scenario) -> None:
    """For every port the scenario asks about, every cell equals ``decide`` for that pair."""
    inventory = scenario.inventory()
    analysis = ReachabilityAnalysis(inventory)
    keys = [p.key for p in inventory.pods]
    for port, protocol in _queries(scenario):
        rows = analysis.matrix(port, protocol).rows()
        for i, src in enumerate(keys):
            for j, dst in enumerate(keys):
                want = decide(inventory, src, dst, port=port, protocol=protocol).allowed
                assert rows[i][j] == ("1" if want else "0"), f"{src}->{dst}:{port}/{protocol}"


@pytest.mark.parametrize("scenario", TIER_SCENARIOS, ids=[s.name for s in TIER_SCENARIOS])
def test_engine_tier_scenarios(scenario: Scenario) -> None:
    """Admin-tier scenarios: each pod-to-pod expectation, then every cell equals ``decide`` on
    the ports the scenario asks about and on the ports its tiers name."""
    inventory = scenario.inventory()
    assert inventory.admin_policies
    analysis = ReachabilityAnalysis(inventory)
    pods = set(inventory.pod_by_key)
    checked = 0
    for check in scenario.checks:
        if check.src in pods and check.dst in pods:
            matrix = analysis.matrix(check.port, Protocol(check.protocol.upper()))
            verdict = matrix.allowed(check.src, check.dst)
            assert verdict == check.expect_allowed, f"{scenario.name}: {check.id}"
            checked += 1
    assert checked > 0
    keys = [p.key for p in inventory.pods]
    queries = set(_queries(scenario)) | {
        (pc.port, pc.protocol) for pc in port_classes([inventory], protocols=list(Protocol))
    }
    for port, protocol in sorted(queries, key=lambda q: (str(q[0]), q[1])):
        rows = analysis.matrix(port, protocol).rows()
        for i, src in enumerate(keys):
            for j, dst in enumerate(keys):
                want = decide(inventory, src, dst, port=port, protocol=protocol).allowed
                assert rows[i][j] == ("1" if want else "0"), f"{src}->{dst}:{port}/{protocol}"
