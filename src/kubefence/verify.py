"""``sandbox verify`` as an algorithm: real packets on every declared port against the engine.

Why this module exists: holding the sandbox's packets to the engine's prediction is the proof
the project promises, and it needs both the data plane (``dataplane.netns``: probes) and the
engine (the prediction), which are independent layers; the CLI only renders the result. This
is its own layer between ``cli`` and ``audit`` (see the import contract in ``pyproject.toml``).

Every sandbox pod has an IPv4 and an IPv6 address, and a packet carries one family, so the
prediction is the engine's on the inventory restricted to the probed family
(``kubefence.api.restrict_to_family``): exact for ipBlock peers too, at engine speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from kubefence.api import Inventory, Protocol, restrict_to_family
from kubefence.dataplane.netns import ProbeMatrix, ProbeResult
from kubefence.engine import ReachabilityAnalysis
from kubefence.semantics import Decision, Settings, decide

__all__ = ["Mismatch", "Probed", "VerifyReport", "declared_ports", "verify_sandbox"]

PortSpec = tuple[int, Protocol]


class Probed(TypingProtocol):
    """What ``verify_sandbox`` needs of a running cluster: its objects, its settings, and
    probes (``dataplane.netns.Sandbox`` on one node, ``ClusterProbe`` on a sandbox cluster)."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def settings(self) -> Settings: ...

    def probe_many(
        self,
        specs: Sequence[tuple[int | str, Protocol]],
        *,
        timeout: float = ...,
        family: int = ...,
        pairs: Sequence[tuple[str, str]] | None = ...,
    ) -> list[ProbeMatrix]: ...

    def confirm(
        self, results: Sequence[ProbeResult], *, timeout: float = ...
    ) -> list[ProbeResult]: ...


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A pair whose packets disagreed with the prediction, twice (the second time with a
    longer timeout); ``decision`` is the reference evaluator's explanation of the prediction."""

    port: int
    protocol: Protocol
    src: str
    dst: str
    expected: bool
    observed: ProbeResult
    decision: Decision


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify_sandbox`` found; unprobed pairs are counted apart, never as passed."""

    family: int
    specs: tuple[PortSpec, ...]
    passed: int
    mismatches: tuple[Mismatch, ...]
    unprobed: int
    unprobed_reasons: tuple[str, ...]  # sorted, distinct

    @property
    def total(self) -> int:
        return self.passed + len(self.mismatches) + self.unprobed

    @property
    def ok(self) -> bool:
        return not self.mismatches


def declared_ports(inventory: Inventory) -> tuple[PortSpec, ...]:
    """Every (port, protocol) some pod declares, by protocol then port."""
    return tuple(
        sorted(
            {(p.port, p.protocol) for pod in inventory.pods for p in pod.ports},
            key=lambda s: (s[1].value, s[0]),
        )
    )


def verify_sandbox(
    sandbox: Probed,
    *,
    timeout: float,
    family: int = 4,
    specs: Sequence[PortSpec] | None = None,
) -> VerifyReport:
    """Probe every pair on ``specs`` (default: every declared port) with packets of ``family``
    and compare with the engine's prediction for that family.

    A disagreement gets a second look with a longer timeout (a loaded machine can answer later
    than ``timeout``; a real drop stays a drop) before it counts as a mismatch."""
    wanted = declared_ports(sandbox.inventory) if specs is None else tuple(specs)
    if not wanted:
        return VerifyReport(
            family=family, specs=(), passed=0, mismatches=(), unprobed=0, unprobed_reasons=()
        )
    inventory = restrict_to_family(sandbox.inventory, family)
    settings = sandbox.settings
    matrices = sandbox.probe_many(list(wanted), timeout=timeout, family=family)
    analysis = ReachabilityAnalysis(inventory, settings=settings)  # one port-independent prep
    passed = unprobed = 0
    suspects: list[tuple[PortSpec, str, str, bool, ProbeResult]] = []
    for (port, protocol), probed in zip(wanted, matrices, strict=True):
        predicted = analysis.matrix(port, protocol)
        for (src, dst), result in sorted(probed.results.items()):
            if result.reachable is None:
                unprobed += 1
                continue
            expected = predicted.allowed(src, dst)
            if expected == result.reachable:
                passed += 1
            else:
                suspects.append(((port, protocol), src, dst, expected, result))
        unprobed += len(probed.unprobed)
    second = sandbox.confirm([s[-1] for s in suspects], timeout=max(3 * timeout, 2.0))
    mismatches: list[Mismatch] = []
    for ((port, protocol), src, dst, expected, _), result in zip(suspects, second, strict=True):
        if result.reachable == expected:
            passed += 1
            continue
        decision = decide(inventory, src, dst, port=port, protocol=protocol, settings=settings)
        mismatches.append(
            Mismatch(
                port=port,
                protocol=protocol,
                src=src,
                dst=dst,
                expected=expected,
                observed=result,
                decision=decision,
            )
        )
    reasons = sorted(
        {r.detail for m in matrices for r in m.results.values() if r.reachable is None}
        | {reason for m in matrices for reason in m.unprobed.values()}
    )
    return VerifyReport(
        family=family,
        specs=wanted,
        passed=passed,
        mismatches=tuple(mismatches),
        unprobed=unprobed,
        unprobed_reasons=tuple(reasons),
    )
