"""What a sandbox made, written down so that a later command (or a crash) can find it.

Why this module exists: every sandbox command is a separate process, and ``down`` must remove
every namespace, link and process even after the sandbox's processes were killed. The state is a
small JSON document under ``/run/kubefence/<name>/state.json``, written atomically (temporary
file + rename) *before* each resource is created, so a crash never leaves something unrecorded.
It is read back here too: ``status``, ``list_sandboxes``, ``require_state`` and the stored
manifest copies need no ``Sandbox`` object, only the state and what the machine shows.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubefence.dataplane.netns._slots import PodSlot, check_name
from kubefence.dataplane.netns._system import netns_list, process_alive
from kubefence.errors import DataplaneError, InputError

__all__ = [
    "RUN_DIR",
    "SandboxState",
    "SandboxStatus",
    "ServerRecord",
    "list_sandboxes",
    "load_state",
    "manifest_paths",
    "release_lock_file",
    "require_state",
    "sandbox_lock",
    "save_state",
    "state_dir",
    "state_readable",
    "status",
    "store_manifests",
]

RUN_DIR = Path("/run/kubefence")
STATE_FILE = "state.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """The daemonised server process: pid plus start time, so a reused pid is never killed."""

    pid: int
    start_time: int | None


@dataclass(frozen=True, slots=True)
class SandboxState:
    """Everything a sandbox made; ``namespaces`` lists names before they are created."""

    name: str
    node_netns: str
    phase: str = "creating"  # creating -> ready; "applying" while an apply runs
    namespaces: tuple[str, ...] = ()
    pods: Mapping[str, PodSlot] = field(default_factory=dict)
    server: ServerRecord | None = None
    default_namespace: str = "default"
    manifests: tuple[str, ...] = ()  # copies of the applied manifests, relative to the state dir
    unprobed: Mapping[str, str] = field(default_factory=dict)  # pod key -> why it does not run
    settings: Mapping[str, bool] = field(default_factory=dict)  # kubefence.Settings fields
    flow_log: Mapping[str, int] | None = None  # nft.FlowLog fields; None: no flow log rules

    def with_changes(self, **changes: Any) -> SandboxState:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "name": self.name,
            "phase": self.phase,
            "nodeNamespace": self.node_netns,
            "namespaces": list(self.namespaces),
            "pods": [
                {
                    "key": s.key,
                    "index": s.index,
                    "netns": s.netns,
                    "nodeInterface": s.node_if,
                    "ipv4": str(s.ipv4),
                    "ipv6": str(s.ipv6),
                }
                for s in self.pods.values()
            ],
            "server": (
                None
                if self.server is None
                else {"pid": self.server.pid, "startTime": self.server.start_time}
            ),
            "defaultNamespace": self.default_namespace,
            "manifests": list(self.manifests),
            "unprobed": dict(self.unprobed),
            "settings": dict(self.settings),
            "flowLog": None if self.flow_log is None else dict(self.flow_log),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SandboxState:
        """Parse a state document; anything malformed raises ``DataplaneError``."""
        try:
            if data.get("version") != _VERSION:
                raise ValueError(f"unknown state version {data.get('version')!r}")
            pods = {}
            for item in data["pods"]:
                slot = PodSlot(
                    key=str(item["key"]),
                    index=int(item["index"]),
                    netns=str(item["netns"]),
                    node_if=str(item["nodeInterface"]),
                    ipv4=ipaddress.IPv4Address(item["ipv4"]),
                    ipv6=ipaddress.IPv6Address(item["ipv6"]),
                )
                pods[slot.key] = slot
            server = data.get("server")
            return cls(
                name=str(data["name"]),
                node_netns=str(data["nodeNamespace"]),
                phase=str(data["phase"]),
                namespaces=tuple(str(n) for n in data["namespaces"]),
                pods=dict(sorted(pods.items())),
                server=(
                    None
                    if server is None
                    else ServerRecord(
                        pid=int(server["pid"]),
                        start_time=(
                            None if server.get("startTime") is None else int(server["startTime"])
                        ),
                    )
                ),
                default_namespace=str(data.get("defaultNamespace", "default")),
                manifests=tuple(str(m) for m in data.get("manifests", ())),
                unprobed={str(k): str(v) for k, v in dict(data.get("unprobed", {})).items()},
                settings={str(k): bool(v) for k, v in dict(data.get("settings", {})).items()},
                flow_log=(
                    None
                    if data.get("flowLog") is None
                    else {str(k): int(v) for k, v in dict(data["flowLog"]).items()}
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataplaneError(f"unreadable sandbox state ({exc})") from exc


def state_dir(name: str, *, run_dir: Path = RUN_DIR) -> Path:
    return run_dir / name


def save_state(state: SandboxState, *, run_dir: Path = RUN_DIR) -> None:
    """Write the state atomically: readers see the old or the new document, never half."""
    directory = state_dir(state.name, run_dir=run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / STATE_FILE)


def load_state(name: str, *, run_dir: Path = RUN_DIR) -> SandboxState | None:
    """The recorded state of sandbox ``name``, or None when there is none."""
    path = state_dir(name, run_dir=run_dir) / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataplaneError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataplaneError(f"{path} is not valid JSON ({exc}); remove it by hand") from exc
    if not isinstance(data, dict):
        raise DataplaneError(f"{path} does not hold a sandbox state")
    return SandboxState.from_json(data)


_held: dict[tuple[Path, str], int] = {}  # (run dir, name) -> depth, for this process
_held_guard = threading.Lock()


def _lock_path(name: str, run_dir: Path) -> Path:
    return run_dir / f".{name}.lock"


@contextmanager
def sandbox_lock(name: str, *, run_dir: Path = RUN_DIR) -> Iterator[bool]:
    """Serialise changes (up, apply, down) to one sandbox across processes.

    Re-entrant within a process (``up`` calls ``down``); yields True to the outermost holder.
    ``down`` deletes the lock file while holding it as the outermost holder; a waiter that then
    wins the lock on the deleted file notices (inode changed) and locks the current file.
    """
    key = (run_dir, name)
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield False
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = _lock_path(name, run_dir)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    with _held_guard:
        _held[key] = 1
    try:
        yield True
    finally:
        with _held_guard:
            _held.pop(key, None)
        os.close(fd)


def release_lock_file(name: str, *, run_dir: Path = RUN_DIR) -> None:
    """Remove the lock file (``down``, while holding the lock): nothing of the sandbox stays."""
    with suppress(FileNotFoundError):
        _lock_path(name, run_dir).unlink()


# --- read back: what is up, for commands that have no Sandbox object -----------------------


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
