"""The SQLite store keeps the Store contract: revisions, conflicts, restart, watch and 410."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubefence.control.store import Conflict, KeyExists, KeyMissing, RevisionCompacted
from kubefence.control.store.sqlite import SqliteStore


def test_create_get_update_delete_and_revisions(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db")
        r1 = await store.create("/a/1", b"one")
        r2 = await store.create("/a/2", b"two")
        assert 0 < r1 < r2
        with pytest.raises(KeyExists):
            await store.create("/a/1", b"again")
        got = await store.get("/a/1")
        assert got is not None
        assert (got.value, got.revision) == (b"one", r1)
        with pytest.raises(Conflict):
            await store.update("/a/1", b"x", expected=r1 + 100)
        r3 = await store.update("/a/1", b"uno", expected=r1)
        assert r3 > r2
        with pytest.raises(KeyMissing):
            await store.update("/a/9", b"x", expected=None)
        removed = await store.delete("/a/2")
        assert removed.value == b"two"
        assert removed.revision > r3
        with pytest.raises(KeyMissing):
            await store.delete("/a/2")
        assert await store.get("/a/2") is None
        assert await store.revision() == removed.revision
        await store.close()

    asyncio.run(body())


def test_list_is_sorted_paged_and_prefix_bound(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db")
        for name in ("c", "a", "b"):
            await store.create(f"/p/{name}", name.encode())
        await store.create("/pq/z", b"z")
        await store.create("/o", b"o")
        items, rev = await store.list("/p/")
        assert [i.key for i in items] == ["/p/a", "/p/b", "/p/c"]
        assert rev == await store.revision()
        page, _ = await store.list("/p/", limit=2)
        assert [i.key for i in page] == ["/p/a", "/p/b"]
        rest, _ = await store.list("/p/", limit=2, after_key="/p/b")
        assert [i.key for i in rest] == ["/p/c"]
        await store.close()

    asyncio.run(body())


def test_revisions_stay_monotonic_across_restart_after_deletes(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db")
        await store.create("/k", b"v")
        last = (await store.delete("/k")).revision
        await store.close()
        again = await SqliteStore.open(tmp_path / "db")
        assert await again.revision() == last
        assert await again.create("/k", b"v2") == last + 1
        await again.close()

    asyncio.run(body())


def test_watch_replays_history_then_follows_live_writes(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db")
        r1 = await store.create("/w/a", b"1")
        await store.create("/x/ignored", b"-")
        seen: list[tuple[str, str, int]] = []

        async def consume() -> None:
            async for event in store.watch("/w/", after=r1 - 1):
                seen.append((event.type, event.key, event.revision))
                if event.type == "DELETED":
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        r2 = await store.update("/w/a", b"2", expected=None)
        r3 = (await store.delete("/w/a")).revision
        await asyncio.wait_for(task, 5)
        assert seen == [("ADDED", "/w/a", r1), ("MODIFIED", "/w/a", r2), ("DELETED", "/w/a", r3)]
        await store.close()

    asyncio.run(body())


def test_watch_from_before_the_log_or_the_restart_is_compacted(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db", history=2)
        for i in range(4):
            await store.create(f"/c/{i}", b"x")
        with pytest.raises(RevisionCompacted):
            async for _ in store.watch("/c/", after=0):
                pass
        await store.close()
        again = await SqliteStore.open(tmp_path / "db")
        with pytest.raises(RevisionCompacted):
            async for _ in again.watch("/c/", after=1):
                pass
        # Resuming exactly at the current revision works after a restart.
        current = await again.revision()
        events = again.watch("/c/", after=current)
        created = await again.create("/c/new", b"y")
        event = await asyncio.wait_for(anext(aiter(events)), 5)
        assert event.revision == created
        await again.close()

    asyncio.run(body())


def test_close_ends_watches(tmp_path: Path) -> None:
    async def body() -> None:
        store = await SqliteStore.open(tmp_path / "db")
        ended = asyncio.Event()

        async def consume() -> None:
            async for _ in store.watch("/", after=0):
                pass
            ended.set()

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        await store.close()
        await asyncio.wait_for(task, 5)
        assert ended.is_set()

    asyncio.run(body())
