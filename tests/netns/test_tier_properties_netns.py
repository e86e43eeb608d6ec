"""Random tiered clusters on real packets, and a tier change applied to a running sandbox.

Why this module exists: the tier scenarios are chosen situations; here hypothesis draws small
clusters with random NetworkPolicies and random ClusterNetworkPolicies of both tiers (the
generator of ``tests/unit/dataplane/test_nft_tiers.py``), and every pod pair's real TCP and UDP
packets must do what the reference evaluator says. Then one ClusterNetworkPolicy is added to a
running sandbox (``Sandbox.apply``): the packets follow at once.
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from tests.netns.conftest import SandboxMaker, confirmed, unique_name
from tests.unit.dataplane.test_nft_tiers import tiered_clusters

from kubefence.api import Inventory, Protocol
from kubefence.dataplane.netns import Sandbox, down
from kubefence.semantics import decide
from kubefence.sources.files import STDIN, load_paths

pytestmark = pytest.mark.netns

MANIFESTS = (
    Path(__file__).resolve().parent.parent / "golden/inputs/features/tiers-multi-tenant.yaml"
)


def _compare(sandbox: Sandbox, ports: list[tuple[int, Protocol]]) -> int:
    inventory = sandbox.inventory
    compared = 0
    for (port, protocol), matrix in zip(
        ports, sandbox.probe_many(ports, timeout=0.3, family=4), strict=True
    ):
        for (src, dst), result in matrix.results.items():
            assert result.reachable is not None, (src, dst, result.detail)
            source = sandbox.state.pods[src].ipv4
            expected = decide(
                inventory, str(source), str(result.target.address), port=port, protocol=protocol
            ).allowed
            assert confirmed(sandbox, result, expected) is expected, (
                f"{src} -> {dst} {protocol.value}/{port}: predicted "
                f"{'allowed' if expected else 'denied'}, packets {result.outcome.value}"
            )
            compared += 1
    return compared


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(tiered_clusters())
def test_random_tiers_real_packets_equal_reference(inventory: Inventory) -> None:
    """Every pod pair, TCP 80/443/8080 and UDP 53: packets == decide."""
    assume(sum(1 for p in inventory.pods if not p.host_network) >= 2)  # else nothing to probe
    name = unique_name()
    try:
        sandbox = Sandbox.up(inventory, name=name)
        ports = [(80, Protocol.TCP), (443, Protocol.TCP), (8080, Protocol.TCP), (53, Protocol.UDP)]
        assert _compare(sandbox, ports) > 0
    finally:
        down(name)


def test_adding_a_cnp_to_a_running_sandbox_takes_effect(make_sandbox: SandboxMaker) -> None:
    """Without the Baseline isolation blue reaches red; applying it (the update transaction
    replaces the tier parts that differ) denies that at once, and removing it allows it again."""
    full = load_paths([STDIN], stdin=io.BytesIO(MANIFESTS.read_bytes()))
    without = dataclasses.replace(
        full, admin_policies=tuple(p for p in full.admin_policies if p.name != "tenant-isolation")
    )
    sandbox = make_sandbox(without)
    pair = [("blue/web", "red/web")]
    (before,) = sandbox.probe_many([(80, Protocol.TCP)], timeout=0.5, pairs=pair)
    assert before.results[pair[0]].reachable is True
    started = time.perf_counter()
    sandbox.apply(dataclasses.replace(sandbox.inventory, admin_policies=full.admin_policies))
    elapsed = time.perf_counter() - started
    (after,) = sandbox.probe_many([(80, Protocol.TCP)], timeout=0.5, pairs=pair)
    assert after.results[pair[0]].reachable is False
    assert elapsed < 2.0, elapsed  # generous on a shared machine; typical figures in the report
    sandbox.apply(dataclasses.replace(sandbox.inventory, admin_policies=without.admin_policies))
    (again,) = sandbox.probe_many([(80, Protocol.TCP)], timeout=0.5, pairs=pair)
    assert again.results[pair[0]].reachable is True
    assert _compare(sandbox, [(80, Protocol.TCP), (53, Protocol.UDP)]) > 0
