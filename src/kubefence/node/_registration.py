"""The node as the API server sees it: its Node object, its Lease heartbeat, the Events it posts.

Why this module exists: these are the node component's conversations with the API server that
do not depend on pods: register the Node (create, or bring an existing one's labels and status
up to date), renew the Lease ``kube-node-lease/<node>`` every 2 s and the Node's Ready heartbeat
every 10 s, and post Events from a queue on a thread of their own (so a slow API server never
holds up a pod). Separate from ``_component`` so the pod loop reads on its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from kubefence.client import ApiError, Kube, Resource
from kubefence.dataplane.netns import NodePlan
from kubefence.node._status import lease, node_object, node_status, now_micro

__all__ = ["HEARTBEAT", "NodeRegistration"]

_LOG = logging.getLogger("kubefence.node")
NODES = Resource("", "v1", "nodes", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
EVENTS = Resource("", "v1", "events")
HEARTBEAT = 2.0
STATUS_EVERY = 10.0
MAX_PODS = 253
Obj = dict[str, Any]


class NodeRegistration:
    """Register ``node``; ``start()`` runs the heartbeat and event threads until ``stopped``."""

    def __init__(self, kube: Kube, *, node: NodePlan, stopped: threading.Event) -> None:
        self.kube = kube
        self.node = node
        self.name = node.name
        self.stopped = stopped
        self.port = 0
        self.events: queue.Queue[Obj] = queue.Queue()

    def _status(self) -> Obj:
        return node_status(
            self.name, address=str(self.node.address_v4), port=self.port, max_pods=MAX_PODS
        )

    def register(self, *, port: int) -> None:
        """Create or update the Node and its Lease; retried until it works or we stop."""
        self.port = port
        body = node_object(
            self.name,
            pod_cidrs=[str(self.node.pod_cidr_v4), str(self.node.pod_cidr_v6)],
            address=str(self.node.address_v4),
            port=port,
            max_pods=MAX_PODS,
        )
        while not self.stopped.is_set():
            try:
                try:
                    self.kube.create(NODES.path(), body)
                except ApiError as exc:
                    if exc.code != 409:
                        raise
                    self.kube.patch(NODES.path(name=self.name), {"metadata": body["metadata"]})
                self.kube.patch(
                    NODES.path(name=self.name, subresource="status"), {"status": self._status()}
                )
                self.renew_lease()
                _LOG.info("node %s: registered", self.name)
                return
            except Exception as exc:  # the API server may still be starting
                _LOG.warning("node %s: registering failed (%s); retrying", self.name, exc)
                self.stopped.wait(1.0)

    def renew_lease(self) -> None:
        path = LEASES.path(namespace="kube-node-lease", name=self.name)
        try:
            self.kube.patch(path, {"spec": {"renewTime": now_micro(), "holderIdentity": self.name}})
        except ApiError as exc:
            if exc.code != 404:
                raise
            self.kube.create(LEASES.path(namespace="kube-node-lease"), lease(self.name))

    def start(self) -> None:
        for target, name in ((self._heartbeat, "lease"), (self._post_events, "events")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def post(self, body: Obj) -> None:
        self.events.put(body)

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self.stopped.wait(HEARTBEAT):
            try:
                self.renew_lease()
                if time.monotonic() - last_status >= STATUS_EVERY:
                    self.kube.patch(
                        NODES.path(name=self.name, subresource="status"),
                        {"status": self._status()},
                    )
                    last_status = time.monotonic()
            except Exception as exc:
                _LOG.warning("node %s: heartbeat failed: %s", self.name, exc)

    def _post_events(self) -> None:
        while not self.stopped.is_set():
            try:
                body = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            namespace = body["metadata"]["namespace"]
            try:
                self.kube.create(EVENTS.path(namespace=namespace), body)
            except Exception as exc:
                _LOG.warning("node %s: event not posted: %s", self.name, exc)
