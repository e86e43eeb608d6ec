"""The StatefulSet controller: pods ``<name>-0`` .. ``<name>-(N-1)``, each with a stable name.

Why this module exists: a StatefulSet's pods are individuals (``web-0`` is always ``web-0``,
with hostname ``web-0`` and subdomain ``spec.serviceName``), made and removed in order. With
``podManagementPolicy: OrderedReady`` (the default) pod i is created only once 0..i-1 are
Running and Ready, and scale-down removes the highest ordinal first, one at a time; with
``Parallel`` all missing pods are created and all surplus deleted at once. A template change is
rolled out by deleting the highest-ordinal pod still at the old revision (at or above
``rollingUpdate.partition``) once all pods are Ready; it is recreated at the new revision.
Revisions are ``<name>-<template hash>`` in the pod label ``controller-revision-hash`` and in
``status.currentRevision``/``updateRevision``, which ``kubectl rollout status`` compares (no
ControllerRevision objects are stored). A failed pod is deleted and made again.
Not done: volumeClaimTemplates (no volumes here), ``ordinals.start``, ``minReadySeconds``.
"""

from __future__ import annotations

import threading
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._events import EventRecorder
from kubefence.controllers._objects import (
    PODS,
    STATEFULSETS,
    controller_of,
    is_ready,
    meta,
    owner_reference,
    pod_from_template,
    template_hash,
)
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["StatefulSetController"]

Obj = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"


def _ordinal(pod: Obj, set_name: str) -> int | None:
    name = str(meta(pod).get("name", ""))
    prefix = f"{set_name}-"
    if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
        return None
    return int(name[len(prefix) :])


def _running_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


class StatefulSetController(Controller):
    name = "statefulset"
    workers = 2

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        super().__init__(hub, stop)
        self.sets = hub.subscribe(STATEFULSETS, lambda e: self.queue.add(e.key))
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.events = EventRecorder(self.kube, "statefulset-controller")

    def _on_pod(self, event: Event) -> None:
        ref = controller_of(event.obj)
        if ref is not None and ref.get("kind") == "StatefulSet":
            self.queue.add(f"{meta(event.obj).get('namespace')}/{ref.get('name')}")

    def reconcile(self, key: str) -> float | None:
        sts = self.sets.get(key)
        if sts is None or meta(sts).get("deletionTimestamp"):
            return None
        m = meta(sts)
        name = str(m.get("name"))
        uid = str(m.get("uid"))
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas") or 0)
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        revision = f"{name}-{template_hash(spec.get('template'))}"
        pods: dict[int, Obj] = {}
        for pod in self.pods.owned_by(uid):
            ordinal = _ordinal(pod, name)
            if ordinal is not None and (controller_of(pod) or {}).get("uid") == uid:
                pods[ordinal] = pod
        self._status(sts, pods, replicas, revision)
        for _, pod in sorted(pods.items()):  # failed pods are replaced
            if (pod.get("status") or {}).get("phase") == "Failed":
                self._delete(sts, pod)
                return None
        for ordinal in range(replicas):
            if ordinal not in pods:
                self._create(sts, ordinal, revision)
                if ordered:
                    return None
            elif ordered and not _running_ready(pods[ordinal]):
                return None
        surplus = sorted((o for o in pods if o >= replicas), reverse=True)
        if surplus:
            for ordinal in surplus[:1] if ordered else surplus:
                self._delete(sts, pods[ordinal])
            return None
        if not all(_running_ready(pods[o]) for o in range(replicas) if o in pods):
            return None
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                        .get("partition") or 0)  # fmt: skip
        if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
            return None
        stale = [o for o in range(replicas - 1, partition - 1, -1)
                 if o in pods and (meta(pods[o]).get("labels") or {}).get(REVISION_LABEL)
                 != revision]  # fmt: skip
        if stale:
            self._delete(sts, pods[stale[0]])
        return None

    def _create(self, sts: Obj, ordinal: int, revision: str) -> None:
        m = meta(sts)
        spec = sts.get("spec") or {}
        pod_name = f"{m.get('name')}-{ordinal}"
        pod = pod_from_template(
            spec.get("template") or {},
            owner_ref=owner_reference(sts, kind="StatefulSet", api_version="apps/v1"),
            name=pod_name,
            namespace=str(m.get("namespace")),
            extra_labels={
                REVISION_LABEL: revision,
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(ordinal),
            },
        )
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        try:
            self.kube.create(PODS.path(namespace=m.get("namespace")), pod)
        except ApiError as exc:
            if exc.code != 409:  # already there: the cache will show it
                raise
            return
        self._event(sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet "
                    f"{m.get('name')} successful")  # fmt: skip

    def _event(self, sts: Obj, reason: str, message: str) -> None:
        self.events.record(sts, kind="StatefulSet", kind_type="Normal", reason=reason,
                           message=message, api_version="apps/v1")  # fmt: skip

    def _delete(self, sts: Obj, pod: Obj) -> None:
        m = meta(pod)
        try:
            self.kube.request(
                "DELETE",
                PODS.path(namespace=m.get("namespace"), name=m.get("name")),
                body={"preconditions": {"uid": m.get("uid")}},
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
            return
        self._event(sts, "SuccessfulDelete", f"delete Pod {m.get('name')} in StatefulSet "
                    f"{meta(sts).get('name')} successful")  # fmt: skip

    def _status(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str) -> None:
        m = meta(sts)
        current = sts.get("status") or {}
        ready = sum(1 for p in pods.values() if is_ready(p))
        updated = sum(
            1 for p in pods.values()
            if (meta(p).get("labels") or {}).get(REVISION_LABEL) == revision
        )  # fmt: skip
        current_revision = current.get("currentRevision") or revision
        if updated == replicas == len(pods) and ready == replicas:
            current_revision = revision
        status = {
            "observedGeneration": int(m.get("generation") or 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": sum(
                1 for p in pods.values()
                if (meta(p).get("labels") or {}).get(REVISION_LABEL) == current_revision
            ),
            "updatedReplicas": updated,
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": int(current.get("collisionCount") or 0),
        }  # fmt: skip
        self.write_status(STATEFULSETS, sts, status)
