"""SIGKILL the API server in the middle of 1,000 concurrent writes: after a restart every
acknowledged write is there with its resourceVersion, versions keep increasing, and a watch from
before the crash gets 410 Expired (the client re-lists) while one from now resumes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.control.conftest import Cluster, require_etcd, start, state_restored

from kubefence.control.cluster import cluster_down, cluster_up

WRITES = 1000
CONCURRENCY = 50


async def _hammer(url: str, context: ssl.SSLContext, pid: int, kill_after: int) -> dict[str, int]:
    """Create WRITES config maps concurrently; SIGKILL the server after `kill_after` acks."""
    acked: dict[str, int] = {}
    names = iter(range(WRITES))
    connector = aiohttp.TCPConnector(ssl=context, limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in names:
                body = {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}}
                try:
                    async with session.post(
                        f"{url}/api/v1/namespaces/default/configmaps", json=body
                    ) as answer:
                        if answer.status != 201:
                            continue
                        created: dict[str, Any] = await answer.json()
                except (TimeoutError, aiohttp.ClientError, ConnectionError):
                    continue
                acked[created["metadata"]["name"]] = int(created["metadata"]["resourceVersion"])
                if len(acked) == kill_after:
                    os.kill(pid, signal.SIGKILL)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return acked


def _events(payload: Any) -> list[dict[str, Any]]:
    """Watch lines (the helper already decoded a single-line stream)."""
    if isinstance(payload, dict):
        return [payload]
    return [json.loads(line) for line in str(payload).splitlines() if line]


def _check_after_restart(cluster: Cluster, acked: dict[str, int], store: str) -> None:
    code, listed = cluster.request("GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200
    found = {
        item["metadata"]["name"]: int(item["metadata"]["resourceVersion"])
        for item in listed["items"]
    }
    missing = {name for name in acked if name not in found}
    assert not missing, f"{len(missing)} acknowledged writes lost"
    assert all(found[name] == version for name, version in acked.items())
    newest = max(acked.values())
    code, created = cluster.request(
        "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "after-crash"}}
    )
    assert code == 201
    assert int(created["metadata"]["resourceVersion"]) > newest
    # A watch from before the crash: SQLite's event log starts at the restart, so 410 Expired as
    # an ERROR event (the client re-lists); etcd still has the history, so the watch resumes.
    code, text = cluster.request(
        "GET",
        f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={newest - 5}"
        "&timeoutSeconds=1",
    )
    first = _events(text)[0]
    if store == "sqlite":
        assert first["type"] == "ERROR"
        assert first["object"]["code"] == 410
        assert first["object"]["reason"] == "Expired"
    else:
        assert first["type"] in ("ADDED", "MODIFIED")
        assert int(first["object"]["metadata"]["resourceVersion"]) > newest - 5
    # A watch from the current list revision resumes.
    code, text = cluster.request(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
        f"&resourceVersion={listed['metadata']['resourceVersion']}",
    )
    events = _events(text)
    assert [e["object"]["metadata"]["name"] for e in events] == ["after-crash"]


def _crash_and_restart(tmp_path: Path, store: str) -> None:
    with state_restored():
        try:
            cluster = start(tmp_path, "crash", store=store)
            assert cluster.info.pid is not None
            acked = asyncio.run(
                _hammer(
                    cluster.info.url, cluster.context(), cluster.info.pid, kill_after=WRITES // 3
                )
            )
            assert len(acked) >= WRITES // 3
            assert len(acked) < WRITES, "the server was killed before all writes finished"
            info = cluster_up("crash", store=store)
            assert info.running
            assert info.pid != cluster.info.pid
            _check_after_restart(Cluster(info, cluster.kubeconfig, cluster.cache), acked, store)
        finally:
            cluster_down("crash")


@pytest.mark.slow
def test_sigkill_during_concurrent_writes_sqlite(tmp_path: Path) -> None:
    _crash_and_restart(tmp_path, "sqlite")


@pytest.mark.slow
@pytest.mark.etcd
def test_sigkill_during_concurrent_writes_etcd(tmp_path: Path) -> None:
    require_etcd()
    _crash_and_restart(tmp_path, "etcd")
