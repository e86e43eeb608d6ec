"""``kubefence.verify`` without root: a fake sandbox stands in for real packets.

Why this module exists: the comparison itself (which prediction, the second look at each
disagreement, what counts as passed or unprobed) is pure given the probes, so it is pinned
here; ``tests/netns/test_sandbox_e2e.py`` runs it on real packets.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from typing import cast

import pytest
from tests.builders import pod, policy

from kubefence.api import Inventory, Protocol
from kubefence.dataplane.netns import Outcome, ProbeMatrix, ProbeResult, ProbeTarget, Sandbox
from kubefence.semantics import DEFAULT_SETTINGS
from kubefence.sources.objects import inventory_from_objects
from kubefence.verify import declared_ports, verify_sandbox

PORT = {"containerPort": 5432}


def _inventory() -> Inventory:
    """db admits 198.18.1.0/24 on 5432: client's IPv4 packets, none of its IPv6 ones."""
    return inventory_from_objects(
        [
            pod("shop/client", ips=("198.18.1.5", "fd00:1::5")),
            pod("shop/db", ips=("198.18.1.9", "fd00:1::9"), ports=(PORT,), app="db"),
            policy(
                "shop/db-ingress",
                "podSelector: {matchLabels: {app: db}}\n"
                "ingress: [{from: [{ipBlock: {cidr: 198.18.1.0/24}}]}]",
            ),
        ]
    )


def _result(src: str, dst: str, outcome: Outcome, port: int) -> ProbeResult:
    target = ProbeTarget(
        src=src,
        dst=dst,
        netns=f"kf-x-{src}",
        address=ipaddress.ip_address("198.18.0.2"),
        port=port,
        protocol=Protocol.TCP,
    )
    return ProbeResult(target, outcome, outcome.value)


@dataclasses.dataclass
class FakeSandbox:
    """Packets that follow ``truth`` (per family), except ``flaky`` pairs, which time out on
    the first probe only, and ``broken`` pairs, which always give the wrong answer."""

    inventory: Inventory
    truth: dict[int, set[tuple[str, str]]]  # allowed pairs per family
    flaky: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    broken: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    unprobed: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    settings = DEFAULT_SETTINGS
    confirmed: list[ProbeResult] = dataclasses.field(default_factory=list)

    def _outcome(self, pair: tuple[str, str], family: int, *, first: bool) -> Outcome:
        allowed = (pair in self.truth[family]) != (pair in self.broken)
        if first and pair in self.flaky:
            allowed = False
        return Outcome.CONNECTED if allowed else Outcome.TIMEOUT

    def probe_many(
        self, specs: Sequence[tuple[int, Protocol]], *, timeout: float, family: int
    ) -> list[ProbeMatrix]:
        self.family = family
        keys = [p.key for p in self.inventory.pods]
        out = []
        for port, protocol in specs:
            results = {
                (s, d): _result(s, d, self._outcome((s, d), family, first=True), port)
                for s in keys
                for d in keys
                if (s, d) not in self.unprobed
            }
            out.append(ProbeMatrix(str(port), protocol, tuple(keys), results, self.unprobed))
        return out

    def confirm(self, results: Sequence[ProbeResult], *, timeout: float) -> list[ProbeResult]:
        self.confirmed.extend(results)
        return [
            _result(
                r.target.src,
                r.target.dst,
                self._outcome((r.target.src, r.target.dst), self.family, first=False),
                r.target.port,
            )
            for r in results
        ]


EVERY_PAIR = {(s, d) for s in ("shop/client", "shop/db") for d in ("shop/client", "shop/db")}
TRUTH = {4: set(EVERY_PAIR), 6: EVERY_PAIR - {("shop/client", "shop/db")}}


@pytest.mark.parametrize("family", [4, 6])
def test_s15_prediction_is_per_family_so_ipblocks_on_dual_stack_pods_agree(family: int) -> None:
    """The kernel admits client -> db for IPv4 only; verify predicts that for each family."""
    sandbox = FakeSandbox(_inventory(), TRUTH)
    report = verify_sandbox(cast(Sandbox, sandbox), timeout=0.1, family=family)
    assert report.specs == ((5432, Protocol.TCP),)
    assert (report.passed, report.mismatches, report.unprobed) == (4, (), 0)
    assert report.ok
    assert report.family == family
    assert sandbox.confirmed == []


def test_a_disagreement_is_looked_at_twice_and_only_a_lasting_one_is_a_mismatch() -> None:
    """A slow answer that the second look confirms passes; a lasting one is reported with the
    reference evaluator's explanation of the prediction."""
    lasting = ("shop/client", "shop/db")
    sandbox = FakeSandbox(_inventory(), TRUTH, flaky={("shop/db", "shop/client")}, broken={lasting})
    report = verify_sandbox(cast(Sandbox, sandbox), timeout=0.1, family=6)
    assert len(sandbox.confirmed) == 2
    assert report.passed == 3
    (mismatch,) = report.mismatches
    assert (mismatch.src, mismatch.dst, mismatch.expected) == (*lasting, False)
    assert mismatch.observed.outcome is Outcome.CONNECTED
    assert not mismatch.decision.allowed
    assert mismatch.decision.ingress is not None
    assert [m.policy.key for m in mismatch.decision.ingress.misses] == ["shop/db-ingress"]
    assert not report.ok


def test_unprobed_pairs_are_counted_apart_with_their_reasons() -> None:
    sandbox = FakeSandbox(
        _inventory(), TRUTH, unprobed={("shop/db", "shop/db"): "not served (test)"}
    )
    report = verify_sandbox(cast(Sandbox, sandbox), timeout=0.1, family=4)
    assert (report.passed, report.unprobed, report.total) == (3, 1, 4)
    assert report.unprobed_reasons == ("not served (test)",)
    assert report.ok


def test_declared_ports_sorted_by_protocol_then_port_and_nothing_to_do_without_any() -> None:
    inventory = inventory_from_objects(
        [
            pod("a/x", ports=({"containerPort": 53, "protocol": "UDP"}, {"containerPort": 80})),
            pod("a/y", ports=({"containerPort": 8080}, {"containerPort": 80})),
        ]
    )
    assert declared_ports(inventory) == (
        (80, Protocol.TCP),
        (8080, Protocol.TCP),
        (53, Protocol.UDP),
    )
    empty = FakeSandbox(inventory_from_objects([pod("a/x")]), TRUTH)
    report = verify_sandbox(cast(Sandbox, empty), timeout=0.1)
    assert (report.specs, report.total, report.ok) == ((), 0, True)
