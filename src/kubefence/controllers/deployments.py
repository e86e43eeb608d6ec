"""The Deployment controller: one ReplicaSet per pod template, rolled as the strategy says.

Why this module exists: a Deployment names a pod template and a replica count; this loop
keeps a ReplicaSet ``<deployment>-<pod-template-hash>`` for the current template (the hash also
labels its selector and pods, so ReplicaSets of different templates never share pods), owned by
the Deployment, with the revision in ``deployment.kubernetes.io/revision``. A changed template
gets a new ReplicaSet and the old ones are scaled down:

* ``RollingUpdate`` follows upstream's arithmetic: the new ReplicaSet grows while all replicas
  stay within ``replicas + maxSurge``, old ones shrink while ``replicas - maxUnavailable`` stay
  available (unavailable old pods are removed first). Pods only count as available when their
  node component reports them Ready, so a rollout waits for real readiness.
* ``Recreate`` scales every old ReplicaSet to 0, waits until their pods are gone, then scales
  the new one up.

Old ReplicaSets beyond ``revisionHistoryLimit`` are deleted once empty. The status
(``replicas``, ``updatedReplicas``, ``readyReplicas``, ``availableReplicas``,
``observedGeneration``, Available/Progressing conditions) is what ``kubectl get deploy`` and
``kubectl rollout status`` read. Not done: ``progressDeadlineSeconds`` (no
ProgressDeadlineExceeded), ``minReadySeconds``, proportional scaling of a rollout in flight
(a scale during a rollout resizes the new ReplicaSet only), adoption of orphaned ReplicaSets.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._events import EventRecorder
from kubefence.controllers._objects import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    controller_of,
    int_or_percent,
    is_active,
    meta,
    now,
    owner_reference,
    semantic,
    template_hash,
)
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["DeploymentController", "rolling_targets"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers.deployments")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def _replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas") or 0)


def _available(rs: Obj) -> int:
    return int((rs.get("status") or {}).get("availableReplicas") or 0)


def _revision(rs: Obj) -> int:
    try:
        return int((meta(rs).get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def _without_hash(template: Any) -> Any:
    clean = copy.deepcopy(template or {})
    labels = (clean.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return clean


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas") or 0)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def rolling_targets(deployment: Obj, new: Obj, olds: list[Obj]) -> dict[str, int]:
    """The replica counts one rolling-update step sets: ReplicaSet name -> spec.replicas (only
    the ones that change), by upstream's rules."""
    replicas = int((deployment.get("spec") or {}).get("replicas") or 0)
    surge, unavailable = surge_and_unavailable(deployment)
    targets: dict[str, int] = {}
    every = [new, *olds]
    total = sum(_replicas(rs) for rs in every)
    new_count = _replicas(new)
    if new_count > replicas:
        new_count = replicas
    elif new_count < replicas and total < replicas + surge:
        new_count = min(new_count + replicas + surge - total, replicas)
    if new_count != _replicas(new):
        targets[str(meta(new).get("name"))] = new_count
    counts = {str(meta(rs).get("name")): _replicas(rs) for rs in olds}
    all_pods = sum(_replicas(rs) for rs in every)
    min_available = replicas - unavailable
    new_unavailable = _replicas(new) - _available(new)
    budget = all_pods - min_available - new_unavailable
    ordered = sorted(olds, key=lambda rs: str(meta(rs).get("creationTimestamp") or ""))
    if budget > 0:  # first the old pods that are not available anyway
        for rs in ordered:
            name = str(meta(rs).get("name"))
            unhealthy = counts[name] - _available(rs)
            cut = min(budget, max(unhealthy, 0))
            counts[name] -= cut
            budget -= cut
    available = sum(_available(rs) for rs in every)
    spare = available - min_available
    for rs in ordered:
        if spare <= 0:
            break
        name = str(meta(rs).get("name"))
        cut = min(spare, counts[name], _available(rs))
        counts[name] -= cut
        spare -= cut
    for rs in olds:
        name = str(meta(rs).get("name"))
        if counts[name] != _replicas(rs):
            targets[name] = counts[name]
    return targets


class DeploymentController(Controller):
    name = "deployment"
    workers = 2

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        super().__init__(hub, stop)
        self.deployments = hub.subscribe(DEPLOYMENTS, lambda e: self.queue.add(e.key))
        self.sets = hub.subscribe(REPLICASETS, self._on_set)
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.events = EventRecorder(self.kube, "deployment-controller")

    def _owner_key(self, obj: Obj) -> str | None:
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        return f"{meta(obj).get('namespace')}/{ref.get('name')}"

    def _on_set(self, event: Event) -> None:
        key = self._owner_key(event.obj)
        if key:
            self.queue.add(key)

    def _on_pod(self, event: Event) -> None:
        if event.type != "DELETED":  # Recreate waits for old pods to be gone
            return
        ref = controller_of(event.obj)
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.sets.get(f"{meta(event.obj).get('namespace')}/{ref.get('name')}")
            key = self._owner_key(rs) if rs else None
            if key:
                self.queue.add(key)

    def reconcile(self, key: str) -> float | None:
        deployment = self.deployments.get(key)
        if deployment is None or meta(deployment).get("deletionTimestamp"):
            return None
        uid = str(meta(deployment).get("uid"))
        owned = [
            rs for rs in self.sets.owned_by(uid) if (controller_of(rs) or {}).get("uid") == uid
        ]
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        wanted = semantic(template)
        new = next((rs for rs in owned
                    if semantic(_without_hash((rs.get("spec") or {}).get("template"))) == wanted),
                   None)  # fmt: skip
        olds = [rs for rs in owned if rs is not new]
        if spec.get("paused"):
            self._status(deployment, new, olds)
            return None
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        if new is None:
            first = 0 if recreate and any(_replicas(rs) for rs in olds) else None
            new = self._new_set(deployment, olds, replicas=first)
            olds = [rs for rs in olds if meta(rs).get("uid") != meta(new).get("uid")]
        elif olds and _revision(new) <= max(_revision(rs) for rs in olds):
            new = self._bump_revision(new, max(_revision(rs) for rs in olds) + 1)
        if recreate:
            self._recreate(deployment, new, olds)
        else:
            by_name = {str(meta(rs).get("name")): rs for rs in [new, *olds]}
            for name, count in rolling_targets(deployment, new, olds).items():
                self._scale(deployment, by_name[name], count)
        self._cleanup(deployment, olds)
        self._status(deployment, new, olds)
        self._annotate(deployment, new)
        return None

    def _new_set(self, deployment: Obj, olds: list[Obj], *, replicas: int | None) -> Obj:
        m = meta(deployment)
        spec = deployment.get("spec") or {}
        collisions = int((deployment.get("status") or {}).get("collisionCount") or 0)
        digest = template_hash(spec.get("template"), collisions)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        wanted = int(spec.get("replicas") or 0)
        if replicas is None:
            surge, _ = surge_and_unavailable(deployment)
            room = wanted + surge - sum(_replicas(rs) for rs in olds)
            replicas = max(min(wanted, room), 0) if olds else wanted
        revision = max((_revision(rs) for rs in olds), default=0) + 1
        rs_name = f"{m.get('name')}-{digest}"
        body: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": m.get("namespace"),
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {REVISION: str(revision),
                                "deployment.kubernetes.io/desired-replicas": str(wanted)},
                "ownerReferences": [owner_reference(deployment, kind="Deployment",
                                                    api_version="apps/v1")],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template,
                     "minReadySeconds": int(spec.get("minReadySeconds") or 0)},
        }  # fmt: skip
        path = REPLICASETS.path(namespace=m.get("namespace"))
        try:
            created = self.kube.create(path, body)
            if replicas:
                self._scaled(deployment, rs_name, 0, replicas)
            return created
        except ApiError as exc:
            if exc.code != 409:
                raise
        existing = self.kube.get(REPLICASETS.path(namespace=m.get("namespace"), name=rs_name))
        if (controller_of(existing) or {}).get("uid") == m.get("uid"):
            return existing  # ours, created by an earlier pass the cache has not shown yet
        status = {**(deployment.get("status") or {}), "collisionCount": collisions + 1}
        self.kube.replace(
            DEPLOYMENTS.path(namespace=m.get("namespace"), name=m.get("name"),
                             subresource="status"),
            {**deployment, "status": status},
        )  # fmt: skip
        raise RuntimeError(f"ReplicaSet name {rs_name} taken; a new hash on the next pass")

    def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> None:
        m = meta(rs)
        self.kube.patch(REPLICASETS.path(namespace=m.get("namespace"), name=m.get("name")),
                        {"spec": {"replicas": replicas}})  # fmt: skip
        self._scaled(deployment, str(m.get("name")), _replicas(rs), replicas)

    def _scaled(self, deployment: Obj, name: str, before: int, after: int) -> None:
        way = "up" if after > before else "down"
        self.events.record(
            deployment, kind="Deployment", kind_type="Normal", reason="ScalingReplicaSet",
            message=f"Scaled {way} replica set {name} from {before} to {after}",
            api_version="apps/v1",
        )  # fmt: skip

    def _recreate(self, deployment: Obj, new: Obj, olds: list[Obj]) -> None:
        busy = False
        for rs in olds:
            if _replicas(rs):
                self._scale(deployment, rs, 0)
                busy = True
            elif any(is_active(p) for p in self.pods.owned_by(str(meta(rs).get("uid")))):
                busy = True
        wanted = int((deployment.get("spec") or {}).get("replicas") or 0)
        if not busy and _replicas(new) != wanted:
            self._scale(deployment, new, wanted)

    def _cleanup(self, deployment: Obj, olds: list[Obj]) -> None:
        limit = int((deployment.get("spec") or {}).get("revisionHistoryLimit", 10))
        empty = [
            rs for rs in olds if not _replicas(rs) and not (rs.get("status") or {}).get("replicas")
        ]
        empty.sort(key=_revision)
        for rs in empty[: max(len(empty) - limit, 0)]:
            m = meta(rs)
            try:
                self.kube.delete(REPLICASETS.path(namespace=m.get("namespace"), name=m.get("name")))
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _bump_revision(self, rs: Obj, revision: int) -> Obj:
        """An older template is current again (``kubectl rollout undo``): as upstream, its
        ReplicaSet becomes the newest revision."""
        m = meta(rs)
        return self.kube.patch(
            REPLICASETS.path(namespace=m.get("namespace"), name=m.get("name")),
            {"metadata": {"annotations": {REVISION: str(revision)}}},
        )

    def _annotate(self, deployment: Obj, new: Obj) -> None:
        revision = (meta(new).get("annotations") or {}).get(REVISION)
        if revision and (meta(deployment).get("annotations") or {}).get(REVISION) != revision:
            m = meta(deployment)
            self.kube.patch(DEPLOYMENTS.path(namespace=m.get("namespace"), name=m.get("name")),
                            {"metadata": {"annotations": {REVISION: revision}}})  # fmt: skip

    def _status(self, deployment: Obj, new: Obj | None, olds: list[Obj]) -> None:
        m = meta(deployment)
        every = [rs for rs in [new, *olds] if rs is not None]
        wanted = int((deployment.get("spec") or {}).get("replicas") or 0)

        def total(field: str, sets: list[Obj]) -> int:
            return sum(int((rs.get("status") or {}).get(field) or 0) for rs in sets)

        replicas = total("replicas", every)
        updated = total("replicas", [new]) if new is not None else 0
        available = total("availableReplicas", every)
        _, unavailable = surge_and_unavailable(deployment)
        current = deployment.get("status") or {}
        status: Obj = {
            "observedGeneration": int(m.get("generation") or 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas", every),
            "availableReplicas": available,
            "unavailableReplicas": max(wanted - available, 0),
        }
        if current.get("collisionCount"):
            status["collisionCount"] = current["collisionCount"]
        name = meta(new).get("name") if new is not None else ""
        complete = updated == wanted and replicas == wanted and available >= wanted
        wanted_conditions: list[tuple[str, str, str, str]] = [
            ("Available", "True" if available >= wanted - unavailable else "False",
             "MinimumReplicasAvailable" if available >= wanted - unavailable
             else "MinimumReplicasUnavailable",
             "Deployment has minimum availability." if available >= wanted - unavailable
             else "Deployment does not have minimum availability."),
            ("Progressing", "True",
             "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             f'ReplicaSet "{name}" has successfully progressed.' if complete
             else f'ReplicaSet "{name}" is progressing.'),
        ]  # fmt: skip
        old_conditions = {c.get("type"): c for c in current.get("conditions") or ()}
        conditions = []
        stamp = now()
        for kind, state, reason, message in wanted_conditions:
            before = old_conditions.get(kind) or {}
            if (before.get("status"), before.get("reason"), before.get("message")) == (
                state,
                reason,
                message,
            ):
                conditions.append(before)
                continue
            moved = before.get("status") != state
            conditions.append({
                "type": kind, "status": state, "reason": reason, "message": message,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp if moved else before.get("lastTransitionTime", stamp),
            })  # fmt: skip
        status["conditions"] = conditions
        self.write_status(DEPLOYMENTS, deployment, status)
