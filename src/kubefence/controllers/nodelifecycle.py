"""The node lifecycle controller: a node that stops heartbeating becomes NotReady.

Why this module exists: a node component renews its Lease (``kube-node-lease/<node>``) every
few seconds; when it dies (SIGKILL, node namespace gone) nobody else would ever say so, and the
scheduler would keep sending pods to it. As upstream, this loop notes *when it saw* each
heartbeat (a new Lease ``renewTime`` or a new Ready ``lastHeartbeatTime``; local observation,
so clocks need not agree) and once none came for ``grace`` seconds (40 s by default, as
upstream's node-monitor-grace-period) sets the node's Ready, MemoryPressure, DiskPressure and
PIDPressure conditions to ``Unknown`` ("Kubelet stopped posting node status."), records a
``NodeNotReady`` Event, and marks the node's pods not Ready (so EndpointSlices stop sending
traffic to them). A node seen for the first time gets the full grace period. The node
component sets Ready=True again when it comes back. Not done: taints and eviction.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._events import EventRecorder
from kubefence.controllers._objects import (
    LEASES,
    NODES,
    PODS,
    condition,
    meta,
    now,
)
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["NodeLifecycleController"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers.nodelifecycle")
LEASE_NAMESPACE = "kube-node-lease"
_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
_MESSAGE = "Kubelet stopped posting node status."


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, hub: Hub, stop: threading.Event, *, grace: float = 40.0) -> None:
        super().__init__(hub, stop)
        self.grace = grace
        self.nodes = hub.subscribe(NODES, self._on_node)
        self.leases = hub.subscribe(LEASES, self._on_lease)
        self.pods = hub.cache(PODS)
        self.events = EventRecorder(self.kube, "node-controller")
        self._lock = threading.Lock()
        self._beats: dict[str, tuple[str, float]] = {}  # node -> (last heartbeat value, seen)
        self._lease_beats: dict[str, tuple[str, float]] = {}

    def _saw(self, table: dict[str, tuple[str, float]], node: str, value: str) -> None:
        with self._lock:
            before = table.get(node)
            if before is None or before[0] != value:
                table[node] = (value, time.monotonic())

    def _on_node(self, event: Event) -> None:
        name = str(meta(event.obj).get("name"))
        if event.type == "DELETED":
            with self._lock:
                self._beats.pop(name, None)
            return
        ready = condition(event.obj, "Ready") or {}
        self._saw(self._beats, name, f"{ready.get('status')}/{ready.get('lastHeartbeatTime')}")
        self.queue.add(name)

    def _on_lease(self, event: Event) -> None:
        if meta(event.obj).get("namespace") != LEASE_NAMESPACE or event.type == "DELETED":
            return
        name = str(meta(event.obj).get("name"))
        self._saw(self._lease_beats, name, str((event.obj.get("spec") or {}).get("renewTime")))
        self.queue.add(name)

    def started(self) -> None:
        threading.Thread(target=self._tick, name="nodelifecycle-tick", daemon=True).start()

    def _tick(self) -> None:
        period = max(min(self.grace / 4, 5.0), 0.1)
        while not self.stop.wait(period):
            for node in self.nodes.all():
                self.queue.add(str(meta(node).get("name")))

    def _last_seen(self, name: str) -> float:
        with self._lock:
            seen = [t for table in (self._beats, self._lease_beats)
                    if (entry := table.get(name)) is not None for t in (entry[1],)]  # fmt: skip
        return max(seen) if seen else time.monotonic()

    def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        silent = time.monotonic() - self._last_seen(key)
        ready = condition(node, "Ready")
        if silent < self.grace or (ready is not None and ready.get("status") == "Unknown"):
            return None
        self._mark_unknown(node)
        return None

    def _mark_unknown(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        stamp = now()
        status = dict(node.get("status") or {})
        conditions = [dict(c) for c in status.get("conditions") or ()]
        by_type = {c.get("type"): c for c in conditions}
        for kind in _CONDITIONS:
            entry = by_type.get(kind)
            if entry is None:
                entry = {"type": kind}
                conditions.append(entry)
            if entry.get("status") != "Unknown":
                entry["lastTransitionTime"] = stamp
            entry.update(status="Unknown", reason="NodeStatusUnknown", message=_MESSAGE)
            entry.setdefault("lastHeartbeatTime", stamp)
        status["conditions"] = conditions
        path = NODES.path(name=name, subresource="status")
        self.kube.replace(path, {**node, "status": status})  # a conflict retries with backoff
        _LOG.info("node %s: no heartbeat for %.1fs; Ready=Unknown", name, self.grace)
        self.events.record(
            node, kind="Node", kind_type="Normal", reason="NodeNotReady",
            message=f"Node {name} status is now: NodeNotReady",
        )  # fmt: skip
        for pod in self.pods.on_node(name):
            found = condition(pod, "Ready")
            if found is not None and found.get("status") == "False":
                continue
            m = meta(pod)
            patch = {"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": stamp,
                 "reason": "NodeNotReady", "message": f"node {name} is not ready"}]}}  # fmt: skip
            try:
                self.kube.patch(
                    PODS.path(namespace=m.get("namespace"), name=m.get("name"),
                              subresource="status"),
                    patch, kind="strategic",
                )  # fmt: skip
            except ApiError as exc:
                if exc.code != 404:
                    _LOG.warning("marking pod %s not ready failed: %s", m.get("name"), exc)
