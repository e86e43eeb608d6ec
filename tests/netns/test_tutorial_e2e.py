"""``kubefence tutorial`` end to end on real packets, as root: the final table and the cleanup.

Named ``test_tutorial_e2e`` (not ``test_tutorial``) because pytest's default import mode needs
unique test-module basenames and ``tests/unit/cli/test_tutorial.py`` holds the unit tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from kubefence.api import Inventory, IPAddress
from kubefence.cli._tutorial import STEPS
from kubefence.cli.main import main
from kubefence.dataplane.netns import RUN_DIR, down
from kubefence.semantics import Settings

pytestmark = pytest.mark.netns

NAME = f"tut{os.getpid()}"  # unique per test process: several suites may run at once


def _netns() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def _processes_of(name: str) -> set[int]:
    """Pids whose command line mentions the sandbox's state directory (its server) or one of
    its namespaces (a curl run through ``ip netns exec``)."""
    markers = (str(RUN_DIR / name), f"kf-{name}-")
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(marker in cmdline for marker in markers):
            pids.add(int(entry.name))
    return pids


@pytest.fixture
def clean_host() -> Iterator[set[str]]:
    """The namespaces present before the test; afterwards, the sandbox is removed regardless."""
    down(NAME)
    before = _netns()
    yield before
    down(NAME)


def _assert_nothing_left(before: set[str]) -> None:
    # Other suites may create and remove their own sandboxes meanwhile: compare ours only.
    ours = f"kf-{NAME}-"
    assert {ns for ns in _netns() if ns.startswith(ours)} == set()
    assert {ns for ns in before if ns.startswith(ours)} == set()
    assert not (RUN_DIR / NAME).exists()
    assert _processes_of(NAME) == set()


def _table(out: str) -> list[list[str]]:
    lines = out.split("\nSummary\n", 1)[1].splitlines()
    assert lines[0].split() == ["STEP", "CONNECTION", "EXPECTED", "OBSERVED"]
    rows = []
    for line in lines[1:]:
        cells = line.split()
        if len(cells) >= 6 and cells[2] == "->":
            rows.append([cells[0], " ".join(cells[1:4]), cells[4], cells[5]])
    return rows


def test_s03_s08_s11_s13_full_walkthrough_on_real_packets_matches_and_leaves_nothing(
    clean_host: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every step's curl/DNS result equals the prediction, exit 0, and no namespace, process or
    state file of the sandbox remains."""
    started = time.monotonic()
    code = main(["tutorial", "--on", "sandbox", "--name", NAME, "--no-color"])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    rows = _table(out)
    expected = [
        [step.label, check.connection, "allowed" if check.teaches else "denied"]
        for step in STEPS
        for check in step.checks
    ]
    assert [row[:3] for row in rows] == expected
    assert [row[3] for row in rows] == [row[2] for row in expected]
    assert "NOT ENFORCED" not in out
    assert "<title>Welcome to nginx!</title>" in out
    assert "curl: (28) Connection timed out after" in out
    assert ";; connection timed out; no servers could be reached" in out
    assert elapsed < 60
    _assert_nothing_left(clean_host)


def _accept_everything(
    inventory: Inventory,
    *,
    addresses: Mapping[str, tuple[IPAddress, ...]],
    settings: Settings,
    node_addresses: tuple[IPAddress, ...],
) -> str:
    """A data plane that ignores every policy: what a non-enforcing network plugin does."""
    return (
        "table inet kubefence\ndelete table inet kubefence\n"
        "table inet kubefence {\n chain forward {\n  type filter hook forward priority 0; "
        "policy accept;\n }\n}\n"
    )


def test_observed_difference_from_prediction_exits_1_and_is_marked(
    clean_host: set[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a data plane that enforces nothing, step 2's denials are observed as allowed: exit 1,
    the rows are marked, and the sandbox is still removed."""
    from kubefence.cli import _tutorial

    original = _tutorial.NetnsObserver.__init__

    def non_enforcing(self: _tutorial.NetnsObserver, name: str, **kwargs: object) -> None:
        original(self, name, renderer=_accept_everything)

    monkeypatch.setattr(_tutorial.NetnsObserver, "__init__", non_enforcing)
    assert main(["tutorial", "--on", "sandbox", "--name", NAME, "--no-color", "--step", "2"]) == 1
    out = capsys.readouterr().out
    rows = _table(out)
    assert [row[2:] for row in rows] == [["denied", "allowed"], ["denied", "allowed"]]
    assert out.count("✗ MISMATCH") == 4  # under each check and in the table
    _assert_nothing_left(clean_host)


def test_keep_leaves_the_sandbox_up_to_explore_and_a_rerun_replaces_it(
    clean_host: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--keep`` prints how to explore; the printed exec command really fetches the page."""
    assert (
        main(["tutorial", "--on", "sandbox", "--name", NAME, "--no-color", "--step", "1", "--keep"])
        == 0
    )
    out = capsys.readouterr().out
    command = next(line.strip() for line in out.splitlines() if "sandbox exec" in line)
    assert f"kf-{NAME}-node" in _netns()
    argv = command.split()[1:]  # drop "kubefence"
    done = subprocess.run(
        [sys.executable, "-m", "kubefence", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Welcome to nginx!" in done.stdout
    assert main(["tutorial", "--on", "sandbox", "--name", NAME, "--no-color", "--step", "1"]) == 0
    assert "Replacing the sandbox" in capsys.readouterr().out
    _assert_nothing_left(clean_host)


@pytest.mark.parametrize(
    ("sig", "delay"),
    [(signal.SIGINT, 0.0), (signal.SIGTERM, 0.5), (signal.SIGINT, 3.0)],
    ids=["ctrl-c-while-coming-up", "sigterm-early", "ctrl-c-mid-steps"],
)
def test_interrupted_run_still_removes_the_sandbox(
    clean_host: set[str], sig: signal.Signals, delay: float
) -> None:
    """Ctrl-C (or SIGTERM) at any point of the run takes the sandbox down before exiting."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubefence",
            "tutorial",
            "--on",
            "sandbox",
            "--name",
            NAME,
            "--no-color",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while f"kf-{NAME}-node" not in _netns():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sandbox never came up"
            time.sleep(0.05)
        time.sleep(delay)  # while the sandbox comes up, or somewhere inside the steps
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "interrupted" in err
    _assert_nothing_left(clean_host)
