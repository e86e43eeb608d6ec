"""What a node component made, written down so that a restarted one finds it again.

Why this module exists: the node component can be SIGKILLed at any point, and its restart must
neither lose a pod (its namespace, address and processes keep running) nor duplicate one. Each
pod's record (by UID: namespace name, address offset, processes with start times) is written
atomically to ``node.json`` in the node's state directory *before* its resources are made, so a
crash leaves nothing unrecorded; ``cluster down`` reads the same file, and so does ``cluster
verify`` to find each pod's namespace. It lives in ``dataplane.netns`` (it records what was made
on this machine, like the sandbox's state) so that both the node component and the probes can
read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["NodeRecord", "PodRecord", "ProcessRecord", "load_record", "save_record"]

STATE_FILE = "node.json"


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A container's process: pid + start time (a reused pid is never taken for it)."""

    pid: int
    start_time: int | None
    started_at: str  # RFC 3339, for containerStatuses


@dataclass(frozen=True, slots=True)
class PodRecord:
    """One pod on this node; ``slot_index``/``offset`` fix its namespace and address."""

    uid: str
    key: str
    slot_index: int
    offset: int
    host_network: bool
    started_at: str
    processes: Mapping[str, ProcessRecord] = field(default_factory=dict)
    restarts: Mapping[str, int] = field(default_factory=dict)
    exited: Mapping[str, int] = field(default_factory=dict)  # container -> exit code (final)

    def with_changes(self, **changes: Any) -> PodRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "key": self.key,
            "slot_index": self.slot_index,
            "offset": self.offset,
            "host_network": self.host_network,
            "started_at": self.started_at,
            "processes": {
                name: {"pid": p.pid, "start_time": p.start_time, "started_at": p.started_at}
                for name, p in self.processes.items()
            },
            "restarts": dict(self.restarts),
            "exited": dict(self.exited),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PodRecord:
        return cls(
            uid=str(data["uid"]),
            key=str(data["key"]),
            slot_index=int(data["slot_index"]),
            offset=int(data["offset"]),
            host_network=bool(data.get("host_network", False)),
            started_at=str(data.get("started_at", "")),
            processes={
                name: ProcessRecord(
                    pid=int(p["pid"]),
                    start_time=None if p.get("start_time") is None else int(p["start_time"]),
                    started_at=str(p.get("started_at", "")),
                )
                for name, p in dict(data.get("processes") or {}).items()
            },
            restarts={str(k): int(v) for k, v in dict(data.get("restarts") or {}).items()},
            exited={str(k): int(v) for k, v in dict(data.get("exited") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """Every pod of the node, by UID."""

    pods: Mapping[str, PodRecord] = field(default_factory=dict)

    def free_slot(self) -> tuple[int, int]:
        """The lowest free namespace index and address offset."""
        indices = {p.slot_index for p in self.pods.values() if not p.host_network}
        offsets = {p.offset for p in self.pods.values() if not p.host_network}
        index = next(i for i in range(len(indices) + 1) if i not in indices)
        offset = next(i for i in range(len(offsets) + 1) if i not in offsets)
        return index, offset

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "pods": [p.to_json() for p in self.pods.values()]}


def load_record(directory: Path) -> NodeRecord:
    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except FileNotFoundError:
        return NodeRecord()
    pods = [PodRecord.from_json(p) for p in data.get("pods") or ()]
    return NodeRecord(pods={p.uid: p for p in pods})


def save_record(directory: Path, record: NodeRecord) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(record.to_json()))  # a crash of this process, not power loss
    tmp.replace(directory / STATE_FILE)
