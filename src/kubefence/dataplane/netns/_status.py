"""What is up, read from the recorded state alone: status, the list of sandboxes, manifests.

Why this module exists: every sandbox command is a separate process, and ``status``, ``down``
and ``apply`` must find a sandbox made by another one, healthy or half-made. These functions
need no ``Sandbox`` object, only the state ``_state`` saved and what the machine shows.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubefence.dataplane.netns._slots import PodSlot, check_name
from kubefence.dataplane.netns._state import (
    RUN_DIR,
    SandboxState,
    ServerRecord,
    load_state,
    state_dir,
)
from kubefence.dataplane.netns._system import process_alive
from kubefence.dataplane.netns._topology import netns_list
from kubefence.errors import DataplaneError, InputError

__all__ = [
    "SandboxStatus",
    "list_sandboxes",
    "manifest_paths",
    "require_state",
    "state_readable",
    "status",
    "store_manifests",
]


@dataclass(frozen=True, slots=True)
class SandboxStatus:
    name: str
    phase: str
    pods: tuple[PodSlot, ...]
    missing_namespaces: tuple[str, ...]
    server: ServerRecord | None
    server_alive: bool
    unprobed: Mapping[str, str]

    @property
    def healthy(self) -> bool:
        return self.phase == "ready" and not self.missing_namespaces and self.server_alive


def state_readable(name: str, run_dir: Path) -> bool:
    try:
        load_state(name, run_dir=run_dir)
    except DataplaneError:
        return False
    return True


def store_manifests(directory: Path, manifests: Sequence[tuple[str, bytes]]) -> tuple[str, ...]:
    """Keep a copy of ``manifests`` (label, content) under ``directory``/manifests, replacing
    any earlier copies; returns their paths relative to ``directory``, for the state."""
    stored_in = directory / "manifests"
    if stored_in.exists():
        shutil.rmtree(stored_in)
    stored_in.mkdir(parents=True)
    stored = []
    for number, (label, content) in enumerate(manifests):
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(label).name)
        relative = f"manifests/{number:03d}-{stem or 'stdin'}"
        if not relative.endswith((".yaml", ".yml", ".json")):
            relative += ".yaml"
        (directory / relative).write_bytes(content)
        stored.append(relative)
    return tuple(stored)


def manifest_paths(state: SandboxState, *, run_dir: Path = RUN_DIR) -> list[str]:
    """The stored copies of the manifests the sandbox enforces, to load them again."""
    directory = state_dir(state.name, run_dir=run_dir)
    return [str(directory / m) for m in state.manifests]


def require_state(name: str, *, run_dir: Path = RUN_DIR) -> SandboxState:
    check_name(name)
    state = load_state(name, run_dir=run_dir)
    if state is None:
        raise InputError(f"no sandbox named {name!r} is up (start one with 'kubefence sandbox up')")
    return state


def status(name: str, *, run_dir: Path = RUN_DIR) -> SandboxStatus:
    state = require_state(name, run_dir=run_dir)
    present = set(netns_list())
    server = state.server
    return SandboxStatus(
        name=state.name,
        phase=state.phase,
        pods=tuple(state.pods.values()),
        missing_namespaces=tuple(n for n in state.namespaces if n not in present),
        server=server,
        server_alive=server is not None and process_alive(server.pid, server.start_time),
        unprobed=state.unprobed,
    )


def list_sandboxes(*, run_dir: Path = RUN_DIR) -> list[str]:
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if (p / "state.json").is_file())
