"""The one storage protocol the API server needs, modelled on etcd's revisioned key space.

Every write bumps one store-wide revision; an object's `resourceVersion` is the revision of its
last write, as on a real etcd-backed API server. Keys are strings such as
`/registry/pods/<namespace>/<name>`; values are opaque bytes (the server stores JSON). SQLite
(`store.sqlite`) and etcd (`store.etcd`) both implement it, so the server does not know which it
talks to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Conflict",
    "KeyExists",
    "KeyMissing",
    "RevisionCompacted",
    "Store",
    "StoredValue",
    "WatchEvent",
]


@dataclass(frozen=True, slots=True)
class StoredValue:
    """One key with its value and the revision of its last write (= resourceVersion)."""

    key: str
    value: bytes
    revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change under a watched prefix; `type` is ADDED, MODIFIED or DELETED.

    For DELETED, `value` is the last value before deletion and `revision` the deleting revision.
    """

    type: str
    key: str
    value: bytes
    revision: int


class StoreError(Exception):
    """Base of the store's expected failures (the server maps each to an HTTP status)."""


class KeyExists(StoreError):  # noqa: N818 - names fixed by the shared interface
    """create() on a key that already exists (HTTP 409 AlreadyExists)."""


class KeyMissing(StoreError):  # noqa: N818 - names fixed by the shared interface
    """update()/delete() on a key that does not exist (HTTP 404 NotFound)."""


class Conflict(StoreError):  # noqa: N818 - names fixed by the shared interface
    """The key's revision is not the expected one (HTTP 409 Conflict)."""


class RevisionCompacted(StoreError):  # noqa: N818 - names fixed by the shared interface
    """A watch asked for a revision older than the store still remembers (HTTP 410 Gone)."""


class Store(Protocol):
    """A revisioned key-value store. All revisions are > 0 and strictly increase per write."""

    async def get(self, key: str) -> StoredValue | None:
        """The key's value, or None."""
        ...

    async def list(
        self, prefix: str, *, limit: int = 0, after_key: str = ""
    ) -> tuple[list[StoredValue], int]:
        """Keys under prefix, sorted by key, strictly after `after_key`, at most `limit` (0 = all);
        and the store revision the list was read at (consistent with the items)."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Store a new key; its revision. Raises KeyExists."""
        ...

    async def update(self, key: str, value: bytes, *, expected: int | None) -> int:
        """Replace a key's value (only if its revision is `expected`, when given); the new
        revision. Raises KeyMissing, Conflict."""
        ...

    async def delete(self, key: str, *, expected: int | None = None) -> StoredValue:
        """Remove a key (only if its revision is `expected`, when given); returns the removed
        value with the deleting revision. Raises KeyMissing, Conflict."""
        ...

    def watch(self, prefix: str, *, after: int) -> AsyncIterator[WatchEvent]:
        """Events under prefix with revision > `after`, in revision order, forever (until the
        consumer stops or the store closes). Raises RevisionCompacted (on first iteration) when
        `after` is older than the store still remembers."""
        ...

    async def revision(self) -> int:
        """The store's current revision (the last write's)."""
        ...

    async def close(self) -> None:
        """Release connections and end all watches."""
        ...
