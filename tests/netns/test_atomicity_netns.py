"""Policy replacement is atomic: probes during repeated swaps see only the old or new verdict."""

from __future__ import annotations

import threading

import pytest
from tests.netns.conftest import (
    ALLOW_POLICY,
    DENY_ALL_INGRESS,
    QUICKSTART_PODS,
    SandboxMaker,
    inventory_of,
)

from kubefence.api import Protocol
from kubefence.dataplane.netns._slots import sandbox_inventory
from kubefence.semantics import decide

pytestmark = pytest.mark.netns

SWAPS = 40


def test_s25_swaps_never_open_a_window(make_sandbox: SandboxMaker) -> None:
    """While allow-policy and deny-all replace each other, every pair on TCP/80 and UDP/53 only
    ever shows a verdict one of the two policy sets gives, and pairs both deny stay denied."""
    first = inventory_of(QUICKSTART_PODS + ALLOW_POLICY)
    second = inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS)
    sandbox = make_sandbox(first)
    specs = [(80, Protocol.TCP), (53, Protocol.UDP)]
    keys = [p.key for p in sandbox.inventory.pods]
    allowed: dict[tuple[str, str, int], set[bool]] = {}
    for inventory in (first, second):
        running = sandbox_inventory(inventory, sandbox.state.pods, node=sandbox.state.node_netns)
        for port, protocol in specs:
            for src in keys:
                for dst in keys:
                    verdict = decide(running, src, dst, port=port, protocol=protocol).allowed
                    allowed.setdefault((src, dst, port), set()).add(verdict)
    assert {True, False} in allowed.values()  # some pair really flips
    assert {False} in allowed.values()  # some pair is denied by both: must never open

    errors: list[BaseException] = []

    def swap() -> None:
        try:
            for number in range(SWAPS):
                sandbox.apply(second if number % 2 == 0 else first)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    swapper = threading.Thread(target=swap)
    swapper.start()
    rounds = 0
    observed: dict[tuple[str, str, int], set[bool]] = {}
    while swapper.is_alive() or rounds < 3:
        for matrix in sandbox.probe_many(specs, timeout=0.3):
            for (src, dst), result in matrix.results.items():
                assert result.reachable is not None
                key = (src, dst, int(matrix.port))
                observed.setdefault(key, set()).add(result.reachable)
                assert result.reachable in allowed[key], (key, result)
        rounds += 1
    swapper.join()
    assert not errors, errors
    assert rounds >= 3
    assert observed.keys() == allowed.keys()
