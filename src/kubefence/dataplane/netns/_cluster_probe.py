"""Real packets between the pods of a sandbox cluster, probed like the sandbox's.

Why this module exists: ``kubefence cluster verify`` holds a sandbox cluster (pods placed by its
scheduler on several nodes, rules installed by one policy agent per node) to the engine's
prediction, exactly as ``sandbox verify`` holds the one-node sandbox. The probes are the same
(``_matrix``, ``_probe``); only where each pod runs comes from elsewhere: the node components'
records (``_node_state``: each pod's namespace index and address offset on its node), read
from the cluster's state directory, not from a sandbox's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from kubefence.api import Inventory, Protocol
from kubefence.dataplane.netns._matrix import ProbeMatrix, probe_matrices
from kubefence.dataplane.netns._node_state import load_record
from kubefence.dataplane.netns._nodes import node_from_name, pod_slot
from kubefence.dataplane.netns._probe import ProbeResult, run_probes
from kubefence.dataplane.netns._slots import PodSlot
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = ["ClusterProbe", "cluster_pod_slots"]


def cluster_pod_slots(cluster: str, directory: Path) -> dict[str, PodSlot]:
    """Every recorded (non-hostNetwork) pod of the cluster's nodes, by ``namespace/name``."""
    slots: dict[str, PodSlot] = {}
    nodes = directory / "nodes"
    for node_dir in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else ():
        plan = node_from_name(cluster, node_dir.name)
        for record in load_record(node_dir).pods.values():
            if not record.host_network:
                slots[record.key] = pod_slot(
                    plan, key=record.key, slot_index=record.slot_index, offset=record.offset
                )
    return slots


class ClusterProbe:
    """The sandbox cluster as ``kubefence.verify`` probes it: the live ``inventory`` (what the
    API server stores) and where each of its pods runs."""

    def __init__(
        self,
        cluster: str,
        directory: Path,
        inventory: Inventory,
        *,
        settings: Settings = DEFAULT_SETTINGS,
    ) -> None:
        self.inventory = inventory
        self.settings = settings
        recorded = cluster_pod_slots(cluster, directory)
        self.pods: Mapping[str, PodSlot] = {
            pod.key: recorded[pod.key] for pod in inventory.pods if pod.key in recorded
        }
        self.unprobed: Mapping[str, str] = {
            pod.key: "hostNetwork pod: it is its node" if pod.host_network else "not running"
            for pod in inventory.pods
            if pod.key not in self.pods
        }

    def probe_many(
        self,
        specs: Sequence[tuple[int | str, Protocol]],
        *,
        timeout: float = 1.0,
        family: int = 4,
        pairs: Sequence[tuple[str, str]] | None = None,
    ) -> list[ProbeMatrix]:
        return probe_matrices(
            self, self.inventory, specs, timeout=timeout, family=family, pairs=pairs
        )

    def confirm(self, results: Sequence[ProbeResult], *, timeout: float = 3.0) -> list[ProbeResult]:
        """The same targets again with a longer timeout (a slow answer is not a drop)."""
        return run_probes([r.target for r in results], timeout=timeout)
