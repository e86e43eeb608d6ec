"""Running the loops: which controllers, one shared set of informers, leader election, stop.

Why this module exists: the entry point (``__main__``) and the tests start the same set of
loops the same way. Every controller subscribes to a ``Hub`` before the informers start, so one
list and one watch per resource serves all of them; the workers start only once every cache has
its first list (a controller acting on half a picture would, say, create pods that exist).

Leader election (on by default, as upstream): before starting, the process holds the Lease
``kube-system/kube-controller-manager`` (15 s, renewed every 2 s); a second copy waits as a
standby, and a leader that cannot renew within the lease duration stops (its loops must not run
beside a new leader's).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from kubefence.client import ApiError, Kube
from kubefence.controllers._objects import LEASES, meta
from kubefence.controllers._runtime import Controller, Hub
from kubefence.controllers.daemonsets import DaemonSetController
from kubefence.controllers.deployments import DeploymentController
from kubefence.controllers.endpoints import EndpointsController
from kubefence.controllers.endpointslices import EndpointSliceController
from kubefence.controllers.garbagecollector import GarbageCollector
from kubefence.controllers.nodelifecycle import NodeLifecycleController
from kubefence.controllers.podgc import PodGarbageCollector
from kubefence.controllers.replicasets import ReplicaSetController
from kubefence.controllers.scheduler import Scheduler
from kubefence.controllers.statefulsets import StatefulSetController

__all__ = ["ALL_CONTROLLERS", "Manager"]

_LOG = logging.getLogger("kubefence.controllers")

ALL_CONTROLLERS = (
    "scheduler",
    "replicasets",
    "deployments",
    "statefulsets",
    "daemonsets",
    "endpointslices",
    "endpoints",
    "nodelifecycle",
    "garbagecollector",
    "podgc",
)
LEASE_NAME = "kube-controller-manager"
LEASE_NAMESPACE = "kube-system"


def _micro(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        try:
            return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except (TypeError, ValueError):
            return None


class LeaderElector:
    """Holds a coordination.k8s.io Lease as upstream's leader election does."""

    def __init__(self, kube: Kube, *, duration: float = 15.0, renew: float = 2.0) -> None:
        self.kube = kube
        self.duration = duration
        self.renew = renew
        self.identity = f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.path = LEASES.path(namespace=LEASE_NAMESPACE, name=LEASE_NAME)

    def try_acquire(self) -> bool:
        stamp = dt.datetime.now(dt.UTC)
        try:
            lease = self.kube.get(self.path)
        except ApiError as exc:
            if exc.code != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                    "spec": self._spec(stamp, acquired=stamp, transitions=0)}  # fmt: skip
            try:
                self.kube.create(LEASES.path(namespace=LEASE_NAMESPACE), body)
                return True
            except ApiError as again:
                if again.code == 409:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(str(spec.get("renewTime")))
        length = float(spec.get("leaseDurationSeconds") or self.duration)
        expired = renewed is None or (stamp - renewed).total_seconds() > length
        if holder != self.identity and holder and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (holder != self.identity)
        acquired = stamp if holder != self.identity else _parse(str(spec.get("acquireTime")))
        body = {**lease, "spec": self._spec(stamp, acquired=acquired or stamp,
                                            transitions=transitions)}  # fmt: skip
        body["metadata"] = {**meta(lease)}
        try:
            self.kube.replace(self.path, body)
        except ApiError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    def _spec(self, stamp: dt.datetime, *, acquired: dt.datetime, transitions: int) -> Any:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
                "acquireTime": _micro(acquired), "renewTime": _micro(stamp),
                "leaseTransitions": transitions}  # fmt: skip

    def acquire(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                if self.try_acquire():
                    return True
            except Exception as exc:
                _LOG.warning("leader election: %s", exc)
            stop.wait(self.renew)
        return False

    def release(self) -> None:
        """Give the lease up (on a clean stop), so a successor need not wait for it to expire."""
        try:
            lease = self.kube.get(self.path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            self.kube.replace(self.path, {**lease, "spec": spec})
        except Exception as exc:
            _LOG.warning("leader election release: %s", exc)

    def keep(self, stop: threading.Event, lost: Callable[[], None]) -> None:
        """Renew until ``stop``; call ``lost`` if renewing failed for a whole lease duration."""
        last = time.monotonic()
        while not stop.wait(self.renew):
            try:
                if self.try_acquire():
                    last = time.monotonic()
                    continue
            except Exception as exc:
                _LOG.warning("leader election renew: %s", exc)
            if time.monotonic() - last > self.duration:
                lost()
                return


class Manager:
    """The chosen controllers on one ``Hub``; ``start()`` then ``stop()``."""

    def __init__(
        self,
        kube: Kube,
        *,
        controllers: Sequence[str] = ALL_CONTROLLERS,
        node_grace: float = 40.0,
        leader_elect: bool = True,
    ) -> None:
        unknown = sorted(set(controllers) - set(ALL_CONTROLLERS))
        if unknown:
            raise ValueError(f"unknown controllers: {', '.join(unknown)}")
        self.kube = kube
        self.stopping = threading.Event()
        self.elector_ok = True  # False once the leader lease was lost
        self.hub = Hub(kube)
        self.elector = LeaderElector(kube) if leader_elect else None
        makers: dict[str, Callable[[], Controller]] = {
            "scheduler": lambda: Scheduler(self.hub, self.stopping),
            "replicasets": lambda: ReplicaSetController(self.hub, self.stopping),
            "deployments": lambda: DeploymentController(self.hub, self.stopping),
            "statefulsets": lambda: StatefulSetController(self.hub, self.stopping),
            "daemonsets": lambda: DaemonSetController(self.hub, self.stopping),
            "endpointslices": lambda: EndpointSliceController(self.hub, self.stopping),
            "nodelifecycle": lambda: NodeLifecycleController(
                self.hub, self.stopping, grace=node_grace
            ),
            "garbagecollector": lambda: GarbageCollector(self.hub, self.stopping),
            "endpoints": lambda: EndpointsController(self.hub, self.stopping),
            "podgc": lambda: PodGarbageCollector(self.hub, self.stopping),
        }
        self.controllers = {name: makers[name]() for name in ALL_CONTROLLERS if name in controllers}

    def start(self, *, sync_timeout: float = 60.0) -> bool:
        """Wait to lead (if electing), sync the caches, start the workers; False if stopped
        (or the caches did not sync) first."""
        if self.elector is not None:
            if not self.elector.acquire(self.stopping):
                return False
            threading.Thread(
                target=self.elector.keep, args=(self.stopping, self._lost), daemon=True,
                name="leader-renew",
            ).start()  # fmt: skip
        if not self.hub.start(timeout=sync_timeout):
            _LOG.error("caches did not sync in %.0fs", sync_timeout)
            return False
        for controller in self.controllers.values():
            controller.start()
        _LOG.info("started: %s", ", ".join(self.controllers))
        return True

    def _lost(self) -> None:
        _LOG.error("lost the leader lease; stopping")
        self.elector_ok = False
        self.stopping.set()

    def stop(self) -> None:
        self.stopping.set()
        for controller in self.controllers.values():
            controller.join(timeout=1.0)
        if self.elector is not None and self.elector_ok:
            self.elector.release()
        self.hub.stop()
