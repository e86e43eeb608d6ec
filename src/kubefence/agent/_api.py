"""What the agent writes to the API: its node's Lease and Events on policies it cannot enforce.

Why this module exists: one agent per node needs no leader election, but two agents started for
one node (a rolling update, a mistake) must not both program the kernel. Each holds a
``coordination.k8s.io/v1`` Lease named ``kubefence-agent-<node>``; the second waits until the
first one's lease expires or is released. Events (core ``v1``) tell the owner of a policy, on the
policy itself, why it is not enforced as written. These are the only writes the agent's RBAC
role allows (see ``deploy/``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kubefence.client import ApiError, Kube, Resource

__all__ = ["EVENTS", "LEASES", "EventRecorder", "NodeLease"]

LEASES = Resource("coordination.k8s.io", "v1", "leases")
EVENTS = Resource("", "v1", "events")
_LOG = logging.getLogger("kubefence.agent.api")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class NodeLease:
    """Acquire (``acquire`` blocks until held) and renew the node's Lease; ``lost`` is called
    if another holder takes it over (this agent must then stop programming)."""

    def __init__(
        self,
        kube: Kube,
        *,
        node: str,
        namespace: str,
        duration: float = 15.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.kube = kube
        self.name = f"kubefence-agent-{node}"
        self.namespace = namespace
        self.duration = max(1.0, duration)
        self.identity = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.on_lost = on_lost
        self.held = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> str:
        return LEASES.path(namespace=self.namespace, name=self.name)

    def _body(self, current: Mapping[str, Any] | None, *, acquire: bool) -> dict[str, Any]:
        now = _micro(_now())
        spec = dict((current or {}).get("spec") or {})
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.duration + 0.999),
            renewTime=now,
        )
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if current else 0
            )
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if current:
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": spec}  # fmt: skip

    def try_acquire(self) -> bool:
        """One attempt: True when this agent holds the lease afterwards."""
        try:
            current = self.kube.get(self.path)
        except ApiError as exc:
            if exc.code != 404:
                raise
            try:
                self.kube.create(
                    LEASES.path(namespace=self.namespace), self._body(None, acquire=True)
                )
                return True
            except ApiError as again:
                if again.code == 409:
                    return False
                raise
        spec = current.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder == self.identity:
            self.kube.replace(self.path, self._body(current, acquire=False))
            return True
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        seconds = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and renewed is not None and renewed + dt.timedelta(seconds=seconds) > _now():
            return False  # another agent holds it
        try:
            self.kube.replace(self.path, self._body(current, acquire=True))
        except ApiError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    def acquire(self) -> bool:
        """Block until the lease is held (True) or ``stop`` was called (False)."""
        waited = False
        while not self._stop.is_set():
            try:
                if self.try_acquire():
                    self.held.set()
                    self._thread = threading.Thread(
                        target=self._renew, name="lease-renew", daemon=True
                    )
                    self._thread.start()
                    return True
                if not waited:
                    _LOG.info("lease held by another agent; waiting", extra={"lease": self.name})
                    waited = True
            except Exception as exc:  # API unreachable: try again
                _LOG.warning("lease: %s", exc, extra={"lease": self.name})
            self._stop.wait(min(2.0, self.duration / 3))
        return False

    def _renew(self) -> None:
        while not self._stop.wait(self.duration / 3):
            try:
                if not self.try_acquire():
                    _LOG.error("lease taken over by another agent", extra={"lease": self.name})
                    self.held.clear()
                    if self.on_lost is not None:
                        self.on_lost()
                    return
            except Exception as exc:  # unreachable: keep the rules, keep trying
                _LOG.warning("lease renewal failed: %s", exc, extra={"lease": self.name})

    def release(self) -> None:
        """Stop renewing and give the lease up (a clean shutdown lets a successor start now)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if not self.held.is_set():
            return
        try:
            current = self.kube.get(self.path)
            if (current.get("spec") or {}).get("holderIdentity") == self.identity:
                body = self._body(current, acquire=False)
                body["spec"]["holderIdentity"] = None
                body["spec"]["leaseDurationSeconds"] = 1
                self.kube.replace(self.path, body)
        except Exception as exc:
            _LOG.warning("lease release failed: %s", exc, extra={"lease": self.name})
        self.held.clear()


class EventRecorder:
    """Posts a Warning Event on an object once per (object uid, resourceVersion, reason)."""

    def __init__(self, kube: Kube, *, node: str) -> None:
        self.kube = kube
        self.node = node
        self._sent: set[tuple[str, str, str]] = set()

    def warn(self, obj: Mapping[str, Any], *, kind: str, reason: str, message: str) -> bool:
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        once = (str(metadata.get("uid", "")), str(metadata.get("resourceVersion", "")), reason)
        if once in self._sent:
            return False
        now = _now()
        api_version = "networking.k8s.io/v1" if kind == "NetworkPolicy" else "v1"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata.get('name', 'object')}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": "kubefence-agent", "host": self.node},
            "reportingComponent": "kubefence-agent",
            "reportingInstance": self.node,
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        try:
            self.kube.create(EVENTS.path(namespace=namespace), event)
        except Exception as exc:  # an Event is best effort; the metric still counts
            _LOG.warning("event not posted: %s", exc)
            return False
        self._sent.add(once)
        return True
