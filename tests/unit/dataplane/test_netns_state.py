"""The sandbox state file: round trip, atomic replacement, and clear errors when damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubefence.api import Pod
from kubefence.dataplane.netns import SandboxState, manifest_paths
from kubefence.dataplane.netns._slots import plan_slots
from kubefence.dataplane.netns._state import ServerRecord, load_state, save_state
from kubefence.errors import DataplaneError


def _state() -> SandboxState:
    slots = plan_slots("demo", [Pod(namespace="a", name="x"), Pod(namespace="b", name="y")])
    return SandboxState(
        name="demo",
        node_netns="kf-demo-node",
        phase="ready",
        namespaces=("kf-demo-node", "kf-demo-0", "kf-demo-1"),
        pods=slots,
        server=ServerRecord(pid=4242, start_time=99),
        default_namespace="team",
        manifests=("manifests/000-a.yaml",),
        unprobed={"a/h": "hostNetwork"},
        settings={"cut_established_on_deny": False},
    )


def test_state_round_trips_through_the_file(tmp_path: Path) -> None:
    """What is saved is exactly what is loaded back."""
    state = _state()
    save_state(state, run_dir=tmp_path)
    assert load_state("demo", run_dir=tmp_path) == state
    assert not list((tmp_path / "demo").glob(".*.tmp"))


def test_manifest_paths_point_into_the_state_directory(tmp_path: Path) -> None:
    """The stored manifest copies are named relative to the sandbox's own state directory."""
    assert manifest_paths(_state(), run_dir=tmp_path) == [
        str(tmp_path / "demo" / "manifests" / "000-a.yaml")
    ]


def test_missing_state_is_none(tmp_path: Path) -> None:
    """No state file means no sandbox, not an error."""
    assert load_state("nothing", run_dir=tmp_path) is None


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"version": 99}', '{"version": 1, "name": "demo"}']
)
def test_damaged_state_is_a_dataplane_error(tmp_path: Path, content: str) -> None:
    """A damaged state file gives a DataplaneError with a message, never a traceback."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "state.json").write_text(content)
    with pytest.raises(DataplaneError):
        load_state("demo", run_dir=tmp_path)


def test_state_json_is_sorted_and_readable(tmp_path: Path) -> None:
    """The document has stable keys so other tools (and people) can read it."""
    save_state(_state(), run_dir=tmp_path)
    data = json.loads((tmp_path / "demo" / "state.json").read_text())
    assert data["nodeNamespace"] == "kf-demo-node"
    assert [p["key"] for p in data["pods"]] == ["a/x", "b/y"]
    assert data["server"] == {"pid": 4242, "startTime": 99}


def test_sandbox_lock_serialises_processes_and_is_reentrant(tmp_path: Path) -> None:
    """A second process waits for the lock; the holder may re-enter it (up calls down)."""
    import subprocess
    import sys
    import time

    from kubefence.dataplane.netns._state import release_lock_file, sandbox_lock

    waiter = (
        "import sys, time; from pathlib import Path; "
        "from kubefence.dataplane.netns._state import sandbox_lock\n"
        "with sandbox_lock('demo', run_dir=Path(sys.argv[1])):\n"
        "    print(time.monotonic(), flush=True)\n"
    )
    with sandbox_lock("demo", run_dir=tmp_path) as outermost:
        assert outermost
        with sandbox_lock("demo", run_dir=tmp_path) as inner:
            assert not inner
        child = subprocess.Popen(
            [sys.executable, "-c", waiter, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.5)
        assert child.poll() is None  # still waiting for the lock
        released = time.monotonic()
        release_lock_file("demo", run_dir=tmp_path)  # as down does, while holding it
    out, _ = child.communicate(timeout=10)
    assert float(out) >= released
    assert child.returncode == 0
