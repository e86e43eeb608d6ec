"""The default store: one SQLite file in WAL mode, one transaction per write.

Why SQLite: a single-process API server needs durability across crashes (SIGKILL in the middle
of concurrent writes must lose no acknowledged write) without running another daemon. WAL with
`synchronous=NORMAL` survives a process crash (a commit is in the WAL before we acknowledge it);
`durable=True` selects `synchronous=FULL` for power-loss durability at a cost per write.

Revisions come from a counter row in the same transaction as the write, so they are monotonic
across restarts even when the newest keys were deleted. With `synchronous=NORMAL` a commit does
not wait for the disk, so statements run inline on the event loop's thread (tens of
microseconds; a hop to a worker thread costs more than the statement); with `durable=True` every
commit fsyncs, so all database work runs on one worker thread instead. Either way one thread
owns the connection and writes are serialised without locks.

Watch: a bounded in-memory log of recent events. A watch from a revision older than the log
(also: any revision before this process started) raises RevisionCompacted, which the server
turns into 410 Gone; clients then re-list, exactly as with a compacted etcd.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from kubefence.control.store.base import (
    Conflict,
    KeyExists,
    KeyMissing,
    RevisionCompacted,
    StoredValue,
    WatchEvent,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
"""

_CLOSED = WatchEvent(type="", key="", value=b"", revision=-1)


def _prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with prefix."""
    return prefix + "\U0010ffff"


class SqliteStore:
    """A `Store` on one SQLite file; create with `await SqliteStore.open(path)`."""

    def __init__(self, path: Path, *, history: int = 100_000, durable: bool = False) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kf-sqlite")
        self._db: sqlite3.Connection | None = None
        self._durable = durable
        self._log: deque[WatchEvent] = deque(maxlen=history)
        self._log_lock = threading.Lock()
        self._floor = 0  # watches must start at or after this revision
        self._revision = 0  # the last committed revision (read at open)
        self._watchers: set[asyncio.Queue[WatchEvent]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, path: Path, *, history: int = 100_000, durable: bool = False
    ) -> SqliteStore:
        store = cls(path, history=history, durable=durable)
        store._loop = asyncio.get_running_loop()
        store._floor = await store._run(store._connect)
        return store

    # -- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> int:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
        db.executescript(_SCHEMA)
        self._db = db
        self._revision = self._current()
        return self._revision

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("store is closed")
        if not self._durable and self._db is not None:
            return fn()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)

    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def _current(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE name='revision'").fetchone()
        return int(row[0])

    def _write(self, fn: Callable[[sqlite3.Connection, int], WatchEvent]) -> WatchEvent:
        """Run fn(db, new_revision) in one IMMEDIATE transaction; publish its event."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        revision = self._revision + 1  # this connection is the file's only writer
        try:
            db.execute("UPDATE meta SET value = ? WHERE name='revision'", (revision,))
            event = fn(db, revision)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._revision = revision
        with self._log_lock:
            self._log.append(event)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._publish, event)  # FIFO: events stay in order
        return event

    def _publish(self, event: WatchEvent) -> None:
        for queue in self._watchers:
            queue.put_nowait(event)

    # -- the Store protocol -----------------------------------------------------------------

    async def get(self, key: str) -> StoredValue | None:
        def run() -> StoredValue | None:
            row = (
                self._conn()
                .execute("SELECT value, revision FROM kv WHERE key = ?", (key,))
                .fetchone()
            )
            return None if row is None else StoredValue(key, bytes(row[0]), int(row[1]))

        return await self._run(run)

    async def list(
        self, prefix: str, *, limit: int = 0, after_key: str = ""
    ) -> tuple[list[StoredValue], int]:
        def run() -> tuple[list[StoredValue], int]:
            db = self._conn()
            db.execute("BEGIN")
            try:
                rows = db.execute(
                    "SELECT key, value, revision FROM kv WHERE key >= ? AND key < ? AND key > ?"
                    " ORDER BY key LIMIT ?",
                    (prefix, _prefix_end(prefix), after_key, limit if limit > 0 else -1),
                ).fetchall()
                revision = self._current()
            finally:
                db.execute("COMMIT")
            return [StoredValue(k, bytes(v), int(r)) for k, v, r in rows], revision

        return await self._run(run)

    async def create(self, key: str, value: bytes) -> int:
        def op(db: sqlite3.Connection, revision: int) -> WatchEvent:
            try:
                db.execute(
                    "INSERT INTO kv (key, value, revision) VALUES (?, ?, ?)",
                    (key, value, revision),
                )
            except sqlite3.IntegrityError:
                raise KeyExists(key) from None
            return WatchEvent("ADDED", key, value, revision)

        return (await self._run(lambda: self._write(op))).revision

    async def update(self, key: str, value: bytes, *, expected: int | None) -> int:
        def op(db: sqlite3.Connection, revision: int) -> WatchEvent:
            row = db.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise KeyMissing(key)
            if expected is not None and int(row[0]) != expected:
                raise Conflict(key)
            db.execute(
                "UPDATE kv SET value = ?, revision = ? WHERE key = ?", (value, revision, key)
            )
            return WatchEvent("MODIFIED", key, value, revision)

        return (await self._run(lambda: self._write(op))).revision

    async def delete(self, key: str, *, expected: int | None = None) -> StoredValue:
        def op(db: sqlite3.Connection, revision: int) -> WatchEvent:
            row = db.execute("SELECT value, revision FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise KeyMissing(key)
            if expected is not None and int(row[1]) != expected:
                raise Conflict(key)
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return WatchEvent("DELETED", key, bytes(row[0]), revision)

        event = await self._run(lambda: self._write(op))
        return StoredValue(event.key, event.value, event.revision)

    async def watch(self, prefix: str, *, after: int) -> AsyncIterator[WatchEvent]:
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        with self._log_lock:
            floor = self._floor
            if self._log and len(self._log) == self._log.maxlen:
                floor = self._log[0].revision - 1  # older events fell out of the log
            if after < floor:
                raise RevisionCompacted(f"revision {after} is older than {floor}")
            backlog = [e for e in self._log if e.revision > after]
            self._watchers.add(queue)
        last = after
        try:
            for event in backlog:
                if event.key.startswith(prefix):
                    yield event
                last = event.revision
            while True:
                event = await queue.get()
                if event is _CLOSED:
                    return
                if event.revision <= last:
                    continue
                last = event.revision
                if event.key.startswith(prefix):
                    yield event
        finally:
            self._watchers.discard(queue)

    async def revision(self) -> int:
        return await self._run(self._current)

    async def close(self) -> None:
        if self._closed:
            return
        for queue in self._watchers:
            queue.put_nowait(_CLOSED)
        db = self._db
        if db is not None and self._durable:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        elif db is not None:
            db.close()
        self._closed = True
        self._executor.shutdown(wait=True)
