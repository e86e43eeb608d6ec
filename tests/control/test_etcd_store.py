"""The etcd store and process against a real etcd 3.4 with mutual TLS.

Outside CI these tests skip when ``etcd`` is not installed (Debian: ``etcd-server``); in CI
(``CI=true`` or ``KUBEFENCE_REQUIRE_NETNS=1``) a missing etcd is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from tests.control.conftest import require_etcd

from kubefence.control.etcd_process import (
    EtcdError,
    EtcdProcess,
    client_ssl_context,
    etcd_running,
    start_etcd,
    stop_etcd,
)
from kubefence.control.pki import ClusterPKI, ensure_pki
from kubefence.control.store.base import (
    Conflict,
    KeyExists,
    KeyMissing,
    RevisionCompacted,
    WatchEvent,
)
from kubefence.control.store.etcd import EtcdStore, EtcdStoreError

pytestmark = pytest.mark.etcd
T = TypeVar("T")
_PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    require_etcd()
    return ensure_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def etcd(pki: ClusterPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    state = tmp_path_factory.mktemp("etcd")
    proc = start_etcd(pki, state / "data", log_path=state / "etcd.log", pid_file=state / "pid")
    try:
        yield proc
    finally:
        stop_etcd(proc.data_dir, pid_file=state / "pid")
    assert not etcd_running(proc.pid, proc.data_dir)


def run(pki: ClusterPKI, etcd: EtcdProcess, body: Callable[[EtcdStore, str], Awaitable[T]]) -> T:
    """Run ``body(store, prefix)`` on a fresh store with a key prefix no other test uses."""

    async def main() -> T:
        store = await EtcdStore.open(etcd.client_url, client_ssl_context(pki))
        try:
            return await body(store, f"/t{os.getpid()}-{next(_PREFIXES)}/")
        finally:
            await store.close()

    return asyncio.run(main())


async def take(events: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    async with asyncio.timeout(10):
        async for event in events:
            out.append(event)
            if len(out) == n:
                break
    return out


# -- the process --------------------------------------------------------------------------------


def test_client_without_certificate_is_refused(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    no_cert = ssl.create_default_context(cafile=str(pki.etcd_ca_cert))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{etcd.client_url}/health", context=no_cert, timeout=5).read()


def test_client_with_a_cluster_ca_certificate_is_refused(
    pki: ClusterPKI, etcd: EtcdProcess
) -> None:
    """The admin's certificate is valid for the API server, not for etcd (separate CA)."""
    ctx = ssl.create_default_context(cafile=str(pki.etcd_ca_cert))
    ctx.load_cert_chain(pki.admin_cert, pki.admin_key)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"{etcd.client_url}/health", context=ctx, timeout=5).read()


def test_client_certificate_is_accepted(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    ctx = client_ssl_context(pki)
    with urllib.request.urlopen(f"{etcd.client_url}/health", context=ctx, timeout=5) as resp:
        assert b'"health":"true"' in resp.read().replace(b" ", b"")


def test_listens_on_loopback_only(etcd: EtcdProcess) -> None:
    assert etcd.client_url.startswith("https://127.0.0.1:")
    assert etcd.peer_url.startswith("https://127.0.0.1:")
    assert etcd_running(etcd.pid, etcd.data_dir)
    assert (etcd.data_dir.stat().st_mode & 0o777) == 0o700


def test_restart_keeps_data_and_revisions(pki: ClusterPKI, tmp_path: Path) -> None:
    data, log, pid_file = tmp_path / "data", tmp_path / "etcd.log", tmp_path / "etcd.pid"

    async def write(proc: EtcdProcess) -> int:
        store = await EtcdStore.open(proc.client_url, client_ssl_context(pki))
        try:
            await store.create("/r/a", b"1")
            return await store.update("/r/a", b"2", expected=None)
        finally:
            await store.close()

    async def read(proc: EtcdProcess) -> tuple[bytes, int, int]:
        store = await EtcdStore.open(proc.client_url, client_ssl_context(pki))
        try:
            got = await store.get("/r/a")
            assert got is not None
            return got.value, got.revision, await store.create("/r/b", b"3")
        finally:
            await store.close()

    first = start_etcd(pki, data, log_path=log, pid_file=pid_file)
    try:
        written = asyncio.run(write(first))
    finally:
        assert stop_etcd(data, pid_file=pid_file)
    assert not pid_file.exists()
    second = start_etcd(pki, data, log_path=log, pid_file=pid_file)
    try:
        value, revision, next_revision = asyncio.run(read(second))
    finally:
        stop_etcd(data, pid_file=pid_file)
    assert (value, revision) == (b"2", written)
    assert next_revision > written


def test_stop_never_signals_a_foreign_pid(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this pytest process is no etcd
    assert not stop_etcd(tmp_path / "data", pid_file=pid_file)
    assert not pid_file.exists()


def test_start_failure_reports_the_log(pki: ClusterPKI, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "member").write_text("not a directory")  # etcd cannot use this data dir
    with pytest.raises(EtcdError, match="etcd"):
        start_etcd(pki, data, log_path=tmp_path / "etcd.log", timeout=5)


# -- the Store protocol -------------------------------------------------------------------------


def test_create_get_update_delete(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        r1 = await store.create(f"{p}a", b"one")
        got = await store.get(f"{p}a")
        assert got is not None
        assert (got.key, got.value, got.revision) == (f"{p}a", b"one", r1)
        with pytest.raises(KeyExists):
            await store.create(f"{p}a", b"again")
        r2 = await store.update(f"{p}a", b"two", expected=r1)
        assert r2 > r1
        with pytest.raises(Conflict):
            await store.update(f"{p}a", b"stale", expected=r1)
        r3 = await store.update(f"{p}a", b"three", expected=None)
        assert r3 > r2
        with pytest.raises(KeyMissing):
            await store.update(f"{p}missing", b"x", expected=None)
        with pytest.raises(KeyMissing):
            await store.update(f"{p}missing", b"x", expected=5)
        with pytest.raises(Conflict):
            await store.delete(f"{p}a", expected=r2)
        gone = await store.delete(f"{p}a", expected=r3)
        assert gone.value == b"three"
        assert gone.revision > r3
        assert await store.get(f"{p}a") is None
        with pytest.raises(KeyMissing):
            await store.delete(f"{p}a")
        assert await store.revision() == gone.revision

    run(pki, etcd, body)


def test_list_is_sorted_paged_and_prefix_bound(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        for name in ("c", "a", "b", "d"):
            await store.create(f"{p}items/{name}", name.encode())
        await store.create(f"{p}itemsx", b"outside")
        await store.create(f"{p}item", b"outside")
        items, revision = await store.list(f"{p}items/")
        assert [i.value for i in items] == [b"a", b"b", b"c", b"d"]
        assert revision == await store.revision()
        page, _ = await store.list(f"{p}items/", limit=2)
        assert [i.value for i in page] == [b"a", b"b"]
        rest, _ = await store.list(f"{p}items/", limit=2, after_key=page[-1].key)
        assert [i.value for i in rest] == [b"c", b"d"]
        empty, _ = await store.list(f"{p}items/", after_key=rest[-1].key)
        assert empty == []
        assert all(i.revision > 0 for i in items)

    run(pki, etcd, body)


def test_value_of_three_mebibytes(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    big = bytes(range(256)) * (3 * 1024 * 4)  # 3 MiB

    async def body(store: EtcdStore, p: str) -> None:
        await store.create(f"{p}big", big)
        got = await store.get(f"{p}big")
        assert got is not None
        assert got.value == big

    run(pki, etcd, body)


def test_concurrent_creates_get_distinct_increasing_revisions(
    pki: ClusterPKI, etcd: EtcdProcess
) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        before = await store.revision()
        revisions = await asyncio.gather(*(store.create(f"{p}k{i}", b"v") for i in range(200)))
        assert len(set(revisions)) == 200
        assert min(revisions) > before
        items, at = await store.list(p)
        assert len(items) == 200
        assert at >= max(revisions)

    run(pki, etcd, body)


def test_unicode_keys(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        await store.create(f"{p}é/ü", b"x")
        items, _ = await store.list(f"{p}é/")
        assert [i.key for i in items] == [f"{p}é/ü"]

    run(pki, etcd, body)


# -- watch --------------------------------------------------------------------------------------


def test_watch_replays_then_follows_with_types_and_prefix(
    pki: ClusterPKI, etcd: EtcdProcess
) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        start = await store.revision()
        r1 = await store.create(f"{p}w/a", b"1")
        await store.create(f"{p}other", b"not watched")
        events = store.watch(f"{p}w/", after=start)
        consumer = asyncio.create_task(take(events, 4))
        await asyncio.sleep(0.2)
        r2 = await store.update(f"{p}w/a", b"2", expected=r1)
        await store.create(f"{p}w/b", b"3")
        gone = await store.delete(f"{p}w/a")
        got = await consumer
        assert [(e.type, e.key, e.value) for e in got] == [
            ("ADDED", f"{p}w/a", b"1"),
            ("MODIFIED", f"{p}w/a", b"2"),
            ("ADDED", f"{p}w/b", b"3"),
            ("DELETED", f"{p}w/a", b"2"),
        ]
        assert got[1].revision == r2
        assert got[3].revision == gone.revision
        assert [e.revision for e in got] == sorted(e.revision for e in got)

    run(pki, etcd, body)


def test_watch_resumes_after_a_revision(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        r1 = await store.create(f"{p}a", b"1")
        r2 = await store.create(f"{p}b", b"2")
        got = await take(store.watch(p, after=r1), 1)
        assert [(e.key, e.revision) for e in got] == [(f"{p}b", r2)]

    run(pki, etcd, body)


def test_watch_from_a_compacted_revision_is_gone(pki: ClusterPKI, tmp_path: Path) -> None:
    """Own etcd: compaction is cluster-wide and would break other tests' watches."""
    proc = start_etcd(pki, tmp_path / "data", log_path=tmp_path / "etcd.log")
    try:

        async def body(store: EtcdStore, p: str) -> None:
            r1 = await store.create(f"{p}a", b"1")
            await store.update(f"{p}a", b"2", expected=r1)
            r3 = await store.update(f"{p}a", b"3", expected=None)
            await store.compact(r3)
            with pytest.raises(RevisionCompacted):
                await take(store.watch(p, after=r1), 1)
            current = await take(store.watch(p, after=r3 - 1), 1)
            assert [e.value for e in current] == [b"3"]

        run(pki, proc, body)
    finally:
        stop_etcd(proc.data_dir, pid=proc.pid)


def test_close_ends_watches(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        ended = asyncio.Event()

        async def consume() -> None:
            async for _ in store.watch(p, after=await store.revision()):
                pass
            ended.set()

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await store.close()
        await asyncio.wait_for(task, 5)
        assert ended.is_set()

    run(pki, etcd, body)


def test_unreachable_etcd_is_a_store_error(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def body(store: EtcdStore, p: str) -> None:
        other = EtcdStore("https://127.0.0.1:9", store._session)  # a port nothing listens on
        with pytest.raises(EtcdStoreError):
            await other.get(f"{p}x")

    run(pki, etcd, body)


def test_open_with_pem_files(pki: ClusterPKI, etcd: EtcdProcess) -> None:
    async def main() -> int:
        store = await EtcdStore.open(
            etcd.client_url,
            ca_cert=pki.etcd_ca_cert,
            client_cert=pki.etcd_client_cert,
            client_key=pki.etcd_client_key,
        )
        try:
            return await store.revision()
        finally:
            await store.close()

    assert asyncio.run(main()) > 0


# -- crash --------------------------------------------------------------------------------------


def test_sigkill_during_concurrent_writes_loses_no_acknowledged_write(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    data, log = tmp_path / "data", tmp_path / "etcd.log"
    acked: dict[str, int] = {}

    async def write_until_killed(proc: EtcdProcess) -> int:
        store = await EtcdStore.open(proc.client_url, client_ssl_context(pki))
        gate = asyncio.Semaphore(10)
        failed = 0

        async def one(i: int) -> None:
            nonlocal failed
            async with gate:
                try:
                    acked[f"/crash/{i:04d}"] = await store.create(f"/crash/{i:04d}", b"v" * 200)
                except EtcdStoreError:
                    failed += 1
                if len(acked) == 300:
                    os.kill(proc.pid, signal.SIGKILL)

        try:
            await asyncio.gather(*(one(i) for i in range(1000)))
        finally:
            await store.close()
        return failed

    async def check(proc: EtcdProcess) -> None:
        store = await EtcdStore.open(proc.client_url, client_ssl_context(pki))
        try:
            items, at = await store.list("/crash/")
            stored = {i.key: i.revision for i in items}
            assert all(stored.get(k) == r for k, r in acked.items()), (
                "an acknowledged write is lost"
            )
            assert at >= max(acked.values())
            assert await store.create("/crash/after", b"x") > at
            resumed = await take(store.watch("/crash/", after=max(acked.values()) - 1), 1)
            assert resumed[0].revision == max(acked.values())
        finally:
            await store.close()

    first = start_etcd(pki, data, log_path=log)
    try:
        failed = asyncio.run(write_until_killed(first))
    finally:
        stop_etcd(data, pid=first.pid)
    assert len(acked) >= 300
    assert failed > 0  # the kill really happened mid-stream
    assert len(set(acked.values())) == len(acked)
    second = start_etcd(pki, data, log_path=log)
    try:
        asyncio.run(check(second))
    finally:
        stop_etcd(data, pid=second.pid)


def test_start_again_reuses_the_running_etcd(pki: ClusterPKI, tmp_path: Path) -> None:
    """After an API server crash etcd still runs; starting it again must not start a second."""
    data, log, pid_file = tmp_path / "data", tmp_path / "etcd.log", tmp_path / "etcd.pid"
    first = start_etcd(pki, data, log_path=log, pid_file=pid_file)
    try:
        again = start_etcd(pki, data, log_path=log, pid_file=pid_file)
        assert (again.pid, again.client_url, again.peer_url) == (
            first.pid, first.client_url, first.peer_url,
        )  # fmt: skip
    finally:
        assert stop_etcd(data, pid_file=pid_file)
    assert not etcd_running(first.pid, data)
    pid_file.write_text(f"{first.pid}\n")  # stale: that etcd is gone
    third = start_etcd(pki, data, log_path=log, pid_file=pid_file)
    try:
        assert third.pid != first.pid
    finally:
        stop_etcd(data, pid_file=pid_file)
