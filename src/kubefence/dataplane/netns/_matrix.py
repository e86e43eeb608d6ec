"""Real-packet reachability of a running sandbox, in the engine's matrix shape.

Why this module exists: ``Sandbox.probe`` answers the same question as ``kubefence matrix``,
so its result must line up with the prediction pair by pair. This module lays out the probe
targets for every ordered pair of running pods (a named port resolved per destination, like
``matrix``), runs them all under one timeout (``_probe``), and records every pair that could
not be probed with its reason instead of dropping it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

from kubefence.api import Inventory, Protocol
from kubefence.dataplane.netns._probe import ProbeResult, ProbeTarget, run_probes
from kubefence.dataplane.netns._slots import PodSlot
from kubefence.dataplane.netns._state import SandboxState
from kubefence.semantics import resolve_named_port

__all__ = ["PodPlaces", "ProbeMatrix", "node_probes", "probe_matrices"]


class PodPlaces(TypingProtocol):
    """Where pods run: the sandbox's state, or a sandbox cluster's node records."""

    @property
    def pods(self) -> Mapping[str, PodSlot]: ...  # pod key -> its namespace and addresses

    @property
    def unprobed(self) -> Mapping[str, str]: ...  # pod key -> why it does not run here


@dataclass(frozen=True, slots=True)
class ProbeMatrix:
    """Real-packet reachability for one (port, protocol), as docs/matrix-json.md shapes it."""

    port: str
    protocol: Protocol
    endpoints: tuple[str, ...]
    results: Mapping[tuple[str, str], ProbeResult]  # every probed pair
    unprobed: Mapping[tuple[str, str], str]  # every pair that could not be probed, and why

    def cell(self, src: str, dst: str) -> str:
        result = self.results.get((src, dst))
        if result is None or result.reachable is None:
            return "?"
        return "1" if result.reachable else "0"

    def to_json(self) -> dict[str, Any]:
        unprobed = dict(self.unprobed)
        for pair, result in self.results.items():
            if result.reachable is None:
                unprobed[pair] = result.detail
        return {
            "port": self.port,
            "protocol": self.protocol.value,
            "endpoints": list(self.endpoints),
            "rows": ["".join(self.cell(s, d) for d in self.endpoints) for s in self.endpoints],
            "unprobed": [
                {"from": s, "to": d, "reason": reason}
                for (s, d), reason in sorted(unprobed.items())
            ],
        }


def _unprobed_reason(state: PodPlaces, src: str, dst: str) -> str | None:
    for key in (src, dst):
        if key not in state.pods:
            return f"{key}: {state.unprobed.get(key, 'not running in the sandbox')}"
    return None


def probe_matrices(
    state: PodPlaces,
    inventory: Inventory,
    specs: Sequence[tuple[int | str, Protocol]],
    *,
    timeout: float,
    family: int,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> list[ProbeMatrix]:
    """Probe every pair (or ``pairs``) on each (port, protocol) of ``specs`` at once."""
    endpoints = tuple(p.key for p in inventory.pods)
    wanted = pairs if pairs is not None else [(s, d) for s in endpoints for d in endpoints]
    targets: list[ProbeTarget] = []
    owners: list[int] = []
    unprobed: list[dict[tuple[str, str], str]] = [{} for _ in specs]
    for number, (port, protocol) in enumerate(specs):
        for src, dst in wanted:
            reason = _unprobed_reason(state, src, dst)
            resolved = (
                port
                if isinstance(port, int)
                else resolve_named_port(port, protocol, inventory.pod_by_key[dst].ports)
            )
            if reason is None and resolved is None:
                reason = f"{dst} declares no {protocol.value} port named {port!r}"
            if reason is not None or resolved is None:
                unprobed[number][(src, dst)] = reason or "unresolved port"
                continue
            slot_src, slot_dst = state.pods[src], state.pods[dst]
            targets.append(
                ProbeTarget(
                    src=src,
                    dst=dst,
                    netns=slot_src.netns,
                    address=slot_dst.ipv4 if family == 4 else slot_dst.ipv6,
                    port=resolved,
                    protocol=protocol,
                    dst_netns=slot_dst.netns,
                )
            )
            owners.append(number)
    results = run_probes(targets, timeout=timeout)
    per_spec: list[dict[tuple[str, str], ProbeResult]] = [{} for _ in specs]
    for number, result in zip(owners, results, strict=True):
        per_spec[number][(result.target.src, result.target.dst)] = result
    return [
        ProbeMatrix(
            port=str(port),
            protocol=protocol,
            endpoints=endpoints,
            results=per_spec[number],
            unprobed=unprobed[number],
        )
        for number, (port, protocol) in enumerate(specs)
    ]


def node_probes(
    state: SandboxState,
    inventory: Inventory,
    *,
    source: str,
    port: int,
    protocol: Protocol,
    timeout: float,
    family: int,
) -> dict[str, ProbeResult]:
    """Probe every running pod from the node namespace (named ``source`` in the results)."""
    targets = [
        ProbeTarget(
            src=source,
            dst=slot.key,
            netns=state.node_netns,
            address=slot.ipv4 if family == 4 else slot.ipv6,
            port=port,
            protocol=protocol,
            dst_netns=slot.netns,
        )
        for slot in state.pods.values()
        if slot.key in inventory.pod_by_key
    ]
    return {r.target.dst: r for r in run_probes(targets, timeout=timeout)}
