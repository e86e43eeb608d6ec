"""Benchmark: ``kubectl apply`` of a 300-replica Deployment until all 300 pods are bound.

Why this module exists: issue 13 asks for 300 pods on 3 nodes Running within 15 s; the
controllers' share of that is Deployment -> ReplicaSet -> 300 pod creations -> 300 bindings.
This script starts a real cluster (API server, SQLite store) and the controllers process in a
temporary state directory, registers 3 Node objects whose Leases it renews (no node
components: nothing runs the pods, so this measures the control plane alone), and for each of
``--repeat`` runs, in a fresh namespace, times ``kubectl apply`` of the Deployment until a watch
has seen every pod bound. Per pod it reports the bind latency: from the watch's first sight of
the pod (unbound) to its first sight bound (inside the burst, so it includes queueing behind the
other 299). Then ``--single`` pods are created one at a time, each waited for: create request
-> seen bound, the latency of one pod on an idle cluster. Prints one JSON object; the figures
to quote are ``median_total_s``, ``bind_latency_ms`` (p50/p95 over all runs) and
``single_pod_create_to_bound_ms``; ``apiserver_cpu_s``/``controllers_cpu_s`` per run (CPU
time, from the apply until the last pod was bound) show which process the burst is bound by.

    python benchmarks/bench_controllers.py                  # 3 runs of 300 replicas
    python benchmarks/bench_controllers.py --replicas 100 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubefence.client import Kube, Resource, connect
from kubefence.control.cluster import cluster_down, cluster_up

PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
KUBECTL = Path(sys.executable).parent / "kubectl"


def _micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _nodes(kube: Kube, count: int) -> list[str]:
    names = [f"bench-node-{i}" for i in range(1, count + 1)]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for i, name in enumerate(names, start=1):
        kube.create(NODES.path(), {"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": name},
                                   "spec": {"podCIDR": f"198.18.{i}.0/24"}})  # fmt: skip
        kube.patch(NODES.path(name=name, subresource="status"), {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": stamp}]}})  # fmt: skip
        kube.create(
            LEASES.path(namespace="kube-node-lease"),
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": _micro()},
            },
        )
    return names


def _heartbeat(kube: Kube, names: list[str], stop: threading.Event) -> None:
    while not stop.wait(5.0):
        for name in names:
            kube.patch(LEASES.path(namespace="kube-node-lease", name=name),
                       {"spec": {"renewTime": _micro()}})  # fmt: skip


def _manifest(replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                 "template": {"metadata": {"labels": {"app": "bench"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    })  # fmt: skip


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(
    kube: Kube, env: dict[str, str], namespace: str, replicas: int, pids: dict[str, int]
) -> dict[str, Any]:
    subprocess.run([str(KUBECTL), "create", "namespace", namespace], env=env, check=True,
                   capture_output=True)  # fmt: skip
    _, version = kube.list(PODS.path(namespace=namespace))
    first: dict[str, float] = {}
    bound: dict[str, float] = {}
    nodes: dict[str, str] = {}
    done = threading.Event()

    def watch() -> None:
        for event in kube.watch(PODS.path(namespace=namespace), resource_version=version,
                                timeout_seconds=120):  # fmt: skip
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            if not name or event.get("type") not in ("ADDED", "MODIFIED"):
                continue
            seen = time.perf_counter()
            first.setdefault(name, seen)
            node = (obj.get("spec") or {}).get("nodeName")
            if node and name not in bound:
                bound[name] = seen
                nodes[name] = node
                if len(bound) >= replicas:
                    done.set()
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.2)  # the watch is open
    cpu_before = {name: _cpu(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    subprocess.run([str(KUBECTL), "apply", "-n", namespace, "-f", "-"], input=_manifest(replicas),
                   text=True, env=env, check=True, capture_output=True)  # fmt: skip
    applied = time.perf_counter() - started
    if not done.wait(120):
        raise SystemExit(f"only {len(bound)} of {replicas} pods bound after 120 s")
    total = max(bound.values()) - started
    cpu = {f"{name}_cpu_s": round(_cpu(pid) - cpu_before[name], 2) for name, pid in pids.items()}
    created = max(first.values()) - started
    latencies = [bound[n] - first[n] for n in bound]
    spread: dict[str, int] = {}
    for node in nodes.values():
        spread[node] = spread.get(node, 0) + 1
    subprocess.run([str(KUBECTL), "delete", "namespace", namespace], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return {"total_s": round(total, 3), "kubectl_apply_s": round(applied, 3), **cpu,
            "all_created_s": round(created, 3),
            "latencies": latencies, "spread": spread}  # fmt: skip


def _single(kube: Kube, namespace: str, count: int) -> list[float]:
    """Pods created one at a time, each waited for: create request sent -> seen bound (s)."""
    kube.create("/api/v1/namespaces", {"metadata": {"name": namespace}})
    latencies = []
    for i in range(count):
        _, version = kube.list(PODS.path(namespace=namespace))
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"one-{i}"},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}  # fmt: skip
        started = time.perf_counter()
        kube.create(PODS.path(namespace=namespace), pod)
        for event in kube.watch(PODS.path(namespace=namespace), resource_version=version,
                                timeout_seconds=30):  # fmt: skip
            obj = event.get("object") or {}
            if obj.get("metadata", {}).get("name") == f"one-{i}" and obj["spec"].get("nodeName"):
                latencies.append(time.perf_counter() - started)
                break
    kube.delete(f"/api/v1/namespaces/{namespace}")
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--single", type=int, default=20, help="pods created one at a time")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="kubefence-bench-ctl-"))
    os.environ["KUBEFENCE_STATE"] = str(state)
    info = cluster_up("bench")
    stop = threading.Event()
    env = {**os.environ, "KUBECONFIG": str(info.directory / "kubeconfig"),
           "KUBECACHEDIR": str(state / "kubectl-cache")}  # fmt: skip
    log = (state / "controllers.log").open("wb")
    controllers = subprocess.Popen(
        [sys.executable, "-m", "kubefence.controllers", "--kubeconfig",
         str(info.directory / "controller-manager.kubeconfig"), "--log-level", "WARNING"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        kube = connect(info.directory / "kubeconfig", pool_size=16)
        names = _nodes(kube, args.nodes)
        threading.Thread(target=_heartbeat, args=(kube, names, stop), daemon=True).start()
        time.sleep(2.0)  # the controllers have synced
        pids = {"apiserver": int(info.pid or 0), "controllers": controllers.pid}
        runs = [_run(kube, env, f"bench-{i}", args.replicas, pids) for i in range(args.repeat)]
        single = sorted(_single(kube, "bench-single", args.single)) if args.single else [0.0]
        latencies = sorted(x for run in runs for x in run.pop("latencies"))

        def pct(q: float) -> float:
            return round(1000 * latencies[min(int(q * len(latencies)), len(latencies) - 1)], 1)

        print(json.dumps({
            "replicas": args.replicas, "nodes": args.nodes, "runs": runs,
            "median_total_s": statistics.median(r["total_s"] for r in runs),
            "bind_latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "max": pct(1.0)},
            "single_pod_create_to_bound_ms": {
                "p50": round(1000 * statistics.median(single), 1),
                "max": round(1000 * single[-1], 1), "pods": len(single)},
            "cpus": os.cpu_count(),
        }, indent=2))  # fmt: skip
        return 0
    finally:
        stop.set()
        controllers.terminate()
        try:
            controllers.wait(timeout=10)
        except subprocess.TimeoutExpired:
            controllers.kill()
            controllers.wait()
        log.close()
        cluster_down("bench")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
