"""The scheduler: binds each pending pod to the Ready node with the fewest pods.

Why this module exists: pods created without ``spec.nodeName`` (every workload's pods, and
``kubectl run``) must land on a node before a node component runs them. As upstream's default
scheduler, it filters nodes (Ready, not cordoned, ``nodeSelector``, required node affinity,
taints tolerated), scores them (here: fewest non-finished pods, ties by name: a spread that is
easy to predict), and binds through ``pods/<name>/binding``; the API server refuses (409) to
bind a pod twice. A pod no node fits stays Pending with ``PodScheduled=False/Unschedulable``
and a ``FailedScheduling`` Event in upstream's words ("0/3 nodes are available: ..."), and is
tried again when a node changes. Choosing is serial and in memory (a chosen node is "assumed"
until the informer shows the binding, so the next choice counts it); the binding requests run
in a small pool, as upstream's binding cycle runs beside the scheduling cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._events import EventRecorder
from kubefence.controllers._objects import (
    NODES,
    PODS,
    is_active,
    meta,
    node_ready,
    now,
)
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["Scheduler", "choose_node", "unschedulable_message"]

Obj = dict[str, Any]
_LOG = logging.getLogger("kubefence.controllers.scheduler")
DEFAULT_SCHEDULER = "default-scheduler"
_NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
_UNREACHABLE_TAINT = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}
_UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _node_selector_term(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    labels = meta(node).get("labels") or {}
    fields = {"metadata.name": meta(node).get("name", "")}
    for source, values in (("matchExpressions", labels), ("matchFields", fields)):
        for expr in term.get(source) or ():
            key, operator = expr.get("key", ""), expr.get("operator", "")
            wanted = [str(v) for v in expr.get("values") or ()]
            have = values.get(key)
            if operator == "In" and have not in wanted:
                return False
            if operator == "NotIn" and have in wanted:
                return False
            if operator == "Exists" and have is None:
                return False
            if operator == "DoesNotExist" and have is not None:
                return False
            if operator in ("Gt", "Lt"):
                try:
                    left, right = int(str(have)), int(wanted[0])
                except (TypeError, ValueError, IndexError):
                    return False
                if (operator == "Gt" and not left > right) or (
                    operator == "Lt" and not left < right
                ):
                    return False
    return bool(term.get("matchExpressions") or term.get("matchFields"))


def misfit(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    """Why ``pod`` cannot go to ``node`` in upstream's words, or "" when it can."""
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    wanted = spec.get("nodeName")
    if wanted and wanted != meta(node).get("name"):
        return "node(s) didn't match the requested node name"
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not tolerates(tolerations, _UNSCHEDULABLE_TAINT):
        return "node(s) were unschedulable"
    labels = meta(node).get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})  # fmt: skip
    terms = affinity.get("nodeSelectorTerms") or []
    if any(labels.get(k) != v for k, v in selector.items()) or (
        terms and not any(_node_selector_term(t, node) for t in terms)
    ):
        return "node(s) didn't match Pod's node affinity/selector"
    taints = [t for t in node_spec.get("taints") or () if t.get("effect") != "PreferNoSchedule"]
    if not node_ready(node):
        ready = next(
            (c for c in (node.get("status") or {}).get("conditions") or ()
             if c.get("type") == "Ready"), None,
        )  # fmt: skip
        unknown = ready is not None and ready.get("status") == "Unknown"
        taints.append(_UNREACHABLE_TAINT if unknown else _NOT_READY_TAINT)
    for taint in taints:
        if not tolerates(tolerations, taint):
            value = taint.get("value", "")
            return f"node(s) had untolerated taint {{{taint.get('key')}: {value}}}"
    return ""


def choose_node(
    pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], load: Mapping[str, int]
) -> tuple[str, Counter[str]]:
    """(the chosen node's name or "", and when none fits, how many nodes failed for what)."""
    reasons: Counter[str] = Counter()
    best: tuple[int, str] | None = None
    for node in nodes:
        why = misfit(pod, node)
        if why:
            reasons[why] += 1
            continue
        name = str(meta(node).get("name", ""))
        candidate = (load.get(name, 0), name)
        if best is None or candidate < best:
            best = candidate
    return (best[1] if best else ""), reasons


def unschedulable_message(total: int, reasons: Mapping[str, int]) -> str:
    """Upstream's FailedScheduling text: ``0/3 nodes are available: 1 node(s) were
    unschedulable, 2 node(s) didn't match Pod's node affinity/selector.`` (the "count reason"
    strings sorted, as upstream sorts them)."""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = ", ".join(sorted(f"{count} {why}" for why, count in reasons.items()))
    return (
        f"0/{total} nodes are available: {parts}. preemption: 0/{total} nodes are available: "
        f"{total} Preemption is not helpful for scheduling."
    )


class Scheduler(Controller):
    name = "scheduler"

    def __init__(self, hub: Hub, stop: threading.Event, *, bind_workers: int = 16) -> None:
        super().__init__(hub, stop)
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.nodes = hub.subscribe(NODES, self._on_node)
        self.events = EventRecorder(self.kube, DEFAULT_SCHEDULER)
        self._lock = threading.Lock()
        self._assumed: dict[str, str] = {}  # pod key -> node, until the informer shows it
        self._waiting: set[str] = set()  # unschedulable pods, retried when a node changes
        self._pool = ThreadPoolExecutor(bind_workers, thread_name_prefix="bind")
        self.bind_latencies: list[float] = []  # seconds from first sight to bound

    # -- events ----------------------------------------------------------------------------
    def _on_pod(self, event: Event) -> None:
        spec = event.obj.get("spec") or {}
        if event.type == "DELETED" or spec.get("nodeName"):
            with self._lock:
                self._assumed.pop(event.key, None)
                self._waiting.discard(event.key)
            return
        if (
            event.type == "MODIFIED"
            and event.old is not None
            and (
                (event.old.get("spec"), meta(event.old).get("labels"))
                == (spec, meta(event.obj).get("labels"))
            )
        ):
            return  # only its status changed (our own Unschedulable condition): nothing new
        if (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER:
            self.queue.add(event.key)

    def _on_node(self, event: Event) -> None:
        old = event.old or {}
        if event.type == "MODIFIED" and _placement_view(old) == _placement_view(event.obj):
            return
        with self._lock:
            waiting = sorted(self._waiting)
        for key in waiting:
            self.queue.add(key)

    def started(self) -> None:
        threading.Thread(target=self._retry_waiting, name="scheduler-retry", daemon=True).start()

    def _retry_waiting(self) -> None:
        while not self.stop.wait(30.0):
            with self._lock:
                waiting = sorted(self._waiting)
            for key in waiting:
                self.queue.add(key)

    # -- one pod ---------------------------------------------------------------------------
    def _load(self) -> Counter[str]:
        load: Counter[str] = Counter()
        for node in self.nodes.all():
            name = str(meta(node).get("name", ""))
            load[name] = sum(1 for pod in self.pods.on_node(name) if is_active(pod))
        with self._lock:
            for node_name in self._assumed.values():
                load[node_name] += 1
        return load

    def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or not is_active(pod):
            return None
        with self._lock:
            if key in self._assumed:
                return None
        nodes = self.nodes.all()
        chosen, reasons = choose_node(pod, nodes, self._load())
        if not chosen:
            with self._lock:
                self._waiting.add(key)
            self._unschedulable(pod, unschedulable_message(len(nodes), reasons))
            return None
        with self._lock:
            self._assumed[key] = chosen
            self._waiting.discard(key)
        self._pool.submit(self._bind, key, pod, chosen, time.monotonic())
        return None

    def _bind(self, key: str, pod: Obj, node: str, started: float) -> None:
        m = meta(pod)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": m.get("name"), "namespace": m.get("namespace"),
                         "uid": m.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }  # fmt: skip
        path = PODS.path(namespace=m.get("namespace"), name=m.get("name"), subresource="binding")
        try:
            self.kube.create(path, body)
            self.bind_latencies.append(time.monotonic() - started)
            self.events.record(
                pod, kind="Pod", kind_type="Normal", reason="Scheduled",
                message=f"Successfully assigned {m.get('namespace')}/{m.get('name')} to {node}",
            )  # fmt: skip
            if len(self.bind_latencies) > 10000:
                del self.bind_latencies[:5000]
        except ApiError as exc:
            with self._lock:
                self._assumed.pop(key, None)
            if exc.code in (404, 409):  # gone, or bound by someone else: nothing to do
                return
            _LOG.warning("binding %s to %s failed: %s", key, node, exc)
            self.queue.add_after(key, 0.5)
        except Exception as exc:
            with self._lock:
                self._assumed.pop(key, None)
            _LOG.warning("binding %s to %s failed: %s", key, node, exc)
            self.queue.add_after(key, 0.5)

    def _unschedulable(self, pod: Obj, message: str) -> None:
        m = meta(pod)
        current: Obj = next(
            (c for c in (pod.get("status") or {}).get("conditions") or ()
             if c.get("type") == "PodScheduled"), {},
        )  # fmt: skip
        if current.get("status") != "False" or current.get("message") != message:
            patch = {"status": {"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": None, "lastTransitionTime": now(),
            }]}}  # fmt: skip
            path = PODS.path(namespace=m.get("namespace"), name=m.get("name"), subresource="status")
            try:
                self.kube.patch(path, patch, kind="strategic")
            except ApiError as exc:
                if exc.code != 404:
                    raise
        self.events.record(
            pod, kind="Pod", kind_type="Warning", reason="FailedScheduling", message=message
        )

    def join(self, timeout: float = 2.0) -> None:
        super().join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _placement_view(node: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a node can change where pods fit (heartbeats alone do not)."""
    return (
        meta(node).get("labels"),
        (node.get("spec") or {}).get("taints"),
        (node.get("spec") or {}).get("unschedulable"),
        node_ready(node),
    )
