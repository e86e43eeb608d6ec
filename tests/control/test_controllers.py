"""The scheduler and controllers against the real API server, driven with the real kubectl.

No network namespaces: the tests create Node objects, renew their Leases, and stand in for the
node components by setting pod status (Running, an IP, Ready) themselves. The controllers run as
the process ``cluster up`` wiring starts (``python -m kubefence.controllers``) with its own
kubeconfig, and a short node grace period so lease expiry is quick to see.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.control.conftest import Cluster

from kubefence.client import ApiError, Kube, Resource, connect

PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
EVENTS = Resource("", "v1", "events")
GRACE = 5.0
NODE_NAMES = ("node-a", "node-b", "node-c")

Obj = dict[str, Any]


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last!r}")


def _micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeNodes:
    """Node objects with Leases renewed every 0.3 s, and a stand-in kubelet that marks bound
    pods of chosen namespaces Running and Ready with an address from the node's pod CIDR."""

    kube: Kube
    beating: set[str] = field(default_factory=set)
    ready_namespaces: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    counter: int = 0

    def add(self, name: str, index: int, *, labels: dict[str, str] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"podCIDR": f"198.18.{index}.0/24"},
        }
        self.kube.create(NODES.path(), body)
        self.set_ready(name, True)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": _micro()},
        }
        self.kube.create(LEASES.path(namespace="kube-node-lease"), lease)
        self.beating.add(name)

    def set_ready(self, name: str, ready: bool) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.kube.patch(
            NODES.path(name=name, subresource="status"),
            {"status": {"conditions": [{
                "type": "Ready", "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
            }]}},
        )  # fmt: skip

    def remove(self, name: str) -> None:
        self.beating.discard(name)
        for path in (NODES.path(name=name), LEASES.path(namespace="kube-node-lease", name=name)):
            with contextlib.suppress(ApiError):
                self.kube.delete(path)

    def run(self) -> None:
        """Heartbeats here (Leases every 0.3 s; Ready re-asserted every 2 s, as a node component
        does, so a heartbeat delayed on a loaded machine heals); pods on another thread."""
        threading.Thread(target=self._kubelet, daemon=True).start()
        last_status = 0.0
        while not self.stop.wait(0.3):
            for name in sorted(self.beating):
                try:
                    path = LEASES.path(namespace="kube-node-lease", name=name)
                    self.kube.patch(path, {"spec": {"renewTime": _micro()}})
                    if time.monotonic() - last_status >= 2.0:
                        self.set_ready(name, True)
                except ApiError:  # removed meanwhile
                    continue
            if time.monotonic() - last_status >= 2.0:
                last_status = time.monotonic()

    def _kubelet(self) -> None:
        while not self.stop.wait(0.3):
            try:
                for namespace in sorted(self.ready_namespaces):
                    items, _ = self.kube.list(PODS.path(namespace=namespace))
                    for pod in items:
                        node = pod["spec"].get("nodeName")
                        if node and not _is_ready(pod) and node in self.beating:
                            self.run_pod(pod)
            except Exception:  # a namespace being deleted, a pod gone meanwhile
                continue

    def run_pod(self, pod: Obj, *, ready: bool = True, ip: str | None = None) -> Obj:
        self.counter += 1
        node = pod["spec"]["nodeName"]
        index = NODE_NAMES.index(node) + 1 if node in NODE_NAMES else 9
        address = ip or f"198.18.{index}.{self.counter % 250 + 2}"
        state = "True" if ready else "False"
        status = {
            "phase": "Running",
            "podIP": address,
            "podIPs": [{"ip": address}],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": state},
                {"type": "Ready", "status": state},
            ],
            "containerStatuses": [
                {"name": c["name"], "ready": ready, "restartCount": 0, "image": c["image"],
                 "imageID": "", "started": True, "state": {"running": {}}}
                for c in pod["spec"]["containers"]
            ],
        }  # fmt: skip
        path = PODS.path(
            namespace=pod["metadata"]["namespace"],
            name=pod["metadata"]["name"],
            subresource="status",
        )
        return self.kube.patch(path, {"status": status})


def _is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


@dataclass(frozen=True)
class Controllers:
    cluster: Cluster
    kube: Kube
    nodes: FakeNodes
    process: subprocess.Popen[bytes]
    log: Any

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any:
        return self.cluster.kubectl(*args, input=input, check=check)

    def pods(self, namespace: str, selector: str = "") -> list[Obj]:
        query = {"labelSelector": selector} if selector else None
        items, _ = self.kube.list(PODS.path(namespace=namespace), query=query)
        return sorted(items, key=lambda p: p["metadata"]["name"])

    def namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        return name


@pytest.fixture(scope="module")
def ctl(cluster: Cluster) -> Iterator[Controllers]:
    kube = connect(cluster.kubeconfig)
    nodes = FakeNodes(kube)
    for index, name in enumerate(NODE_NAMES, start=1):
        nodes.add(name, index, labels={"zone": name.removeprefix("node-")})
    beat = threading.Thread(target=nodes.run, daemon=True)
    beat.start()
    log = (cluster.info.directory / "controllers.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kubefence.controllers",
         "--kubeconfig", str(cluster.info.directory / "controller-manager.kubeconfig"),
         "--node-monitor-grace-period", str(GRACE)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        holder = wait_for(lambda: _lease_holder(kube), what="the controller manager's lease")
        if not holder.startswith(f"{socket.gethostname()}_{process.pid}_"):
            pytest.fail(f"another controller manager ({holder}) leads this cluster; these tests "
                        "need their own (short node grace period)")  # fmt: skip
        yield Controllers(cluster, kube, nodes, process, log)
    finally:
        nodes.stop.set()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        beat.join(timeout=5)
        kube.close()


def _lease_holder(kube: Kube) -> str:
    try:
        lease = kube.get(LEASES.path(namespace="kube-system", name="kube-controller-manager"))
    except ApiError:
        return ""
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _pod_manifest(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "agnhost"}], **spec},
    }
    return json.dumps(body)


def _events_for(ctl: Controllers, namespace: str, name: str) -> list[Obj]:
    items, _ = ctl.kube.list(EVENTS.path(namespace=namespace))
    return [e for e in items if e["involvedObject"].get("name") == name]


# -- the scheduler ------------------------------------------------------------------------------


def test_scheduler_spreads_pods_over_ready_nodes(ctl: Controllers) -> None:
    ns = ctl.namespace("spread")
    manifests = "\n---\n".join(_pod_manifest(f"p{i}") for i in range(6))
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=manifests)
    pods = wait_for(
        lambda: [p for p in ctl.pods(ns) if p["spec"].get("nodeName")] if all(
            p["spec"].get("nodeName") for p in ctl.pods(ns)) and len(ctl.pods(ns)) == 6 else [],
        what="6 bound pods",
    )  # fmt: skip
    per_node: dict[str, int] = {}
    for pod in pods:
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
        scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert scheduled
        assert scheduled[0]["status"] == "True"
    assert per_node == {"node-a": 2, "node-b": 2, "node-c": 2}
    wide = ctl.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout
    assert "node-a" in wide
    assert "node-c" in wide
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_node_selector_and_node_name_are_respected(ctl: Controllers) -> None:
    ns = ctl.namespace("placement")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod_manifest(
        "picky", nodeSelector={"zone": "b"}))  # fmt: skip
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod_manifest("named", nodeName="node-c"))
    picky = wait_for(
        lambda: ctl.pods(ns, "app=picky")[0]["spec"].get("nodeName"), what="picky bound"
    )
    assert picky == "node-b"
    assert ctl.pods(ns, "app=named")[0]["spec"]["nodeName"] == "node-c"
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_unplaceable_pod_stays_pending_with_failed_scheduling_event(ctl: Controllers) -> None:
    ns = ctl.namespace("unplaceable")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod_manifest(
        "nowhere", nodeSelector={"zone": "mars"}))  # fmt: skip
    events = wait_for(lambda: _events_for(ctl, ns, "nowhere"), what="FailedScheduling event")
    assert events[0]["reason"] == "FailedScheduling"
    assert events[0]["type"] == "Warning"
    assert events[0]["message"].startswith(
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    )
    pod = ctl.pods(ns)[0]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    time.sleep(0.5)  # the scheduler's own status write is no reason to try (and report) again
    again = _events_for(ctl, ns, "nowhere")
    assert len(again) == 1
    assert again[0]["count"] == 1
    described = ctl.kubectl("describe", "pod", "nowhere", "-n", ns).stdout
    assert "FailedScheduling" in described
    assert "0/3 nodes are available" in described
    # a node that fits appears: the pod is placed there
    ctl.nodes.add("node-mars", 7, labels={"zone": "mars"})
    try:
        bound = wait_for(lambda: ctl.pods(ns)[0]["spec"].get("nodeName"), what="rescheduled")
        assert bound == "node-mars"
    finally:
        ctl.kubectl("delete", "namespace", ns, "--wait=false")
        ctl.nodes.remove("node-mars")


def test_cordoned_and_tainted_nodes_get_no_pods(ctl: Controllers) -> None:
    ns = ctl.namespace("cordon")
    ctl.kubectl("cordon", "node-a")
    ctl.kubectl("taint", "nodes", "node-b", "dedicated=db:NoSchedule")
    try:
        manifests = "\n---\n".join(_pod_manifest(f"q{i}") for i in range(3))
        ctl.kubectl("apply", "-n", ns, "-f", "-", input=manifests)
        wait_for(lambda: all(p["spec"].get("nodeName") for p in ctl.pods(ns))
                 and len(ctl.pods(ns)) == 3, what="3 bound")  # fmt: skip
        assert {p["spec"]["nodeName"] for p in ctl.pods(ns)} == {"node-c"}
        tolerant = _pod_manifest(
            "tolerant",
            nodeSelector={"zone": "b"},
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
            ],
        )
        ctl.kubectl("apply", "-n", ns, "-f", "-", input=tolerant)
        assert wait_for(lambda: ctl.pods(ns, "app=tolerant")[0]["spec"].get("nodeName")) == (
            "node-b"
        )
        ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod_manifest(
            "blocked", nodeSelector={"zone": "a"}))  # fmt: skip
        events = wait_for(lambda: _events_for(ctl, ns, "blocked"), what="event")
        assert events[0]["message"].startswith(
            "0/3 nodes are available: 1 node(s) were unschedulable, "
            "2 node(s) didn't match Pod's node affinity/selector."
        )
    finally:
        ctl.kubectl("uncordon", "node-a")
        ctl.kubectl("taint", "nodes", "node-b", "dedicated=db:NoSchedule-")
        ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_binding_a_bound_pod_is_a_conflict(ctl: Controllers) -> None:
    ns = ctl.namespace("binding")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_pod_manifest("once", nodeName="node-a"))
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "once"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-b"}}  # fmt: skip
    with pytest.raises(ApiError) as caught:
        ctl.kube.create(PODS.path(namespace=ns, name="once", subresource="binding"), body)
    assert caught.value.code == 409
    assert 'pod once is already assigned to node "node-a"' in str(caught.value)
    ctl.kubectl("delete", "namespace", ns, "--wait=false")
