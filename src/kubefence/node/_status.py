"""The objects a node writes: its Node, its Lease, its pods' status and Events (pure).

Why this module exists: what ``kubectl get nodes``/``get pods -o wide``/``describe`` show is
built from these fields, so they follow the kubelet's shapes (conditions with reasons,
containerStatuses with ``state.running.startedAt``, podIPs in IPv4-then-IPv6 order). Building
them without I/O keeps them testable and keeps the component's loop short.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from kubefence.node._catalogue import PodPlan

__all__ = [
    "KUBELET_PORT",
    "LEASE_SECONDS",
    "VERSION",
    "event",
    "lease",
    "node_object",
    "node_status",
    "now",
    "now_micro",
    "pod_status",
]

VERSION = "v1.37.0-kubefence"
KUBELET_PORT = 10250
LEASE_SECONDS = 10  # kubelet default 40; a sandbox node is declared lost faster
Obj = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_object(
    name: str, *, pod_cidrs: Sequence[str], address: str, port: int, max_pods: int
) -> Obj:
    """The Node as registered: labels, pod CIDRs and the status ``node_status`` gives."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": pod_cidrs[0], "podCIDRs": list(pod_cidrs)},
        "status": node_status(name, address=address, port=port, max_pods=max_pods),
    }


def node_status(name: str, *, address: str, port: int, max_pods: int) -> Obj:
    stamp = now()

    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}  # fmt: skip

    capacity = {"cpu": "2", "memory": "4Gi", "pods": str(max_pods), "ephemeral-storage": "10Gi"}
    return {
        "conditions": [
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": capacity,
        "allocatable": dict(capacity),
        "nodeInfo": {
            "kubeletVersion": VERSION,
            "kubeProxyVersion": VERSION,
            "containerRuntimeVersion": "kubefence://1",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "kubefence sandbox node",
            "kernelVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def lease(name: str, *, duration: int = LEASE_SECONDS) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration,
            "renewTime": now_micro(),
        },
    }


def _container_status(
    container: Any,
    *,
    pod_uid: str,
    running_since: str | None,
    exited: int | None,
    restarts: int,
    started_at: str,
    waiting: str = "",
) -> Obj:
    status: Obj = {
        "name": container.name,
        "image": container.image,
        "imageID": f"kubefence://{container.image}",
        "containerID": f"kubefence://{pod_uid}-{container.name}",
        "restartCount": restarts,
    }
    if running_since is not None:
        status.update(ready=True, started=True, state={"running": {"startedAt": running_since}})
    elif exited is not None:
        status.update(ready=False, started=False, state={"terminated": {
            "exitCode": exited, "reason": "Completed" if exited == 0 else "Error",
            "startedAt": started_at, "finishedAt": now()}})  # fmt: skip
    else:
        status.update(ready=False, started=False,
                      state={"waiting": {"reason": waiting or "ContainerCreating"}})  # fmt: skip
    return status


def pod_status(
    plan: PodPlan,
    *,
    uid: str,
    pod_ips: Sequence[str],
    host_ip: str,
    started_at: str,
    running: Mapping[str, str],
    exited: Mapping[str, int],
    restarts: Mapping[str, int],
    waiting: Mapping[str, str],
) -> Obj:
    """``status`` of a pod whose containers run since ``running[name]`` (RFC 3339) or exited
    with ``exited[name]``; served-only containers are in ``running`` too."""
    statuses = [
        _container_status(
            c,
            pod_uid=uid,
            running_since=running.get(c.name),
            exited=exited.get(c.name),
            restarts=restarts.get(c.name, 0),
            started_at=started_at,
            waiting=waiting.get(c.name, ""),
        )
        for c in plan.containers
    ]
    all_running = all(c.name in running for c in plan.containers)
    all_exited = all(c.name in exited for c in plan.containers)
    if all_exited and plan.containers:
        phase = "Succeeded" if all(code == 0 for code in exited.values()) else "Failed"
    else:
        # A container that ran and waits for its restart keeps the pod Running, as kubelets do.
        started = any(c.name in running or restarts.get(c.name) for c in plan.containers)
        phase = "Running" if started else "Pending"
    stamp = now()
    ready = "True" if all_running else "False"

    def condition(kind: str, status: str) -> Obj:
        return {"type": kind, "status": status, "lastProbeTime": None,
                "lastTransitionTime": stamp}  # fmt: skip

    status: Obj = {
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", "True"),
            condition("Initialized", "True"),
            condition("Ready", ready),
            condition("ContainersReady", ready),
            condition("PodScheduled", "True"),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": started_at,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }
    if pod_ips:
        status["podIP"] = pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod_ips]
    return status


def event(
    *, pod: Mapping[str, Any], node: str, reason: str, message: str, kind: str = "Normal"
) -> Obj:
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace", "default"))
    stamp = now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{metadata.get('name', 'pod')}.",
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": metadata.get("name"),
            "namespace": namespace,
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
