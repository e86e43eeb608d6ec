"""Nothing outlives ``down``: namespaces, links, processes, tables, state, even after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.netns.conftest import QUICKSTART_PODS, SandboxMaker, inventory_of, unique_name

from kubefence.api import Inventory
from kubefence.cli.main import main
from kubefence.dataplane.netns import RUN_DIR, Sandbox, down, status
from kubefence.dataplane.netns._state import load_state, save_state

pytestmark = pytest.mark.netns


def _netns() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def _root_links() -> set[str]:
    done = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    return {line.split(":")[1].strip() for line in done.stdout.splitlines()}


def _root_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _owned(name: str) -> set[str]:
    return {n for n in _netns() if n.startswith(f"kf-{name}-")}


def test_down_removes_every_namespace_link_process_and_file(sandbox_names: list[str]) -> None:
    """Before/after comparison of namespaces, root links and nft tables; the server is gone."""
    netns_before, links_before, tables_before = _netns(), _root_links(), _root_tables()
    name = unique_name()
    sandbox_names.append(name)
    sandbox = Sandbox.up(inventory_of(QUICKSTART_PODS), name=name)
    server = sandbox.state.server
    assert server is not None
    assert _alive(server.pid)
    assert len(_owned(name)) == 4
    assert _root_links() == links_before  # the root namespace's network is never touched
    report = down(name)
    assert report.server_stopped
    assert set(report.namespaces) == {f"kf-{name}-node", *(f"kf-{name}-{i}" for i in range(3))}
    deadline = time.monotonic() + 3
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(server.pid)
    # Other suites may run concurrently on a developer machine: compare this process's share.
    mine = f"kf-t{os.getpid()}-"
    assert {n for n in _netns() ^ netns_before if n.startswith(mine)} == set()
    assert _root_links() == links_before
    assert _root_tables() == tables_before
    assert not (RUN_DIR / name).exists()
    assert not (RUN_DIR / f".{name}.lock").exists()


def test_down_after_sigkill_of_the_server(
    sandbox_names: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL leaves the namespaces behind; `sandbox down` still removes all of them."""
    name = unique_name()
    sandbox_names.append(name)
    sandbox = Sandbox.up(inventory_of(QUICKSTART_PODS), name=name)
    server = sandbox.state.server
    assert server is not None
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 3
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = status(name)
    assert not info.server_alive
    assert not info.healthy
    assert main(["sandbox", "status", "--name", name]) == 1  # unhealthy
    assert main(["sandbox", "down", "--name", name]) == 0
    assert _owned(name) == set()
    assert not (RUN_DIR / name).exists()


def test_up_after_a_crash_cleans_leftovers_first(make_sandbox: SandboxMaker) -> None:
    """A half-made sandbox (state says 'creating', stray namespace) is cleaned by the next up."""
    first = make_sandbox(inventory_of(QUICKSTART_PODS))
    name = first.name
    server = first.state.server
    assert server is not None
    os.kill(server.pid, signal.SIGKILL)
    subprocess.run(["ip", "netns", "add", f"kf-{name}-77"], check=True)  # unrecorded leftover
    state = load_state(name)
    assert state is not None
    save_state(state.with_changes(phase="creating"))
    second = Sandbox.up(inventory_of(QUICKSTART_PODS), name=name)
    assert f"kf-{name}-77" not in _owned(name)
    assert status(name).healthy
    matrix = second.probe(port=80, timeout=0.3)
    assert matrix.results[("default/busybox", "test/nginx")].reachable is True


def test_down_without_any_state_removes_stray_namespaces_of_that_name_only(
    sandbox_names: list[str],
) -> None:
    """With no state file, down removes kf-NAME-node / kf-NAME-<n>, never another sandbox's."""
    name = unique_name()
    other = f"{name}-x"
    sandbox_names += [name, other]
    for netns in (f"kf-{name}-node", f"kf-{name}-3", f"kf-{other}-node"):
        subprocess.run(["ip", "netns", "add", netns], check=True)
    report = down(name)
    assert set(report.namespaces) == {f"kf-{name}-node", f"kf-{name}-3"}
    assert _owned(name) == {f"kf-{other}-node"}


def test_two_sandboxes_coexist_and_go_down_independently(make_sandbox: SandboxMaker) -> None:
    """Two sandboxes with the same pod addresses run side by side; downing one spares the other."""
    first = make_sandbox(inventory_of(QUICKSTART_PODS))
    second = make_sandbox(inventory_of(QUICKSTART_PODS))
    assert first.state.pods["test/nginx"].ipv4 == second.state.pods["test/nginx"].ipv4
    down(first.name)
    assert _owned(first.name) == set()
    assert status(second.name).healthy
    matrix = second.probe(port=80, timeout=0.3)
    assert matrix.results[("default/busybox", "test/nginx")].reachable is True


def test_ruleset_is_installed_before_any_pod_link_or_forwarding(
    sandbox_names: list[str],
) -> None:
    """When the ruleset is rendered for `up`, no pod link exists and the node does not forward,
    so no packet can pass before the policies are in place."""
    from kubefence.dataplane.nft import render_ruleset

    name = unique_name()
    sandbox_names.append(name)
    seen: list[tuple[str, str]] = []

    def spy(inventory: Inventory, **kwargs: Any) -> str:
        node = f"kf-{name}-node"
        links = subprocess.run(
            ["ip", "-n", node, "-o", "link"], capture_output=True, text=True, check=True
        ).stdout
        forwarding = subprocess.run(
            ["ip", "netns", "exec", node, "cat", "/proc/sys/net/ipv4/ip_forward"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        seen.append((links, forwarding))
        return render_ruleset(inventory, **kwargs)

    Sandbox.up(inventory_of(QUICKSTART_PODS), name=name, renderer=spy)
    [(links, forwarding)] = seen
    assert "kfp" not in links
    assert forwarding == "0"


def test_failed_up_leaves_nothing_behind(sandbox_names: list[str]) -> None:
    """If `up` fails half-way (here: the ruleset cannot be rendered), everything it made is
    removed again and the error reaches the caller."""
    name = unique_name()
    sandbox_names.append(name)

    def broken(inventory: Inventory, **kwargs: Any) -> str:
        raise RuntimeError("renderer exploded")

    with pytest.raises(RuntimeError, match="renderer exploded"):
        Sandbox.up(inventory_of(QUICKSTART_PODS), name=name, renderer=broken)
    assert _owned(name) == set()
    assert not (RUN_DIR / name).exists()
