"""Key-value stores behind the API server: one protocol (`base.Store`), SQLite and etcd."""

from __future__ import annotations

from kubefence.control.store.base import (
    Conflict,
    KeyExists,
    KeyMissing,
    RevisionCompacted,
    Store,
    StoredValue,
    StoreError,
    WatchEvent,
)

__all__ = [
    "Conflict",
    "KeyExists",
    "KeyMissing",
    "RevisionCompacted",
    "Store",
    "StoreError",
    "StoredValue",
    "WatchEvent",
]
