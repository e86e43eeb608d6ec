"""The garbage collector: objects whose owners are all gone are deleted (background cascade).

Why this module exists: ``kubectl delete deployment web`` removes only the Deployment; its
ReplicaSets, their pods, a Service's EndpointSlices must follow, as they do upstream through
``metadata.ownerReferences``. This loop watches the dependents kubefence's controllers make
(ReplicaSets, pods, EndpointSlices, with the caches the other loops share) and, when an owner is
deleted or a dependent shows up, checks each owner: present in a local cache by uid means alive;
otherwise the owner is fetched from the API server (never trust a cache that may lag), and only
when every owner is gone (404, or a different uid under that name) is the dependent deleted,
with a uid precondition so a new object of the same name is never hit. Deleting a ReplicaSet
this way in turn orphans its pods, which go next. Owners of kinds this process does not know are
treated as alive. ``propagationPolicy: Orphan`` is the API server's part (control/cascade.py):
it unlinks the dependents before the owner goes, and this loop deletes a dependent only at the
resourceVersion it judged. Not done: ``Foreground`` (no finalizers; it cascades in the
background) and removing a dangling reference from an object that still has a live owner.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from kubefence.client import ApiError, Event, Resource
from kubefence.controllers._objects import (
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    PODS,
    REPLICASETS,
    SERVICES,
    STATEFULSETS,
    meta,
)
from kubefence.controllers._runtime import Cache, Controller, Hub

__all__ = ["GarbageCollector"]

Obj = dict[str, Any]
_LOOK_AGAIN = 0.2  # seconds before a dependent changed since it was judged is judged again
_LOG = logging.getLogger("kubefence.controllers.gc")

# owner (apiVersion, kind) -> resource; dependents watched, by name used in queue keys
OWNERS: dict[tuple[str, str], Resource] = {
    ("apps/v1", "Deployment"): DEPLOYMENTS,
    ("apps/v1", "ReplicaSet"): REPLICASETS,
    ("apps/v1", "StatefulSet"): STATEFULSETS,
    ("apps/v1", "DaemonSet"): DAEMONSETS,
    ("v1", "Service"): SERVICES,
    ("v1", "Pod"): PODS,
}
DEPENDENTS: dict[str, Resource] = {
    "pods": PODS,
    "replicasets": REPLICASETS,
    "endpointslices": ENDPOINTSLICES,
}


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 2

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        super().__init__(hub, stop)
        self.dependents: dict[str, Cache] = {}
        for plural, resource in DEPENDENTS.items():
            self.dependents[plural] = hub.subscribe(
                resource,
                lambda event, p=plural: self._on_dependent(p, event),  # type: ignore[misc]
            )
        self.owners: dict[tuple[str, str], Cache] = {}
        for identity, resource in OWNERS.items():
            self.owners[identity] = hub.subscribe(resource, self._on_owner)

    def _on_dependent(self, plural: str, event: Event) -> None:
        if event.type != "DELETED" and meta(event.obj).get("ownerReferences"):
            owners = meta(event.obj)["ownerReferences"]
            if any(self._cached_owner(ref) is None for ref in owners if isinstance(ref, dict)):
                self.queue.add(f"{plural}|{event.key}")

    def _on_owner(self, event: Event) -> None:
        if event.type != "DELETED":
            return
        uid = str(meta(event.obj).get("uid", ""))
        for plural, cache in self.dependents.items():
            for dependent in cache.owned_by(uid):
                m = meta(dependent)
                key = (
                    f"{m.get('namespace')}/{m.get('name')}"
                    if m.get("namespace")
                    else str(m.get("name"))
                )
                self.queue.add(f"{plural}|{key}")

    def _cached_owner(self, ref: Obj) -> Obj | None:
        cache = self.owners.get((str(ref.get("apiVersion")), str(ref.get("kind"))))
        if cache is None:
            return {}  # a kind we do not know: alive as far as we can tell
        return cache.by_uid(str(ref.get("uid", "")))

    def _owner_alive(self, ref: Obj, namespace: str) -> bool:
        if self._cached_owner(ref) is not None:
            return True
        resource = OWNERS[(str(ref.get("apiVersion")), str(ref.get("kind")))]
        try:
            live = self.kube.get(resource.path(namespace=namespace, name=str(ref.get("name"))))
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return bool(meta(live).get("uid") == ref.get("uid"))

    def reconcile(self, key: str) -> float | None:
        plural, _, object_key = key.partition("|")
        cache = self.dependents.get(plural)
        obj = cache.get(object_key) if cache is not None else None
        if obj is None:
            return None
        m = meta(obj)
        refs = [r for r in m.get("ownerReferences") or () if isinstance(r, dict)]
        namespace = str(m.get("namespace") or "")
        if not refs or any(self._owner_alive(ref, namespace) for ref in refs):
            return None
        resource = DEPENDENTS[plural]
        # the cache may lag: delete only the version that was judged (an owner deleted with
        # propagationPolicy Orphan has unlinked its dependents before it went), else look again
        preconditions = {"uid": m.get("uid"), "resourceVersion": m.get("resourceVersion")}
        try:
            self.kube.request(
                "DELETE",
                resource.path(namespace=namespace or None, name=str(m.get("name"))),
                body={"preconditions": preconditions, "propagationPolicy": "Background"},
            )
            _LOG.info("deleted %s %s: its owners are gone", plural, object_key)
        except ApiError as exc:
            if exc.code == 409:
                return _LOOK_AGAIN
            if exc.code != 404:
                raise
        return None
