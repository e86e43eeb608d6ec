"""The pod garbage collector: pods bound to a node that no longer exists are deleted.

Why this module exists: ``kubectl delete node node-2`` leaves the pods bound to it in the API
with nobody to run them or to report them gone; their ReplicaSets count them and make no
replacements, and Services keep their stale addresses. As upstream's pod GC ("orphaned pods"),
this loop deletes such pods so workloads replace them on live nodes: at once when it saw the
Node deleted, and after ``quarantine`` seconds (40 s, as upstream) for a pod naming a node it
never saw (a node component may register its Node a moment after pods were bound to it).
The node's absence is confirmed with the API server before each deletion, and the deletion
carries the pod's uid as a precondition.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._objects import NODES, PODS, meta
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["PodGarbageCollector"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers.podgc")


class PodGarbageCollector(Controller):
    name = "podgc"

    def __init__(self, hub: Hub, stop: threading.Event, *, quarantine: float = 40.0) -> None:
        super().__init__(hub, stop)
        self.quarantine = quarantine
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.nodes = hub.subscribe(NODES, self._on_node)

    def _on_pod(self, event: Event) -> None:
        node = (event.obj.get("spec") or {}).get("nodeName")
        if event.type != "DELETED" and node and self.nodes.get(str(node)) is None:
            self.queue.add_after(event.key, self.quarantine)

    def _on_node(self, event: Event) -> None:
        if event.type != "DELETED":
            return
        for pod in self.pods.on_node(str(meta(event.obj).get("name"))):
            self.queue.add(f"{meta(pod).get('namespace')}/{meta(pod).get('name')}")

    def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        node = str((pod or {}).get("spec", {}).get("nodeName") or "")
        if pod is None or not node or self.nodes.get(node) is not None:
            return None
        try:
            self.kube.get(NODES.path(name=node))
            return None  # it exists; the cache is behind
        except ApiError as exc:
            if exc.code != 404:
                raise
        m = meta(pod)
        try:
            self.kube.request(
                "DELETE",
                PODS.path(namespace=m.get("namespace"), name=m.get("name")),
                body={"preconditions": {"uid": m.get("uid")}},
            )
            _LOG.info("deleted pod %s: its node %s is gone", key, node)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
        return None
