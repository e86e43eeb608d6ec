"""Events the controllers write about objects (``kubectl describe`` shows them), as upstream's
event recorder writes them.

Why this module exists: scheduling, scaling and node loss are things users look for in
``kubectl describe`` and ``kubectl get events``; the Events must not slow the loops that write
them, nor flood the API server when 300 pods are created at once. So, as client-go's recorder:

* writing happens on one background thread from a bounded queue (a full queue drops; Events are
  best effort), never on the caller's thread;
* a repeat (same object, reason and message) bumps the existing Event's ``count`` and
  ``lastTimestamp`` instead of adding another;
* a spam filter allows each object a burst of 25 Events, then one more per 5 minutes.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

from kubefence.client import ApiError, Kube
from kubefence.controllers._objects import EVENTS, meta, now

__all__ = ["EventRecorder"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers.events")
BURST = 25
REFILL_SECONDS = 300.0


class EventRecorder:
    def __init__(self, kube: Kube, component: str, *, synchronous: bool = False) -> None:
        self.kube = kube
        self.component = component
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], tuple[str, str, int]] = {}
        self._budget: dict[str, tuple[float, float]] = {}  # uid -> (tokens, at)
        self._queue: queue.Queue[tuple[Obj, str, str, str, str, str]] = queue.Queue(2000)
        self.dropped = 0
        if not synchronous:
            threading.Thread(target=self._drain, name=f"events-{component}", daemon=True).start()

    def record(
        self,
        obj: Mapping[str, Any],
        *,
        kind: str,
        kind_type: str,
        reason: str,
        message: str,
        api_version: str = "v1",
    ) -> None:
        """Queue an Event about ``obj`` (``kind``/``api_version`` its kind; ``kind_type``
        Normal or Warning)."""
        uid = str(meta(obj).get("uid", ""))
        if not self._allowed(uid):
            self.dropped += 1
            return
        item = (dict(obj), f"{api_version} {kind}", kind_type, reason, message, now())
        if self.synchronous:
            self._write(*item)
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _allowed(self, uid: str) -> bool:
        at = time.monotonic()
        with self._lock:
            tokens, last = self._budget.get(uid, (float(BURST), at))
            tokens = min(float(BURST), tokens + (at - last) / REFILL_SECONDS)
            if tokens < 1.0:
                self._budget[uid] = (tokens, at)
                return False
            self._budget[uid] = (tokens - 1.0, at)
            if len(self._budget) > 50000:  # forget the oldest half
                for key in sorted(self._budget, key=lambda k: self._budget[k][1])[:25000]:
                    del self._budget[key]
            return True

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self._write(*item)
            except Exception as exc:  # best effort: never kill the writer
                _LOG.warning("event %s not written: %s", item[3], exc)

    def _write(
        self, obj: Obj, kind: str, kind_type: str, reason: str, message: str, stamp: str
    ) -> None:
        m = meta(obj)
        namespace = str(m.get("namespace") or "default")
        uid = str(m.get("uid", ""))
        key = (uid, reason, message)
        with self._lock:
            previous = self._seen.get(key)
        if previous is not None:
            name, ns, count = previous
            try:
                self.kube.patch(
                    EVENTS.path(namespace=ns, name=name),
                    {"count": count + 1, "lastTimestamp": stamp},
                )
                with self._lock:
                    self._seen[key] = (name, ns, count + 1)
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
                # the Event was deleted (its namespace, or by hand): write a new one
        api_version, _, kind = kind.partition(" ")
        involved: Obj = {"apiVersion": api_version, "kind": kind,
                         "name": m.get("name"), "namespace": m.get("namespace"), "uid": uid,
                         "resourceVersion": m.get("resourceVersion")}  # fmt: skip
        if not m.get("namespace"):
            del involved["namespace"]
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{m.get('name')}.{secrets.token_hex(8)}",
                         "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": kind_type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }  # fmt: skip
        try:
            created = self.kube.create(EVENTS.path(namespace=namespace), body)
        except ApiError as exc:
            if exc.code == 404:  # the namespace is gone
                return
            raise
        with self._lock:
            self._seen[key] = (str(meta(created).get("name", "")), namespace, 1)
            if len(self._seen) > 20000:
                self._seen.clear()
