"""The scenario corpus replayed on real packets: every pod pair, TCP, UDP, SCTP, against decide.

Each scenario runs in its own sandbox. For every port a check or a pod names, on TCP, UDP and
SCTP (raw INIT packets), over IPv4 and IPv6, every ordered pair of pods is probed concurrently
and compared with the reference evaluator asked about the addresses the packets used (pods
carry their sandbox addresses). A scenario check whose verdict does not depend on those
addresses must also match its written expectation.
"""

from __future__ import annotations

import pytest
from tests.netns.conftest import SandboxMaker, confirmed
from tests.scenarios.corpus import Scenario, load_scenarios

from kubefence.api import IPAddress, Protocol
from kubefence.dataplane.netns import Sandbox
from kubefence.semantics import decide

pytestmark = pytest.mark.netns

SCENARIOS = load_scenarios()


def _address(sandbox: Sandbox, key: str, family: int) -> IPAddress:
    slot = sandbox.state.pods[key]
    return slot.ipv4 if family == 4 else slot.ipv6


def replay_on_real_packets(make_sandbox: SandboxMaker, scenario: Scenario) -> Sandbox:
    """Probe every pod pair of ``scenario`` on TCP, UDP and SCTP, IPv4 and IPv6, and assert each
    result equals ``decide`` (and each check its written expectation); the sandbox is returned
    for further assertions."""
    original = scenario.inventory()
    sandbox = make_sandbox(original)
    inventory = sandbox.inventory
    ports: set[int | str] = {c.port for c in scenario.checks}
    ports |= {p.port for pod in inventory.pods for p in pod.ports}
    specs = [
        (port, protocol)
        for port in sorted(ports, key=str)
        for protocol in (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
    ]
    compared = 0
    for family in (4, 6):
        matrices = sandbox.probe_many(specs, timeout=0.3, family=family)
        for (port, protocol), matrix in zip(specs, matrices, strict=True):
            for (src, dst), result in matrix.results.items():
                assert result.reachable is not None, (src, dst, result.detail)
                # Addresses, not names: the verdict of the family the packets used (ipBlock).
                expected = decide(
                    inventory,
                    str(_address(sandbox, src, family)),
                    str(result.target.address),
                    port=port,
                    protocol=protocol,
                ).allowed
                assert confirmed(sandbox, result, expected) is expected, (
                    f"{src} -> {dst} {protocol.value}/{port} IPv{family}: predicted "
                    f"{'allowed' if expected else 'denied'}, packets {result.outcome.value}"
                )
                compared += 1
        if family == 4:
            by_spec = dict(zip(specs, matrices, strict=True))
    assert compared > 0
    for check in scenario.checks:
        protocol = Protocol(check.protocol)
        matrix = by_spec.get((check.port, protocol))
        if matrix is None or (check.src, check.dst) not in matrix.results:
            continue  # an address endpoint or a hostNetwork pod: not probed here
        before = decide(original, check.src, check.dst, port=check.port, protocol=protocol)
        after = decide(inventory, check.src, check.dst, port=check.port, protocol=protocol)
        if before.allowed != after.allowed:
            continue  # the verdict depends on manifest addresses the sandbox does not use
        assert matrix.results[(check.src, check.dst)].reachable is check.expect_allowed, check.id
    return sandbox


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_s03_s05_scenario_replayed_on_real_packets(
    make_sandbox: SandboxMaker, scenario: Scenario
) -> None:
    """Real TCP, UDP and SCTP packets between every pod pair agree with the reference."""
    replay_on_real_packets(make_sandbox, scenario)
