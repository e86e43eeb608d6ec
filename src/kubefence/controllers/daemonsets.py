"""The DaemonSet controller: one pod per eligible node.

Why this module exists: node-level services (a DNS cache, a log shipper, a policy agent) run as
a DaemonSet, one pod on each node. As upstream, each pod is pinned to its node by required node
affinity on ``metadata.name`` (so the scheduler binds it, and the pod says where it belongs
before it is bound) and tolerates the taints daemons tolerate (not-ready and unreachable for
NoExecute, unschedulable and the pressure taints for NoSchedule). A node is eligible when it
matches the template's ``nodeSelector``/required affinity and its taints are tolerated; a new
pod is made only for a Ready node, while a pod on a node that went NotReady is kept (as
upstream, which tolerates that). Pods on nodes that are gone or no longer match are deleted,
and duplicates on one node removed. A template change replaces pods one node at a time
(``maxUnavailable``, default 1). Status fields are those ``kubectl get ds`` and ``kubectl
rollout status`` read.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._events import EventRecorder
from kubefence.controllers._objects import (
    DAEMONSETS,
    NODES,
    PODS,
    controller_of,
    int_or_percent,
    is_active,
    is_ready,
    meta,
    node_ready,
    owner_reference,
    pod_from_template,
    random_suffix,
    template_hash,
)
from kubefence.controllers._runtime import Controller, Hub
from kubefence.controllers.scheduler import misfit

__all__ = ["DaemonSetController", "daemon_pod_spec", "target_node"]

Obj = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"
_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def daemon_pod_spec(template_spec: Any, node: str) -> Obj:
    """The template's pod spec pinned to ``node`` with the daemon tolerations added."""
    spec: Obj = copy.deepcopy(template_spec or {})
    affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }
    tolerations = list(spec.get("tolerations") or [])
    for toleration in _TOLERATIONS:
        if toleration not in tolerations:
            tolerations.append(toleration)
    spec["tolerations"] = tolerations
    return spec


def target_node(pod: Obj) -> str:
    """The node a daemon pod belongs to: its nodeName, else its affinity's metadata.name."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
             .get("nodeSelectorTerms") or [])  # fmt: skip
    for term in terms:
        for field in term.get("matchFields") or ():
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return ""


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        super().__init__(hub, stop)
        self.sets = hub.subscribe(DAEMONSETS, lambda e: self.queue.add(e.key))
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.nodes = hub.subscribe(NODES, self._on_node)
        self.events = EventRecorder(self.kube, "daemonset-controller")
        self._pending: dict[tuple[str, str], float] = {}  # (set, node) -> created at, unseen

    def _on_pod(self, event: Event) -> None:
        ref = controller_of(event.obj)
        if ref is not None and ref.get("kind") == "DaemonSet":
            self.queue.add(f"{meta(event.obj).get('namespace')}/{ref.get('name')}")

    def _on_node(self, event: Event) -> None:
        old = event.old or {}
        if event.type == "MODIFIED" and (
            node_ready(old),
            meta(old).get("labels"),
            (old.get("spec") or {}).get("taints"),
        ) == (
            node_ready(event.obj),
            meta(event.obj).get("labels"),
            (event.obj.get("spec") or {}).get("taints"),
        ):
            return
        for ds in self.sets.all():
            self.queue.add(f"{meta(ds).get('namespace')}/{meta(ds).get('name')}")

    def _fits(self, ds: Obj, node: Obj) -> bool:
        """The template's placement rules (selector, affinity, taints) allow this node; its
        readiness is judged separately."""
        name = str(meta(node).get("name"))
        probe = {"spec": daemon_pod_spec(((ds.get("spec") or {}).get("template") or {})
                                         .get("spec"), name)}  # fmt: skip
        why = misfit(probe, {**node, "status": {"conditions": [
            {"type": "Ready", "status": "True"}]}})  # fmt: skip
        return not why

    def reconcile(self, key: str) -> float | None:
        ds = self.sets.get(key)
        if ds is None or meta(ds).get("deletionTimestamp"):
            return None
        m = meta(ds)
        uid = str(m.get("uid"))
        spec = ds.get("spec") or {}
        revision = template_hash(spec.get("template"))
        nodes = {str(meta(n).get("name")): n for n in self.nodes.all()}
        by_node: dict[str, list[Obj]] = {}
        for pod in self.pods.owned_by(uid):
            if (controller_of(pod) or {}).get("uid") == uid and is_active(pod):
                by_node.setdefault(target_node(pod), []).append(pod)
        should_run = {
            name for name, node in nodes.items()
            if self._fits(ds, node) and (node_ready(node) or by_node.get(name))
        }  # fmt: skip
        cutoff = time.monotonic() - 30.0
        for name in sorted(should_run - set(by_node)):
            if node_ready(nodes[name]) and self._pending.get((key, name), 0.0) < cutoff:
                self._pending[(key, name)] = time.monotonic()
                self._create(ds, name, revision)
        for name in by_node:
            self._pending.pop((key, name), None)
        for name, pods in by_node.items():
            if name not in should_run:
                for pod in pods:
                    self._delete(ds, pod)
            elif len(pods) > 1:
                pods.sort(key=lambda p: str(meta(p).get("creationTimestamp") or ""))
                for pod in pods[1:]:
                    self._delete(ds, pod)
        mine = {n: pods[0] for n, pods in by_node.items() if n in should_run}
        self._roll(ds, mine, revision, len(should_run))
        self._status(ds, mine, should_run, by_node, revision)
        return None

    def _roll(self, ds: Obj, pods: dict[str, Obj], revision: str, desired: int) -> None:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        budget = (
            int_or_percent(
                (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                desired,
                round_up=True,
            )
            or 1
        )
        unavailable = sum(1 for p in pods.values() if not is_ready(p))
        for name in sorted(pods):
            if unavailable >= budget:
                return
            pod = pods[name]
            if (meta(pod).get("labels") or {}).get(REVISION_LABEL) != revision:
                self._delete(ds, pod)
                unavailable += 1

    def _create(self, ds: Obj, node: str, revision: str) -> None:
        m = meta(ds)
        template = (ds.get("spec") or {}).get("template") or {}
        pod = pod_from_template(
            template,
            owner_ref=owner_reference(ds, kind="DaemonSet", api_version="apps/v1"),
            name=f"{m.get('name')}-{random_suffix()}",
            namespace=str(m.get("namespace")),
            extra_labels={REVISION_LABEL: revision,
                          "pod-template-generation": str(m.get("generation") or 1)},
        )  # fmt: skip
        pod["spec"] = daemon_pod_spec(template.get("spec"), node)
        self.kube.create(PODS.path(namespace=m.get("namespace")), pod)
        self._event(ds, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    def _event(self, ds: Obj, reason: str, message: str) -> None:
        self.events.record(ds, kind="DaemonSet", kind_type="Normal", reason=reason,
                           message=message, api_version="apps/v1")  # fmt: skip

    def _delete(self, ds: Obj, pod: Obj) -> None:
        m = meta(pod)
        try:
            self.kube.delete(PODS.path(namespace=m.get("namespace"), name=m.get("name")))
        except ApiError as exc:
            if exc.code != 404:
                raise
            return
        self._event(ds, "SuccessfulDelete", f"Deleted pod: {m.get('name')}")

    def _status(
        self,
        ds: Obj,
        mine: dict[str, Obj],
        should_run: set[str],
        by_node: dict[str, list[Obj]],
        revision: str,
    ) -> None:
        m = meta(ds)
        ready = sum(1 for p in mine.values() if is_ready(p))
        status = {
            "observedGeneration": int(m.get("generation") or 1),
            "desiredNumberScheduled": len(should_run),
            "currentNumberScheduled": len(mine),
            "numberMisscheduled": sum(1 for n in by_node if n not in should_run),
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(len(should_run) - ready, 0),
            "updatedNumberScheduled": sum(
                1 for p in mine.values()
                if (meta(p).get("labels") or {}).get(REVISION_LABEL) == revision
            ),
        }  # fmt: skip
        self.write_status(DAEMONSETS, ds, status)
