"""The admin-tier scenarios replayed on real packets: every pod pair, TCP, UDP, SCTP, as decide.

The tier chains of the nftables table (``dataplane/nft/_tiers``) against the reference
evaluator's tiers (``semantics/_tiers``), on a real kernel. Each scenario runs in its own
sandbox. For every port a check or a pod names, on TCP, UDP and SCTP (raw INIT packets), over
IPv4 and IPv6, every ordered pair of pods is probed concurrently and compared with the
reference evaluator asked about the addresses the packets used (pods carry their sandbox
addresses). A scenario check whose verdict does not depend on those addresses must also match
its written expectation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.netns.conftest import SandboxMaker
from tests.netns.test_scenarios_netns import replay_on_real_packets
from tests.scenarios.corpus import Scenario, load_tier_scenarios

pytestmark = pytest.mark.netns

SCENARIOS = load_tier_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_t01_tier_scenario_replayed_on_real_packets(
    make_sandbox: SandboxMaker, scenario: Scenario
) -> None:
    """Real TCP, UDP and SCTP packets between every pod pair agree with the reference."""
    sandbox = replay_on_real_packets(make_sandbox, scenario)
    assert sandbox.inventory.admin_policies == scenario.inventory().admin_policies
    assert sandbox.inventory.admin_policies


def test_sandbox_commands_enforce_and_verify_tiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kubefence sandbox up`` takes ClusterNetworkPolicies (nftables enforces them) and
    ``sandbox verify`` holds every probed pair to the engine's tiered prediction."""
    from kubefence.cli.main import main

    scenario = yaml.safe_load(
        (Path(__file__).parents[1] / "scenarios" / "tiers" / "tiers-multi-tenant.yaml").read_text()
    )
    manifests = tmp_path / "multi-tenant.yaml"
    manifests.write_text(scenario["manifests"])
    name = "tiercli"
    try:
        assert main(["sandbox", "up", "--name", name, "-f", str(manifests)]) == 0
        assert main(["sandbox", "verify", "--name", name]) == 0
        out = capsys.readouterr().out
        assert "0 mismatch, 0 unprobed" in out
    finally:
        main(["sandbox", "down", "--name", name])
