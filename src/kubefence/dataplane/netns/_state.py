"""What a sandbox made, written down so that a later command (or a crash) can find it.

Why this module exists: every sandbox command is a separate process, and ``down`` must remove
every namespace, link and process even after the sandbox's processes were killed. The state is a
small JSON document under ``/run/kubefence/<name>/state.json``, written atomically (temporary
file + rename) *before* each resource is created, so a crash never leaves something unrecorded.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubefence.dataplane.netns._slots import PodSlot
from kubefence.errors import DataplaneError

__all__ = [
    "RUN_DIR",
    "SandboxState",
    "ServerRecord",
    "load_state",
    "release_lock_file",
    "sandbox_lock",
    "save_state",
    "state_dir",
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
