"""The machinery every controller loop shares: indexed caches fed by informers, a work queue,
and the loop that drains it.

Why this module exists: each controller (scheduler, workloads, EndpointSlices, node lifecycle,
garbage collection) follows client-go's shape: informers keep a local copy of the objects it
reads, events turn into keys on a de-duplicating queue, and workers reconcile one key at a time
from the local copy, writing only differences to the API server. One ``Hub`` holds one informer
per resource for all controllers (one list and one watch per kind for the whole process), and its
``Cache`` keeps the indexes the controllers ask for (by namespace, by owner uid, by node, by uid).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubefence.client import ApiError, Event, Informer, Kube, Resource

__all__ = ["Cache", "Controller", "Hub", "WorkQueue"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers")


class Cache:
    """A thread-safe copy of one resource's objects with the indexes controllers need."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Obj] = {}
        self._by_namespace: dict[str, set[str]] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._by_node: dict[str, set[str]] = {}
        self._by_uid: dict[str, str] = {}

    def apply(self, event: Event) -> None:
        with self._lock:
            old = self._items.pop(event.key, None)
            if old is not None:
                self._unindex(event.key, old)
            if event.type != "DELETED":
                self._items[event.key] = event.obj
                self._index(event.key, event.obj)

    def _entries(self, key: str, obj: Obj) -> Iterable[tuple[dict[str, set[str]], str]]:
        metadata = obj.get("metadata") or {}
        yield self._by_namespace, str(metadata.get("namespace") or "")
        for ref in metadata.get("ownerReferences") or ():
            if isinstance(ref, dict) and ref.get("uid"):
                yield self._by_owner, str(ref["uid"])
        node = (obj.get("spec") or {}).get("nodeName") if isinstance(obj.get("spec"), dict) else ""
        if node:
            yield self._by_node, str(node)

    def _index(self, key: str, obj: Obj) -> None:
        for index, value in self._entries(key, obj):
            index.setdefault(value, set()).add(key)
        uid = (obj.get("metadata") or {}).get("uid")
        if uid:
            self._by_uid[str(uid)] = key

    def _unindex(self, key: str, obj: Obj) -> None:
        for index, value in self._entries(key, obj):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]
        uid = (obj.get("metadata") or {}).get("uid")
        if uid and self._by_uid.get(str(uid)) == key:
            del self._by_uid[str(uid)]

    def get(self, key: str) -> Obj | None:
        with self._lock:
            return self._items.get(key)

    def by_uid(self, uid: str) -> Obj | None:
        with self._lock:
            key = self._by_uid.get(uid)
            return None if key is None else self._items.get(key)

    def _pick(self, index: dict[str, set[str]], value: str) -> list[Obj]:
        with self._lock:
            return [self._items[k] for k in sorted(index.get(value, ())) if k in self._items]

    def in_namespace(self, namespace: str) -> list[Obj]:
        return self._pick(self._by_namespace, namespace)

    def owned_by(self, uid: str) -> list[Obj]:
        return self._pick(self._by_owner, uid)

    def on_node(self, node: str) -> list[Obj]:
        return self._pick(self._by_node, node)

    def all(self) -> list[Obj]:
        with self._lock:
            return [self._items[k] for k in sorted(self._items)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


Handler = Callable[[Event], None]


class Hub:
    """One informer and one ``Cache`` per resource, shared by every controller of the process;
    subscribers are called (on the informer's thread) after the cache has taken the event."""

    def __init__(self, kube: Kube, *, resync: float = 300.0) -> None:
        self.kube = kube
        self.resync = resync
        self._informers: dict[Resource, Informer] = {}
        self._caches: dict[Resource, Cache] = {}
        self._subscribers: dict[Resource, list[Handler]] = {}
        self._started = False

    def cache(self, resource: Resource) -> Cache:
        if resource not in self._caches:
            cache = Cache()
            self._caches[resource] = cache
            self._subscribers[resource] = []
            self._informers[resource] = Informer(
                self.kube,
                resource,
                handler=lambda event, r=resource: self._deliver(r, event),  # type: ignore[misc]
                resync=self.resync,
                name=f"informer-{resource.plural}",
            )
        return self._caches[resource]

    def subscribe(self, resource: Resource, handler: Handler) -> Cache:
        cache = self.cache(resource)
        self._subscribers[resource].append(handler)
        return cache

    def _deliver(self, resource: Resource, event: Event) -> None:
        self._caches[resource].apply(event)
        for handler in self._subscribers[resource]:
            try:
                handler(event)
            except Exception:
                _LOG.exception("subscriber failed on %s %s", event.type, event.key)

    def start(self, *, timeout: float = 60.0) -> bool:
        """Start every informer; True once all have delivered their first list."""
        self._started = True
        for informer in self._informers.values():
            informer.start()
        deadline = time.monotonic() + timeout
        return all(
            informer.wait_synced(max(deadline - time.monotonic(), 0.0))
            for informer in self._informers.values()
        )

    def stop(self) -> None:
        """Stop every informer (the watches are cut by closing the client's connections)."""
        if not self._started:  # a standby that never led: nothing runs
            self.kube.close()
            return
        for informer in self._informers.values():
            informer.stop(timeout=0.0)
        self.kube.close()
        for informer in self._informers.values():
            informer.stop(timeout=1.0)


class WorkQueue:
    """Keys to reconcile: a key queued twice is reconciled once, and never by two workers at
    once (a key added while being worked on is queued again when its worker is done)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._order: list[str] = []
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._later: list[tuple[float, int, str]] = []
        self._counter = itertools.count()
        self._closed = False

    def add(self, key: str) -> None:
        with self._cond:
            if key in self._queued:
                return
            self._queued.add(key)
            if key not in self._active:
                self._order.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._counter), key))
            self._cond.notify()

    def _due(self) -> None:
        now = time.monotonic()
        while self._later and self._later[0][0] <= now:
            _, _, key = heapq.heappop(self._later)
            if key not in self._queued:
                self._queued.add(key)
                if key not in self._active:
                    self._order.append(key)

    def get(self, timeout: float = 0.5) -> str | None:
        with self._cond:
            deadline = time.monotonic() + timeout
            while True:
                self._due()
                if self._order:
                    key = self._order.pop(0)
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                if self._closed:
                    return None
                wait = deadline - time.monotonic()
                if self._later:
                    wait = min(wait, self._later[0][0] - time.monotonic())
                if wait <= 0 and time.monotonic() >= deadline:
                    return None
                self._cond.wait(max(wait, 0.001))

    def done(self, key: str) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._queued:
                self._order.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._order)


class Controller:
    """A reconcile loop: ``reconcile(key)`` brings one object's world in line with its spec and
    returns a delay after which to look again (None: only on the next event). A failure is
    logged and retried with back-off (0.05 s doubling to 30 s)."""

    name = "controller"
    workers = 1

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        self.hub = hub
        self.kube = hub.kube
        self.stop = stop
        self.queue = WorkQueue()
        self._failures: dict[str, int] = {}
        self._threads: list[threading.Thread] = []

    def reconcile(self, key: str) -> float | None:
        raise NotImplementedError

    def write_status(
        self, resource: Resource, obj: dict[str, Any], status: dict[str, Any], *, absent: Any = None
    ) -> None:
        """Merge-patch ``status`` onto ``obj``'s status subresource, unless every field already
        has that value (``absent``: what a missing field counts as); an object deleted
        meanwhile (404) is left alone. These loops are the only writers of these fields."""
        current = obj.get("status") or {}
        if all(current.get(k, absent) == v for k, v in status.items()):
            return
        m = obj.get("metadata") or {}
        path = resource.path(namespace=m.get("namespace"), name=m.get("name"), subresource="status")
        try:
            self.kube.patch(path, {"status": status})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def started(self) -> None:
        """Called once the caches are synced, before the workers start."""

    def start(self) -> None:
        self.started()
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float = 2.0) -> None:
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while not self.stop.is_set():
            key = self.queue.get()
            if key is None:
                continue
            try:
                again = self.reconcile(key)
                self._failures.pop(key, None)
                if again is not None:
                    self.queue.add_after(key, again)
            except Exception as exc:
                count = self._failures.get(key, 0) + 1
                self._failures[key] = count
                delay = min(0.05 * 2 ** (count - 1), 30.0)
                expected = isinstance(exc, ApiError)  # a conflict, a server hiccup: no traceback
                _LOG.warning("%s: %s failed (%s); retrying in %.2fs", self.name, key, exc, delay,
                             exc_info=count == 1 and not expected)  # fmt: skip
                self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)
