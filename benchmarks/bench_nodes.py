"""The sandbox cluster's node timings (root): pods created through the API until Running.

Why this module exists: issue 13 sets two targets for ``cluster up --nodes 3``: ``kubectl
apply`` of 300 pods until all are ``Running`` in at most 15 s, and pod create -> Running p50 at
most 200 ms. This script brings a cluster up in a temporary state directory, then

1. creates ``--single`` pods one at a time (round-robin over the nodes) and times each from the
   create request to the watch event that shows it Running (p50, p90, max);
2. applies ``--pods`` pods in one ``kubectl apply -f`` and times until every one is Running;
3. deletes them all and times until their pod namespaces are gone (add-on pods stay).

Pods are bound with ``spec.nodeName`` (round-robin) so the numbers are the nodes' own, not a
scheduler's; with ``--scheduler`` they are left unbound for ``kubefence.controllers`` to place.
The cluster is taken down afterwards, also on failure.

    sudo .venv/bin/python benchmarks/bench_nodes.py --nodes 3 --pods 300 --single 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubefence.client import Informer, Resource, connect
from kubefence.control.cluster import cluster_down, cluster_up

KUBECTL = Path(sys.executable).parent / "kubectl"
PODS = Resource("", "v1", "pods")


def _pod(name: str, node: str | None, namespace: str = "bench") -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}],
        },
    }
    if node is None:
        del pod["spec"]["nodeName"]
    return pod


class _Watch:
    """The first monotonic time each pod was seen Running."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.changed = threading.Condition()

    def handler(self, event: Any) -> None:
        if (event.obj.get("status") or {}).get("phase") == "Running":
            with self.changed:
                self.running.setdefault(event.key, time.monotonic())
                self.changed.notify_all()

    def wait(self, keys: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not keys <= self.running.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


def _netns_count(name: str) -> int:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return sum(1 for line in done.stdout.splitlines() if line.startswith(f"kf-{name}-node-")
               and line.split()[0].count("-") >= 4)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--single", type=int, default=30)
    parser.add_argument("--scheduler", action="store_true", help="leave pods unbound")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kf-bench-nodes-"))
    os.environ["KUBEFENCE_STATE"] = str(tmp)
    name = "bench"
    nodes: list[str | None] = [f"node-{i}" for i in range(args.nodes)]
    if args.scheduler:
        nodes = [None]
    results: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods, "scheduler": args.scheduler}
    try:
        started = time.monotonic()
        info = cluster_up(name, nodes=args.nodes, timeout=120)
        results["cluster_up_s"] = round(time.monotonic() - started, 2)
        kube = connect(info.directory / "kubeconfig")
        kube.create("/api/v1/namespaces", {"metadata": {"name": "bench"}})
        watch = _Watch()
        baseline = _netns_count(name)  # pods of add-ons (kube-dns) stay
        informer = Informer(kube, PODS, handler=watch.handler, namespace="bench").start()
        informer.wait_synced(30)
        latencies = []
        for i in range(args.single):
            sent = time.monotonic()
            kube.create(PODS.path(namespace="bench"), _pod(f"one-{i}", nodes[i % len(nodes)]))
            if not watch.wait({f"bench/one-{i}"}, 30):
                raise SystemExit(f"one-{i} not Running in 30 s")
            latencies.append(watch.running[f"bench/one-{i}"] - sent)
        ms = sorted(x * 1000 for x in latencies)
        if ms:
            results["single_ms"] = {
                "p50": round(statistics.median(ms), 1),
                "p90": round(ms[int(0.9 * (len(ms) - 1))], 1),
                "max": round(ms[-1], 1),
            }
        manifest = "\n---\n".join(
            json.dumps(_pod(f"many-{i}", nodes[i % len(nodes)])) for i in range(args.pods)
        )
        env = {**os.environ, "KUBECONFIG": str(info.directory / "kubeconfig")}
        keys = {f"bench/many-{i}" for i in range(args.pods)}
        started = time.monotonic()
        subprocess.run([str(KUBECTL), "apply", "-f", "-"], input=manifest, text=True, env=env,
                       check=True, capture_output=True)  # fmt: skip
        applied = time.monotonic() - started
        if not watch.wait(keys, 120):
            raise SystemExit(f"only {len(keys & watch.running.keys())} Running after 120 s")
        last = max(watch.running[k] for k in keys)
        results["apply_s"] = round(applied, 2)
        results["all_running_s"] = round(last - started, 2)
        burst = sorted((watch.running[k] - started) * 1000 for k in keys)
        results["burst_running_ms"] = {"p50": round(statistics.median(burst), 1),
                                       "max": round(burst[-1], 1)}  # fmt: skip
        started = time.monotonic()
        subprocess.run([str(KUBECTL), "delete", "pods", "-n", "bench", "--all", "--wait=false"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        while _netns_count(name) > baseline and time.monotonic() - started < 120:
            time.sleep(0.1)
        results["delete_all_s"] = round(time.monotonic() - started, 2)
        informer.stop(timeout=1)
        kube.close()
    finally:
        started = time.monotonic()
        cluster_down(name)
        results["cluster_down_s"] = round(time.monotonic() - started, 2)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
