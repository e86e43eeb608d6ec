"""The ReplicaSet controller: keeps ``spec.replicas`` pods of each ReplicaSet, and its status.

Why this module exists: Deployments (and users) ask for N copies of a pod template; something
must create the missing ones (named ``<replicaset>-<5 random>``, owned by the ReplicaSet),
delete the surplus (not yet scheduled first, then not ready, then the youngest, as upstream
ranks them), and report ``replicas``/``readyReplicas``/``availableReplicas`` so that
``kubectl get rs``, the Deployment controller and ``kubectl rollout status`` can follow.

Creations run in parallel in upstream's "slow start" batches (1, 2, 4, ...), so a template the
server rejects costs one request, not hundreds. The informer may not yet show pods this loop
has just created or deleted; "expectations" (names in flight, forgotten after 60 s or when the
informer shows them) keep the next pass from creating or deleting twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._events import EventRecorder
from kubefence.controllers._objects import (
    PODS,
    REPLICASETS,
    controller_of,
    is_active,
    is_ready,
    meta,
    owner_reference,
    pod_from_template,
    random_suffix,
)
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["ReplicaSetController", "slow_start"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers.replicasets")
_EXPECTATION_TTL = 60.0


def slow_start(pool: ThreadPoolExecutor, count: int, action: Callable[[int], bool]) -> int:
    """Run ``action(i)`` for i < count in batches of 1, 2, 4, ... in ``pool``; stop after a
    batch with a failure. Returns how many succeeded."""
    done = 0
    batch = 1
    while done < count:
        size = min(batch, count - done)
        results = list(pool.map(action, range(done, done + size)))
        ok = sum(results)
        done += size
        if ok < size:
            return done - (size - ok)
        batch *= 2
    return done


def _deletion_rank(pod: Obj) -> tuple[int, int, int, str]:
    """Lower sorts first for deletion: unscheduled, pending, not ready, then youngest."""
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase")
    created = str(meta(pod).get("creationTimestamp") or "")
    return (
        0 if not spec.get("nodeName") else 1,
        0 if phase == "Pending" else 1,
        0 if not is_ready(pod) else 1,
        "".join(chr(255 - ord(c)) for c in created),  # youngest first
    )


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 4

    def __init__(self, hub: Hub, stop: threading.Event, *, burst: int = 8) -> None:
        super().__init__(hub, stop)
        self.sets = hub.subscribe(REPLICASETS, self._on_set)
        self.pods = hub.subscribe(PODS, self._on_pod)
        self._pool = ThreadPoolExecutor(burst, thread_name_prefix="rs-write")
        self.events = EventRecorder(self.kube, "replicaset-controller")
        self._lock = threading.Lock()
        self._creating: dict[str, dict[str, float]] = {}
        self._deleting: dict[str, dict[str, float]] = {}

    def _on_set(self, event: Event) -> None:
        self.queue.add(event.key)

    def _on_pod(self, event: Event) -> None:
        ref = controller_of(event.obj)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        key = f"{meta(event.obj).get('namespace')}/{ref.get('name')}"
        name = str(meta(event.obj).get("name"))
        with self._lock:
            if event.type == "DELETED":
                self._deleting.get(key, {}).pop(name, None)
            else:
                self._creating.get(key, {}).pop(name, None)
        self.queue.add(key)

    def _in_flight(self, key: str) -> tuple[set[str], set[str]]:
        cutoff = time.monotonic() - _EXPECTATION_TTL
        with self._lock:
            for table in (self._creating, self._deleting):
                entries = table.get(key, {})
                for name in [n for n, t in entries.items() if t < cutoff]:
                    del entries[name]
            return set(self._creating.get(key, ())), set(self._deleting.get(key, ()))

    def reconcile(self, key: str) -> float | None:
        rs = self.sets.get(key)
        if rs is None:
            with self._lock:
                self._creating.pop(key, None)
                self._deleting.pop(key, None)
            return None
        m = meta(rs)
        uid = str(m.get("uid"))
        pods = [
            p for p in self.pods.owned_by(uid)
            if is_active(p) and (controller_of(p) or {}).get("uid") == uid
        ]  # fmt: skip
        creating, deleting = self._in_flight(key)
        names = {str(meta(p).get("name")) for p in pods}
        live = [p for p in pods if str(meta(p).get("name")) not in deleting]
        pending = len(creating - names)
        wanted = int((rs.get("spec") or {}).get("replicas") or 0)
        diff = wanted - len(live) - pending
        if m.get("deletionTimestamp"):
            diff = 0
        if diff > 0:
            self._create(rs, key, diff)
        elif diff < 0:
            victims = sorted(live, key=_deletion_rank)[:-diff]
            self._delete(rs, key, victims)
        self._status(rs, live)
        return None

    def _create(self, rs: Obj, key: str, count: int) -> None:
        m = meta(rs)
        namespace = str(m.get("namespace"))
        ref = owner_reference(rs, kind="ReplicaSet", api_version="apps/v1")
        template = (rs.get("spec") or {}).get("template") or {}

        def one(_: int) -> bool:
            for _attempt in range(3):
                name = f"{m.get('name')}-{random_suffix()}"
                with self._lock:
                    self._creating.setdefault(key, {})[name] = time.monotonic()
                pod = pod_from_template(template, owner_ref=ref, name=name, namespace=namespace)
                try:
                    self.kube.create(PODS.path(namespace=namespace), pod)
                    self.events.record(rs, kind="ReplicaSet", kind_type="Normal",
                                       reason="SuccessfulCreate", message=f"Created pod: {name}",
                                       api_version="apps/v1")  # fmt: skip
                    return True
                except ApiError as exc:
                    with self._lock:
                        self._creating.get(key, {}).pop(name, None)
                    if exc.code == 409 and exc.reason == "AlreadyExists":
                        continue  # a name collision: draw another
                    _LOG.warning("creating a pod for %s failed: %s", key, exc)
                    return False
            return False

        made = slow_start(self._pool, count, one)
        if made < count:
            raise RuntimeError(f"created {made} of {count} pods")

    def _delete(self, rs: Obj, key: str, victims: list[Obj]) -> None:
        def one(pod: Obj) -> bool:
            m = meta(pod)
            name = str(m.get("name"))
            with self._lock:
                self._deleting.setdefault(key, {})[name] = time.monotonic()
            try:
                self.kube.delete(PODS.path(namespace=m.get("namespace"), name=name))
            except ApiError as exc:
                if exc.code != 404:
                    with self._lock:
                        self._deleting.get(key, {}).pop(name, None)
                    _LOG.warning("deleting pod %s failed: %s", name, exc)
                    return False
            self.events.record(rs, kind="ReplicaSet", kind_type="Normal",
                               reason="SuccessfulDelete", message=f"Deleted pod: {name}",
                               api_version="apps/v1")  # fmt: skip
            return True

        if not all(self._pool.map(one, victims)):
            raise RuntimeError("some pod deletions failed")

    def _status(self, rs: Obj, pods: list[Obj]) -> None:
        m = meta(rs)
        template_labels = meta((rs.get("spec") or {}).get("template") or {}).get("labels") or {}
        ready = sum(1 for p in pods if is_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods
                if all((meta(p).get("labels") or {}).get(k) == v
                       for k, v in template_labels.items())
            ),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": int(m.get("generation") or 1),
        }  # fmt: skip
        self.write_status(REPLICASETS, rs, status, absent=0)

    def join(self, timeout: float = 2.0) -> None:
        super().join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
