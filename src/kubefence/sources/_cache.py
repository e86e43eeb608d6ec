"""A cache of validated inventories, keyed by everything that could change the result.

Why this module exists: a CLI run on an unchanged manifest set (CI re-running a job, a user
running ``validate`` then ``matrix`` then ``explain`` on the same files) spent most of its work
re-reading YAML and re-validating it. The inventory that came out last time is stored here,
pickled, under ``$XDG_CACHE_HOME/kubefence/inventory`` (default ``~/.cache/...``), and reused
when the key matches. The key is a SHA-256 over:

* the exact bytes of every input file (stdin included) and the name it was read under (origins
  and error messages carry the name), in order;
* the default namespace (``-n``), which defaulting writes into objects;
* the code that turns bytes into an inventory: the Python version, and the size and
  modification time of ``kubefence/__init__.py`` (the version) and of every module of
  ``kubefence.api``, ``kubefence.sources`` and ``kubefence.errors`` (an edited source tree
  never meets an entry of its old self).

Only successful loads are stored: input with problems is parsed every time, so every message is
produced by the code that runs. Unpickling runs code, so an entry is read only from a directory
and a file this user owns that nobody else may write; anything unreadable, foreign or stale is
a miss (and removed when it is ours). ``KUBEFENCE_CACHE=off`` (or ``0``, ``no``, ``false``)
turns the cache off; the directory keeps at most ``MAX_ENTRIES`` entries, the least recently
used going first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import sys
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

# hashlib, pickle and tempfile (about 10 ms of imports together) are imported where used: a run
# with the cache off needs none of them, a cache hit no tempfile.

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from kubefence.api import Inventory

__all__ = ["CACHE_ENV", "MAX_ENTRIES", "InventoryCache"]

CACHE_ENV = "KUBEFENCE_CACHE"
MAX_ENTRIES = 16
_OFF = frozenset({"0", "off", "no", "false"})
_FORMAT = b"kubefence-inventory-cache 1"
_SUFFIX = ".pickle"
_TEMPORARY = ".tmp"
_ABANDONED_NS = 3600 * 10**9  # a temporary file this old was left by a run that died


# Pickling slotted dataclasses by default calls ``dataclasses.fields`` for every object, both
# ways; naming each class's fields once makes storing and loading an inventory about a quarter
# faster (10,000 pods: 0.19 -> 0.15 s to store, 0.12 -> 0.08 s to load). The state is the same:
# every field, set without running ``__init__``, as the default does.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _rebuild(cls: type, values: tuple[object, ...]) -> object:
    obj: object = object.__new__(cls)
    for name, value in zip(_field_names(cls), values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


def _dump(obj: object, handle: BinaryIO) -> None:
    import pickle

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj: object) -> Any:  # a reduce tuple, or NotImplemented
            cls = type(obj)
            if cls not in _FIELD_NAMES and (
                isinstance(obj, type)
                or "__dataclass_fields__" not in cls.__dict__
                or "__slots__" not in cls.__dict__
            ):
                return NotImplemented
            return (_rebuild, (cls, tuple([getattr(obj, n) for n in _field_names(cls)])))

    Pickler(handle, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)


def _cache_directory() -> str | None:
    """Where entries live, or None when the cache is off (XDG: a relative base is ignored)."""
    if os.environ.get(CACHE_ENV, "").strip().lower() in _OFF:
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "kubefence", "inventory")


def _code_fingerprint() -> bytes:
    """Python's version and (path, size, mtime) of every module that shapes an inventory:
    ``kubefence/__init__.py`` (the version), ``errors.py``, ``api/`` and ``sources/``."""
    sources = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(sources)
    paths = [os.path.join(package, "__init__.py"), os.path.join(package, "errors.py")]
    for directory in (os.path.join(package, "api"), sources):
        with os.scandir(directory) as entries:
            paths.extend(e.path for e in entries if e.name.endswith(".py"))
    parts = [_FORMAT, sys.version.encode()]
    for path in sorted(paths):
        info = os.stat(path)
        parts.append(f"{path}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return b"\n".join(parts)


def _private_directory(path: str) -> bool:
    """Ours, a real directory (no symlink), and writable by nobody else."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


class InventoryCache:
    """One cache directory (or none: every ``get`` misses and ``put`` does nothing)."""

    __slots__ = ("_directory",)

    def __init__(self, directory: str | None) -> None:
        self._directory = directory

    @classmethod
    def from_environment(cls) -> InventoryCache:
        return cls(_cache_directory())

    @property
    def enabled(self) -> bool:
        return self._directory is not None

    def key(self, inputs: Sequence[tuple[str, bytes]], *, default_namespace: str) -> str:
        """The entry name for these (name, bytes) inputs read with this default namespace."""
        import hashlib

        digest = hashlib.sha256(_code_fingerprint())
        digest.update(b"\0namespace\0" + default_namespace.encode())
        for name, data in inputs:
            encoded = name.encode("utf-8", "surrogateescape")
            digest.update(b"\0file\0%d\0%s\0%d\0" % (len(encoded), encoded, len(data)))
            digest.update(data)
        return digest.hexdigest()

    def get(self, key: str) -> Inventory | None:
        """The stored inventory, or None (missing, unreadable, foreign, or from other code)."""
        if self._directory is None or not _private_directory(self._directory):
            return None
        path = os.path.join(self._directory, key + _SUFFIX)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
            import pickle

            try:
                inventory = pickle.load(handle)
            except Exception:  # truncated, or classes that changed shape: a miss
                inventory = None
        from kubefence.api import Inventory

        if not isinstance(inventory, Inventory):
            self._remove(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return inventory

    def put(self, key: str, inventory: Inventory) -> None:
        """Store ``inventory`` (atomically: readers see the old entry or the whole new one).
        A cache that cannot be written is no error: the next run parses again."""
        if self._directory is None:
            return
        import tempfile

        try:
            os.makedirs(self._directory, mode=0o700, exist_ok=True)
            if not _private_directory(self._directory):
                return
            fd, temporary = tempfile.mkstemp(dir=self._directory, suffix=_TEMPORARY)
            try:
                with os.fdopen(fd, "wb") as handle:
                    _dump(inventory, handle)
                os.replace(temporary, os.path.join(self._directory, key + _SUFFIX))
            except BaseException:
                self._remove(temporary)
                raise
            self._prune()
        except Exception:  # a full disk, an object that will not pickle: no entry, no error
            return

    def _prune(self) -> None:
        assert self._directory is not None
        found: list[tuple[int, str]] = []
        abandoned: list[str] = []
        with os.scandir(self._directory) as entries:
            for entry in entries:
                if entry.name.endswith(_SUFFIX):
                    found.append((entry.stat().st_mtime_ns, entry.path))
                elif (
                    entry.name.endswith(_TEMPORARY)
                    and time.time_ns() - entry.stat().st_mtime_ns > _ABANDONED_NS
                ):
                    abandoned.append(entry.path)
        for _, path in sorted(found)[: max(len(found) - MAX_ENTRIES, 0)]:
            self._remove(path)
        for path in abandoned:
            self._remove(path)

    @staticmethod
    def _remove(path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
