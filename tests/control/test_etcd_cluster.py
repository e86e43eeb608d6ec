"""A whole cluster on etcd (``cluster up --store etcd``): it starts, serves kubectl, survives a
SIGKILL of the API server in the middle of 1,000 concurrent writes (every acknowledged write is
there, versions keep increasing, a watch from before the crash resumes from etcd's history), and
``cluster down`` stops etcd too.

Outside CI these tests skip when ``etcd`` is missing; in CI that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.control.conftest import Cluster, require_etcd, start, state_restored
from tests.control.test_crash import WRITES, _hammer

from kubefence.control.cluster import cluster_down, cluster_up
from kubefence.control.etcd_process import etcd_running

pytestmark = pytest.mark.etcd


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    require_etcd()
    with state_restored():
        try:
            yield tmp_path
        finally:
            cluster_down("etcd")


def test_cluster_on_etcd_serves_kubectl(state: Path) -> None:
    began = time.monotonic()
    cluster = start(state, "etcd", store="etcd")
    took = time.monotonic() - began
    assert cluster.info.store == "etcd"
    assert cluster.info.etcd_pid is not None
    assert took < 15, f"cluster up --store etcd took {took:.1f}s"  # target 5 s; CI is shared
    assert cluster.kubectl("create", "namespace", "test").stdout.strip() == "namespace/test created"
    policy = (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny-all-policy, namespace: test}\nspec: {podSelector: {}}\n"
    )
    applied = cluster.kubectl("apply", "-f", "-", input=policy).stdout.strip()
    assert applied == "networkpolicy.networking.k8s.io/deny-all-policy created"
    again = cluster.kubectl("apply", "-f", "-", input=policy).stdout.strip()
    assert again == "networkpolicy.networking.k8s.io/deny-all-policy unchanged"
    got = json.loads(cluster.kubectl("get", "netpol", "-n", "test", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in got["items"]] == ["deny-all-policy"]
    assert got["items"][0]["spec"]["policyTypes"] == ["Ingress"]


def test_sigkill_of_the_api_server_on_etcd(state: Path) -> None:
    cluster = start(state, "etcd", store="etcd")
    assert cluster.info.pid is not None
    etcd_pid = cluster.info.etcd_pid
    acked = asyncio.run(
        _hammer(cluster.info.url, cluster.context(), cluster.info.pid, kill_after=WRITES // 3)
    )
    assert WRITES // 3 <= len(acked) < WRITES
    info = cluster_up("etcd", store="etcd")
    assert info.running
    assert info.pid != cluster.info.pid
    assert info.etcd_pid == etcd_pid, "the running etcd was not reused"
    after = Cluster(info, cluster.kubeconfig, cluster.cache)

    code, listed = after.request("GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200
    found = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"]) for i in listed["items"]}
    assert not [n for n in acked if n not in found], "acknowledged writes lost"
    assert all(found[name] == version for name, version in acked.items())
    newest = max(acked.values())
    code, created = after.request(
        "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "after-crash"}}
    )
    assert code == 201
    assert int(created["metadata"]["resourceVersion"]) > newest

    # etcd keeps history: a watch from before the crash resumes instead of getting 410.
    code, text = after.request(
        "GET",
        f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={newest - 1}"
        "&timeoutSeconds=1",
    )
    assert code == 200
    events = [json.loads(line) for line in str(text).splitlines() if line]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert events
    assert {e["type"] for e in events} <= {"ADDED", "MODIFIED"}
    assert versions == sorted(versions)
    assert versions[0] >= newest
    assert events[-1]["object"]["metadata"]["name"] == "after-crash"


def test_down_after_sigkill_stops_etcd_and_removes_state(state: Path) -> None:
    cluster = start(state, "etcd", store="etcd")
    assert cluster.info.pid is not None
    assert cluster.info.etcd_pid is not None
    data = cluster.info.directory / "etcd" / "data"
    assert etcd_running(cluster.info.etcd_pid, data)
    os.kill(cluster.info.pid, signal.SIGKILL)
    assert cluster_down("etcd")
    deadline = time.monotonic() + 10
    while etcd_running(cluster.info.etcd_pid, data) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not etcd_running(cluster.info.etcd_pid, data)
    assert not cluster.info.directory.exists()
