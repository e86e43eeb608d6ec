"""Benchmark: Service DNAT programming latency and cluster DNS query latency (issue 13, part 3).

Why this module exists: the node's kube-proxy-lite promises that a change of Services or
EndpointSlices is in the kernel within about 100 ms, however many Services there are, and a pod
waits for the DNS server on every name it resolves. This script measures both on the real
pieces: ``kubefence cluster up``'s API server, a ``ServiceProxy`` on a scratch network namespace
holding ``--services`` Services (each with ``--endpoints`` endpoints), and a ``DnsServer`` in a
second scratch namespace.

* DNAT programming latency: from the start of an EndpointSlice ``PUT`` to the proxy's table in
  the kernel (``ServiceProxy.wait_for``): API write, watch delivery, one ``nft`` transaction.
* the whole-table sync of the first start (every Service at once);
* DNS query latency: UDP queries for ``<svc>.<ns>.svc.cluster.local`` sent from inside the DNS
  namespace to 127.0.0.1, one at a time.

Needs root (network namespaces, nft). Run:

    python benchmarks/bench_services.py                       # 1,000 Services x 3 endpoints
    python benchmarks/bench_services.py --services 100 --changes 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

from dnslib import DNSRecord

from kubefence.client import Resource, connect
from kubefence.control.cluster import cluster_down, cluster_up
from kubefence.dataplane.netns import entered
from kubefence.node._dns import DnsServer
from kubefence.node._proxy import ServiceProxy

SERVICES = Resource("", "v1", "services")
SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)


def _slice(name: str, addresses: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a]} for a in addresses],
    }


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(len(ordered) * 0.9)]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=3)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    tag = f"kf-bsvc{os.getpid()}"
    node, dns_ns = f"{tag}-node", f"{tag}-dns"
    state = tempfile.mkdtemp(prefix="kf-bench-svc-")
    os.environ["KUBEFENCE_STATE"] = state
    started: list[Any] = []
    namespaces: list[str] = []
    try:
        info = cluster_up("bench-svc")
        kube = connect(info.directory / "kubeconfig")
        for netns in (node, dns_ns):
            subprocess.run(["ip", "netns", "add", netns], check=True)
            namespaces.append(netns)
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        kube.create(NAMESPACES.path(), {"metadata": {"name": "bench"}})
        began = time.monotonic()
        for i in range(args.services):
            name = f"s{i}"
            spec = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
            kube.create(
                SERVICES.path(namespace="bench"), {"metadata": {"name": name}, "spec": spec}
            )
            addresses = [f"198.18.{j}.{1 + i % 250}" for j in range(args.endpoints)]
            kube.create(SLICES.path(namespace="bench"), _slice(name, addresses))
        print(f"created {args.services} Services + EndpointSlices in "
              f"{time.monotonic() - began:.1f} s")  # fmt: skip

        began = time.monotonic()
        proxy = ServiceProxy(kube, netns=node, node="bench").start()
        started.append(proxy)
        assert proxy.wait_synced(120)
        print(f"first sync (list + whole table of {args.services} Services): "
              f"{(time.monotonic() - began) * 1000:.0f} ms")  # fmt: skip

        latencies = []
        path = SLICES.path(namespace="bench", name="s0-x")
        for change in range(args.changes):
            current = kube.get(path)
            wanted = [f"198.18.{j}.{100 + change % 100}" for j in range(1 + change % 3)]
            current["endpoints"] = [{"addresses": [a]} for a in wanted]
            t0 = time.monotonic()
            kube.replace(path, current)
            done = proxy.wait_for(
                lambda ports, wanted=wanted: any(
                    p.service == "bench/s0" and sorted(b.address for b in p.backends) == wanted
                    for p in ports
                ),
                timeout=10,
            )
            assert done
            latencies.append(time.monotonic() - t0)
        print(f"DNAT programming latency ({args.changes} EndpointSlice changes, "
              f"{args.services} Services): {_ms(latencies)}")  # fmt: skip
        counted = proxy.counters
        print(f"  proxy counters: {counted.applies} nft runs ({counted.whole} whole-table), "
              f"{counted.failures} failures")  # fmt: skip

        dns = DnsServer(kube, netns=dns_ns, address="127.0.0.1").start()
        started.append(dns)
        assert dns.wait_synced(60)
        with entered(dns_ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        times = []
        with sock:
            sock.settimeout(2.0)
            for i in range(args.queries):
                query = DNSRecord.question(f"s{i % args.services}.bench.svc.cluster.local").pack()
                t0 = time.perf_counter()
                sock.sendto(query, ("127.0.0.1", dns.port))
                answer = DNSRecord.parse(sock.recvfrom(4096)[0])
                times.append(time.perf_counter() - t0)
                assert answer.rr, answer
        print(f"DNS query latency ({args.queries} UDP queries, {args.services} Services): "
              f"{_ms(times)}")  # fmt: skip
    finally:
        for thing in reversed(started):
            thing.stop()
        for netns in namespaces:
            subprocess.run(["ip", "netns", "del", netns], check=False)
        cluster_down("bench-svc")
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
