"""Informers: one list, then a watch from its resourceVersion, kept alive through any failure.

Why this module exists: a long-lived API client (the node component, the controllers, the policy
agent) must hold a current copy of some objects and hear about every change, without missing one
and without hammering a failing server. The official Python client has no informer, so this is
ours, with client-go's semantics:

* list (paginated), then watch from the list's resourceVersion, with bookmarks so a restarted
  watch resumes from a recent version;
* a watch that ends is restarted from the last version seen; a 410 ``Expired`` re-lists, and the
  difference between the old copy and the new list is delivered as ordinary events, so handlers
  never see a gap;
* errors (connection refused, TLS, 5xx, 401 after a token expired) back off exponentially from
  0.2 s to ``max_backoff`` (30 s; the policy agent, which must converge soon after an outage,
  uses less), and the copy and handlers' state are kept (never flushed) meanwhile;
* every ``resync`` seconds each object is re-delivered as ``SYNC`` so handlers can repair drift.

Handlers run on the informer's own thread, one event at a time, in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubefence.client._kube import ApiError, Kube, Resource

__all__ = ["Event", "Informer"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.client.informer")


@dataclass(frozen=True, slots=True)
class Event:
    """One change: ``type`` ADDED, MODIFIED, DELETED or SYNC; ``old`` is the previous copy
    (None for ADDED)."""

    type: str
    key: str
    obj: Obj
    old: Obj | None = None


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (``name`` for cluster-scoped objects)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = str(metadata.get("name", ""))
    return f"{namespace}/{name}" if namespace else name


@dataclass
class _Counters:
    lists: int = 0
    watches: int = 0
    restarts: int = 0
    expired: int = 0
    errors: int = 0
    last_error: str = ""
    last_event: float = field(default_factory=time.monotonic)


class Informer:
    """Keeps ``items`` equal to the server's objects of ``resource`` (optionally one namespace,
    label or field selector) and calls ``handler`` for each change."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        handler: Callable[[Event], None] | None = None,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resync: float = 300.0,
        watch_timeout: int = 300,
        name: str = "",
        max_backoff: float = 30.0,
        decode: Callable[[bytes], Obj] | None = None,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.handler = handler
        self.path = resource.path(namespace=namespace)
        self.query = {
            key: value
            for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector))
            if value
        }
        self.resync = resync
        self.max_backoff = max_backoff
        self.watch_timeout = watch_timeout
        self.decode = decode  # how a list page is read (``Kube.list``); watch events: JSON
        self.items: dict[str, Obj] = {}
        self.resource_version = ""
        self.synced = threading.Event()
        self.counters = _Counters()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=name or f"informer-{resource.plural}", daemon=True
        )

    # -- public ------------------------------------------------------------------------------
    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current request (a watch is cut by closing the client's pool)."""
        self._stop.set()
        self._thread.join(timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list has been delivered to the handler."""
        return self.synced.wait(timeout)

    def snapshot(self) -> dict[str, Obj]:
        with self._lock:
            return dict(self.items)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        delay = 0.2
        last_resync = time.monotonic()
        need_list = not self.resource_version  # seeded with items and a version: resume
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                    last_resync = time.monotonic()
                self._watch_once()
                delay = 0.2
                if self.resync and time.monotonic() - last_resync >= self.resync:
                    self._deliver_resync()
                    last_resync = time.monotonic()
            except ApiError as exc:
                if exc.code == 410:
                    self.counters.expired += 1
                    need_list = True
                    continue
                delay = self._failed(exc, delay)
            except Exception as exc:  # connection refused, TLS, timeouts: keep the copy, retry
                delay = self._failed(exc, delay)

    def _failed(self, exc: BaseException, delay: float) -> float:
        self.counters.errors += 1
        self.counters.last_error = f"{type(exc).__name__}: {exc}"
        _LOG.warning("%s: %s; retrying in %.1fs", self.path, self.counters.last_error, delay)
        self._stop.wait(delay)
        return min(delay * 2, self.max_backoff)

    def _relist(self) -> None:
        items, version = self.kube.list(self.path, query=self.query, decode=self.decode)
        self.counters.lists += 1
        fresh = {object_key(obj): obj for obj in items}
        with self._lock:
            old = self.items
            self.items = fresh
            self.resource_version = version
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._deliver(Event("ADDED", key, obj))
            elif _version(before) != _version(obj):
                self._deliver(Event("MODIFIED", key, obj, before))
        for key, before in old.items():
            if key not in fresh:
                self._deliver(Event("DELETED", key, before, before))
        self.synced.set()

    def _watch_once(self) -> None:
        self.counters.watches += 1
        if self.counters.watches > 1:
            self.counters.restarts += 1
        for event in self.kube.watch(
            self.path,
            resource_version=self.resource_version,
            timeout_seconds=self.watch_timeout,
            **self.query,
        ):
            if self._stop.is_set():
                return
            kind = event.get("type")
            obj = event.get("object") or {}
            version = _version(obj)
            self.counters.last_event = time.monotonic()
            if kind == "BOOKMARK":
                self.resource_version = version or self.resource_version
                continue
            key = object_key(obj)
            with self._lock:
                before = self.items.get(key)
                if kind == "DELETED":
                    self.items.pop(key, None)
                else:
                    self.items[key] = obj
                self.resource_version = version or self.resource_version
            if kind == "DELETED":
                self._deliver(Event("DELETED", key, obj, before))
            elif before is None:
                self._deliver(Event("ADDED", key, obj))
            else:
                self._deliver(Event("MODIFIED", key, obj, before))

    def _deliver_resync(self) -> None:
        for key, obj in self.snapshot().items():
            self._deliver(Event("SYNC", key, obj, obj))

    def _deliver(self, event: Event) -> None:
        if self.handler is None:
            return
        try:
            self.handler(event)
        except Exception:  # a handler's bug must not stop the informer
            _LOG.exception("handler failed on %s %s", event.type, event.key)


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))
