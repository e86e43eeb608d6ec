"""When the store fails under a running server (etcd stopped), requests get a Status, not a 500.

The etcd store raises ``EtcdStoreError`` when etcd cannot be reached; the server must answer
503 ServiceUnavailable with a message saying so (no traceback, no generic "internal error"),
keep serving what needs no store (``/healthz``), and kubectl must show the message.

Outside CI these tests skip when ``etcd`` is missing; in CI that is a failure.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.control.conftest import Cluster, require_etcd, start, state_restored

from kubefence.control.cluster import cluster_down

pytestmark = pytest.mark.etcd


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_etcd()
    with state_restored():
        try:
            yield start(tmp_path, "gone", store="etcd")
        finally:
            cluster_down("gone")


def _stop_etcd(cluster: Cluster) -> None:
    pid = cluster.info.etcd_pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # etcd runs in its own session, so it is not our child: wait for /proc to drop it
        if not Path(f"/proc/{pid}").exists() or "Z" in _state(pid):
            return
        time.sleep(0.05)
    raise AssertionError("etcd did not stop")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_requests_get_503_with_a_message_when_etcd_is_gone(cluster: Cluster) -> None:
    assert cluster.request("GET", "/api/v1/namespaces/default/pods")[0] == 200
    _stop_etcd(cluster)

    code, body = cluster.request("GET", "/api/v1/namespaces/default/pods")
    assert code == 503, body
    assert body["kind"] == "Status"
    assert body["reason"] == "ServiceUnavailable"
    assert body["message"].startswith("the storage backend failed: etcd")
    assert "Traceback" not in body["message"]

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}  # fmt: skip
    code, body = cluster.request("POST", "/api/v1/namespaces/default/pods", pod)
    assert (code, body["reason"]) == (503, "ServiceUnavailable"), body

    assert cluster.request("GET", "/healthz")[0] == 200  # what needs no store still answers

    shown = cluster.kubectl("get", "pods", "-n", "default", "--request-timeout=20s", check=False)
    assert shown.returncode != 0
    assert "the storage backend failed: etcd" in shown.stderr, shown.stderr
    assert "Traceback" not in (cluster.info.directory / "server.log").read_text()
