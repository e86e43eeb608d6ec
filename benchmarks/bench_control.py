"""Control-plane benchmarks: writes, lists, watch latency and `cluster up`, against a real server.

Why this module exists: issue 12 sets performance targets for the API server; this script runs
`cluster up` in a temporary state directory and measures each one over HTTPS with the admin
client certificate, printing medians (and p99s) as a table, or JSON with `-o json`. Every
cluster it starts is taken down, also on failure.

    .venv/bin/python benchmarks/bench_control.py                 # SQLite
    .venv/bin/python benchmarks/bench_control.py --store etcd    # etcd (needs etcd-server)

| measurement                                              | target            |
|----------------------------------------------------------|-------------------|
| 1,000 pod creates by 10 concurrent clients (SQLite)      | >= 500/s, p99 20 ms |
| list 10,000 pods                                         | <= 300 ms         |
| watch event delivered after the write is acknowledged (p99) | <= 10 ms       |
| `cluster up` to ready                                    | 2 s SQLite, 5 s etcd |
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubefence.control.cluster import ClusterInfo, cluster_down, cluster_up
from kubefence.control.pki import ClusterPKI


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "n": name}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _context(info: ClusterInfo) -> ssl.SSLContext:
    pki = ClusterPKI(info.directory / "pki")
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(pki.admin_cert, pki.admin_key)
    return context


async def _create_many(
    session: aiohttp.ClientSession, url: str, namespace: str, count: int, clients: int
) -> tuple[float, list[float]]:
    """(seconds, per-write latencies) for `count` pod creates by `clients` concurrent clients."""
    names = iter(range(count))
    latencies: list[float] = []

    async def client() -> None:
        for i in names:
            started = time.perf_counter()
            async with session.post(
                f"{url}/api/v1/namespaces/{namespace}/pods", json=_pod(f"p-{i:05d}")
            ) as answer:
                await answer.read()
                if answer.status != 201:
                    raise RuntimeError(f"create failed: {answer.status}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of the server process (to judge results on a loaded machine)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _namespace(session: aiohttp.ClientSession, url: str, name: str) -> None:
    async with session.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": name}}) as a:
        await a.read()


async def _measure(info: ClusterInfo, rounds: int) -> dict[str, Any]:
    url = info.url
    connector = aiohttp.TCPConnector(ssl=_context(info), limit=0)
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        rates, p99s, cpu = [], [], []
        for r in range(rounds):
            await _namespace(session, url, f"w{r}")
            before = _cpu_seconds(info.pid)
            seconds, latencies = await _create_many(session, url, f"w{r}", 1000, 10)
            cpu.append((_cpu_seconds(info.pid) - before) / 1000 * 1000)
            rates.append(1000 / seconds)
            p99s.append(_p99(latencies) * 1000)
        results["creates_per_s"] = statistics.median(rates)
        results["create_p99_ms"] = statistics.median(p99s)
        results["server_cpu_ms_per_create"] = statistics.median(cpu)

        await _namespace(session, url, "big")
        await _create_many(session, url, "big", 10_000, 20)
        list_times, list_cpu = [], []
        for _ in range(max(rounds, 3)):
            before = _cpu_seconds(info.pid)
            started = time.perf_counter()
            async with session.get(f"{url}/api/v1/namespaces/big/pods") as answer:
                body = await answer.read()
            list_times.append((time.perf_counter() - started) * 1000)
            list_cpu.append((_cpu_seconds(info.pid) - before) * 1000)
            assert len(json.loads(body)["items"]) == 10_000
        results["list_10k_ms"] = statistics.median(list_times)
        results["server_cpu_ms_per_list_10k"] = statistics.median(list_cpu)

        await _namespace(session, url, "watch")
        async with session.get(f"{url}/api/v1/namespaces/watch/configmaps") as answer:
            start = (await answer.json())["metadata"]["resourceVersion"]
        sent: dict[str, float] = {}
        acked: dict[str, float] = {}
        seen: dict[str, float] = {}
        watch_url = f"{url}/api/v1/namespaces/watch/configmaps?watch=true&resourceVersion={start}"
        async with session.get(watch_url) as stream:

            async def read(count: int) -> None:
                while len(seen) < count:
                    event = json.loads(await stream.content.readline())
                    seen[event["object"]["metadata"]["name"]] = time.perf_counter()

            reader = asyncio.create_task(read(200))
            for i in range(200):
                name = f"c{i}"
                sent[name] = time.perf_counter()
                async with session.post(
                    f"{url}/api/v1/namespaces/watch/configmaps", json={"metadata": {"name": name}}
                ) as answer:
                    await answer.read()
                acked[name] = time.perf_counter()
                await asyncio.sleep(0.005)
            await asyncio.wait_for(reader, 30)
        after_ack = [max(seen[n] - acked[n], 0.0) * 1000 for n in sent]
        after_send = [(seen[n] - sent[n]) * 1000 for n in sent]
        results["watch_p99_ms"] = _p99(after_ack)
        results["watch_from_send_p99_ms"] = _p99(after_send)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args()
    targets = {
        "creates_per_s": (">=", 500.0),
        "create_p99_ms": ("<=", 20.0),
        "list_10k_ms": ("<=", 300.0),
        "watch_p99_ms": ("<=", 10.0),
        "up_s": ("<=", 2.0 if args.store == "sqlite" else 5.0),
    }
    with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp:
        os.environ["KUBEFENCE_STATE"] = tmp
        ups = []
        try:
            for i in range(args.rounds):
                started = time.perf_counter()
                cluster_up(f"up{i}", store=args.store)
                ups.append(time.perf_counter() - started)
                cluster_down(f"up{i}")
            info = cluster_up("bench", store=args.store)
            results = uvloop.run(_measure(info, args.rounds))
            results["up_s"] = statistics.median(ups)
        finally:
            for i in range(args.rounds):
                cluster_down(f"up{i}")
            cluster_down("bench")
    if args.output == "json":
        print(json.dumps({"store": args.store, **results}, indent=2))
        return 0
    print(f"store: {args.store}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'measurement':<18} {'value':>10}  target")
    for key, value in results.items():
        op, target = targets.get(key, ("", None))
        mark = ""
        if target is not None:
            ok = value >= target if op == ">=" else value <= target
            mark = f"{op} {target:g}  {'ok' if ok else 'MISSED'}"
        print(f"{key:<18} {value:>10.2f}  {mark}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
