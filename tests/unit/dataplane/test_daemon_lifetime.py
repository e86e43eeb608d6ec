"""A daemon started by ``_daemon.daemonize`` stops once the directory holding its log is
removed, so an interrupted launcher cannot leave a server running without its state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

_LAUNCH = """
import sys, time
from kubefence.dataplane.netns._daemon import Stopped, daemonize, stop_on_sigterm

def serve(ready):
    stop_on_sigterm()
    import os
    os.write(ready, f"ready {os.getpid()} 0\\n".encode())
    os.close(ready)
    try:
        while True:
            time.sleep(0.1)
    except Stopped:
        open(sys.argv[2], "w").write("stopped")

raise SystemExit(daemonize(sys.argv[1], serve, what="test daemon"))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_daemon_stops_when_its_state_directory_is_removed(tmp_path: Path) -> None:
    """The launcher exits after ``ready <pid>``; the daemon keeps running while its directory
    exists and stops through its SIGTERM path (not killed) within a few seconds of removal."""
    state = tmp_path / "state"
    state.mkdir()
    marker = tmp_path / "stopped"
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCH, str(state / "server.log"), str(marker)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    pid = int(done.stdout.split()[1])
    try:
        time.sleep(1.5)
        assert _alive(pid), "the daemon must outlive its launcher while its state exists"
        shutil.rmtree(state)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
        assert marker.read_text() == "stopped"
    finally:
        if _alive(pid):
            os.kill(pid, 9)
