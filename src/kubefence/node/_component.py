"""The node component ("kubelet-lite"): registers its Node, heartbeats, runs the pods bound to it.

Why this module exists: this is the loop that makes the API server's pods real on one sandbox
node. It is an API client with the node's certificate (never importing the control plane):

* registers the Node (labels, addresses, pod CIDRs, kubelet endpoint, Ready) and renews its
  Lease in ``kube-node-lease`` every 2 s (duration 10 s; marking a node NotReady when its lease
  runs out is the node lifecycle controller's job, in ``kubefence.controllers``), refreshing the
  Node's Ready heartbeat every 10 s (``_registration``);
* watches pods with ``spec.nodeName=<node>`` through an ``Informer`` and, for each, makes the
  pod (``_pods``), records it (``_state``) and writes its status through ``pods/status``; on
  deletion removes it;
* every half second checks container processes: an exit is recorded with its code and handled
  by the pod's ``restartPolicy`` (restarts back off 1 s, 2 s, ... up to 60 s, shown as
  ``CrashLoopBackOff``);
* after its own crash it reloads its record, restarts the node server if it died, re-lists the
  pods and reconciles: recorded pods that still exist are repaired in place (same namespace,
  address and processes), the others removed; nothing is made twice.

SIGTERM stops the component and leaves the pods running (as stopping a kubelet does);
``cluster down`` removes them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubefence.client import ApiError, Event, Informer, Kube, Resource
from kubefence.dataplane.netns import (
    NodePlan,
    NodeRecord,
    PodRecord,
    ProcessRecord,
    ServerRecord,
    load_record,
    node_server_request,
    process_alive,
    process_start_time,
    reap,
    save_record,
    start_node_server,
)
from kubefence.errors import DataplaneError
from kubefence.node._addons import start_dns, start_proxy, stop_quietly
from kubefence.node._catalogue import PodPlan, plan_pod
from kubefence.node._pods import PodHands, pod_key
from kubefence.node._registration import NodeRegistration
from kubefence.node._status import (
    KUBELET_PORT,
    event,
    now,
    pod_status,
)

__all__ = ["NodeComponent"]

_LOG = logging.getLogger("kubefence.node")
PODS = Resource("", "v1", "pods")
Obj = dict[str, Any]


def _signature(status: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must match for a pod's status to need no update."""
    containers = tuple(
        (c.get("name"), tuple(sorted((c.get("state") or {}).keys())), c.get("restartCount"),
         c.get("ready"), ((c.get("state") or {}).get("waiting") or {}).get("reason"))
        for c in status.get("containerStatuses") or ()
    )  # fmt: skip
    return (status.get("phase"), status.get("podIP"), status.get("hostIP"), containers)


class NodeComponent:
    """One node's component; ``run()`` blocks until ``stop()``."""

    def __init__(
        self, kube: Kube, *, node: NodePlan, directory: Path, python: str, port: int = 0
    ) -> None:
        self.kube = kube
        self.node = node
        self.name = node.name
        self.directory = directory
        self.hands = PodHands(node=node, directory=directory, python=python)
        self.port = port or KUBELET_PORT
        self.record = load_record(directory)
        self.lock = threading.RLock()
        self.stopped = threading.Event()
        self.pods: dict[str, Obj] = {}  # uid -> latest pod object
        self.plans: dict[str, PodPlan] = {}
        self.retry_at: dict[tuple[str, str], float] = {}
        self.waiting: dict[tuple[str, str], str] = {}
        self.registration = NodeRegistration(kube, node=node, stopped=self.stopped)
        self.informer: Informer | None = None
        self.server: ServerRecord | None = None
        self.dns: dict[str, Any] = {}  # uid -> the DNS server of a kubefence/dns pod
        self.proxy: Any = None
        # Attachable main processes (stdin/tty containers) live on this loop, with the HTTPS
        # endpoint's routes; they end with the component (their terminal is ours).
        self.interactive: dict[tuple[str, str], Any] = {}
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="runtime", daemon=True).start()

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hands.install_shims()
        self._ensure_server()
        self.registration.register(port=self.port)
        self.proxy = start_proxy(self.kube, netns=self.node.netns, node=self.name)
        self.registration.start()
        self.informer = Informer(
            self.kube,
            PODS,
            handler=self._on_event,
            field_selector=f"spec.nodeName={self.name}",
            resync=30.0,
            name=f"pods-{self.name}",
        ).start()
        while not self.informer.wait_synced(0.5):
            if self.stopped.is_set():
                return
        self._drop_unknown()
        _LOG.info("node %s: synced, %d pods", self.name, len(self.record.pods))
        while not self.stopped.wait(0.5):
            try:
                self._ensure_server()
                self._check_processes()
            except Exception:  # keep the node alive; the next round retries
                _LOG.exception("node %s: check failed", self.name)
        self.informer.stop(timeout=1.0)
        if self.proxy is not None:
            stop_quietly(self.proxy, clean=False)  # the rules stay, as kube-proxy's do
        for server in self.dns.values():
            stop_quietly(server)

    # -- the node ----------------------------------------------------------------------------
    def _ensure_server(self) -> None:
        if self.server is not None and process_alive(self.server.pid, self.server.start_time):
            return
        try:
            answer = node_server_request(self.hands.server_dir, {"op": "list"}, timeout=2.0)
            pid = int(answer["pid"])
            self.server = ServerRecord(pid=pid, start_time=None)
            return
        except DataplaneError:
            pass
        self.server = start_node_server(self.hands.server_dir)
        _LOG.info("node %s: node server started (pid %d)", self.name, self.server.pid)

    def _event(self, pod: Obj, reason: str, message: str, kind: str = "Normal") -> None:
        self.registration.post(
            event(pod=pod, node=self.name, reason=reason, message=message, kind=kind)
        )

    # -- pods --------------------------------------------------------------------------------
    def _save(self, pods: Mapping[str, PodRecord]) -> None:
        self.record = NodeRecord(pods=dict(pods))
        save_record(self.directory, self.record)

    def _on_event(self, change: Event) -> None:
        pod = change.obj
        metadata = pod.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        with self.lock:
            if change.type == "DELETED" or (pod.get("spec") or {}).get("nodeName") != self.name:
                self._remove(uid)
                return
            key = pod_key(pod)
            for other in list(self.record.pods.values()):
                if other.key == key and other.uid != uid:
                    self._remove(other.uid)  # deleted and re-created under the same name
            self.pods[uid] = pod
            if uid not in self.record.pods:
                self._create(pod)
            elif change.type in ("ADDED", "SYNC"):  # after a restart, or the periodic resync
                self._repair(pod)
            self._report(uid)

    def _drop_unknown(self) -> None:
        """After the first list: recorded pods the API server no longer has are removed."""
        assert self.informer is not None
        live = {
            str((p.get("metadata") or {}).get("uid")) for p in self.informer.snapshot().values()
        }
        with self.lock:
            for uid in [u for u in self.record.pods if u not in live]:
                _LOG.info("node %s: removing %s (gone)", self.name, self.record.pods[uid].key)
                self._remove(uid)

    def _plan(self, uid: str) -> PodPlan:
        plan = self.plans.get(uid)
        if plan is None:
            plan = self.plans[uid] = plan_pod(self.pods[uid].get("spec") or {})
        return plan

    def _create(self, pod: Obj) -> None:
        metadata = pod.get("metadata") or {}
        uid = str(metadata["uid"])
        spec = pod.get("spec") or {}
        host_network = bool(spec.get("hostNetwork"))
        index, offset = self.record.free_slot() if not host_network else (-1, -1)
        record = PodRecord(uid=uid, key=pod_key(pod), slot_index=index, offset=offset,
                           host_network=host_network, started_at=now())  # fmt: skip
        self._save({**self.record.pods, uid: record})  # recorded before anything is made
        plan = self._plan(uid)
        try:
            self.hands.make_network(record, pod)
            self.hands.serve(record, plan, str(metadata.get("name", "")))
        except (DataplaneError, OSError) as exc:
            _LOG.warning("node %s: %s failed: %s", self.name, record.key, exc)
            self._event(pod, "FailedCreatePodSandBox", str(exc), "Warning")
            return
        for image in plan.unknown_images:
            self._event(pod, "ImageNotInCatalogue",
                        f"image {image!r} is not in the sandbox catalogue: running the generic "
                        "server on its declared ports (see docs/nodes.md)", "Warning")  # fmt: skip
        self._start_containers(uid)
        self._start_dns(uid)

    def _start_dns(self, uid: str) -> None:
        if not self._plan(uid).dns or uid in self.dns:
            return
        netns = self.hands.netns(self.record.pods[uid])
        try:
            server = start_dns(self.kube, netns=netns)
        except (OSError, DataplaneError) as exc:
            self._event(self.pods[uid], "Failed", f"cluster DNS did not start: {exc}", "Warning")
            return
        if server is not None:
            self.dns[uid] = server

    def _start_containers(self, uid: str) -> None:
        record = self.record.pods[uid]
        processes = dict(record.processes)
        for container in self._plan(uid).containers:
            if not container.argv or container.name in processes:
                continue
            if container.name in record.exited:
                continue
            try:
                if container.interactive:
                    handle = asyncio.run_coroutine_threadsafe(
                        self.hands.spawn_interactive(record, container, self.pods[uid]), self.loop
                    ).result(timeout=30)
                    if handle is not None:
                        self.interactive[(uid, container.name)] = handle
                        processes[container.name] = ProcessRecord(
                            pid=handle.pid, start_time=process_start_time(handle.pid),
                            started_at=now(),
                        )  # fmt: skip
                        self.waiting.pop((uid, container.name), None)
                        continue
                processes[container.name] = self.hands.start(record, container, self.pods[uid])
                self.waiting.pop((uid, container.name), None)
            except (DataplaneError, OSError) as exc:
                self._event(self.pods[uid], "Failed", str(exc), "Warning")
                self.waiting[(uid, container.name)] = "CreateContainerError"
        self._save({**self.record.pods, uid: record.with_changes(processes=processes)})

    def _repair(self, pod: Obj) -> None:
        """A known pod (after a restart, a resync or our own status update): make what is
        missing again, in place."""
        uid = str(pod["metadata"]["uid"])
        record = self.record.pods[uid]
        slot = self.hands.slot(record)
        if slot is not None and not (Path("/run/netns") / slot.netns).exists():
            self._remove(uid)  # its namespace is gone: make it afresh
            self._create(pod)
            return
        attachable = {c.name for c in self._plan(uid).containers if c.interactive}
        orphans = [n for n in record.processes
                   if n in attachable and (uid, n) not in self.interactive
                   and self.hands.attach_supported]  # fmt: skip
        if orphans:  # attachable processes of a previous component: nobody holds their terminal
            for name in orphans:
                self.hands.kill(record.processes[name])
            record = record.with_changes(
                processes={n: p for n, p in record.processes.items() if n not in orphans},
                restarts={**record.restarts,
                          **{n: record.restarts.get(n, 0) + 1 for n in orphans}},
            )  # fmt: skip
            self._save({**self.record.pods, uid: record})
        served = self._served()
        if record.key not in served:
            try:
                self.hands.serve(record, self._plan(uid), str(pod["metadata"].get("name", "")))
            except DataplaneError as exc:
                _LOG.warning("node %s: serving %s failed: %s", self.name, record.key, exc)
        self._start_containers(uid)
        self._start_dns(uid)

    def _served(self) -> set[str]:
        try:
            answer = node_server_request(self.hands.server_dir, {"op": "list"}, timeout=2.0)
        except DataplaneError:
            return set()
        return set(answer.get("pods") or ())

    def _remove(self, uid: str) -> None:
        record = self.record.pods.get(uid)
        self.pods.pop(uid, None)
        self.plans.pop(uid, None)
        dns = self.dns.pop(uid, None)
        if dns is not None:
            stop_quietly(dns)
        for key in [k for k in self.interactive if k[0] == uid]:
            del self.interactive[key]  # its process is killed with the pod's below
        if record is None:
            return
        try:
            self.hands.remove(record)
        except (DataplaneError, OSError) as exc:
            _LOG.warning("node %s: removing %s: %s", self.name, record.key, exc)
        self._save({u: r for u, r in self.record.pods.items() if u != uid})

    def _check_processes(self) -> None:
        reap()
        with self.lock:
            for uid, record in list(self.record.pods.items()):
                if uid not in self.pods:
                    continue
                changed = False
                processes = dict(record.processes)
                exited = dict(record.exited)
                restarts = dict(record.restarts)
                policy = (self.pods[uid].get("spec") or {}).get("restartPolicy", "Always")
                for name, process in record.processes.items():
                    handle = self.interactive.get((uid, name))
                    if handle is not None:
                        if handle.returncode is None:
                            continue
                        code = int(handle.returncode)
                        del self.interactive[(uid, name)]
                    elif self.hands.alive(process):
                        continue
                    else:
                        code = self.hands.exit_code(record, name)
                    del processes[name]
                    changed = True
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        count = restarts.get(name, 0)
                        restarts[name] = count + 1
                        self.retry_at[(uid, name)] = time.monotonic() + min(2.0**count, 60.0)
                        self.waiting[(uid, name)] = "CrashLoopBackOff" if count else ""
                    else:
                        exited[name] = code
                due = [
                    n for (u, n), at in self.retry_at.items() if u == uid and at <= time.monotonic()
                ]
                if changed:
                    record = record.with_changes(processes=processes, exited=exited,
                                                 restarts=restarts)  # fmt: skip
                    self._save({**self.record.pods, uid: record})
                if due:
                    for name in due:
                        del self.retry_at[(uid, name)]
                    self._start_containers(uid)
                if changed or due:
                    self._report(uid)

    def _report(self, uid: str) -> None:
        """Write the pod's status through ``pods/status`` when it differs from the server's."""
        record = self.record.pods.get(uid)
        pod = self.pods.get(uid)
        if record is None or pod is None:
            return
        plan = self._plan(uid)
        running: dict[str, str] = {}
        for container in plan.containers:
            if container.argv:
                process = record.processes.get(container.name)
                if process is not None and (uid, container.name) not in self.retry_at:
                    running[container.name] = process.started_at
            else:
                running[container.name] = record.started_at
        waiting = {n: r for (u, n), r in self.waiting.items() if u == uid and r}
        status = pod_status(
            plan,
            uid=uid,
            pod_ips=self.hands.addresses(record),
            host_ip=str(self.node.address_v4),
            started_at=record.started_at,
            running=running,
            exited=record.exited,
            restarts=record.restarts,
            waiting=waiting,
        )
        if _signature(status) == _signature(pod.get("status") or {}):
            return
        metadata = pod["metadata"]
        path = PODS.path(namespace=metadata["namespace"], name=metadata["name"],
                         subresource="status")  # fmt: skip
        try:
            updated = self.kube.patch(path, {"status": status})
            self.pods[uid] = updated
        except ApiError as exc:
            _LOG.warning("node %s: status of %s: %s", self.name, record.key, exc)
