"""What the flow log costs new connections (root): logging on must keep >= 0.9x the rate of off.

Why this module exists: brief J (issue 17) puts the flow log of ``kubefence flows`` in the
forward path as nft rules (NFLOG behind a shared rate limit, a counter over it); this script
checks that it does not slow new connections down. Three sandboxes run at once with the same
inventory (pod1 -> pod0 on 8080, both sides isolated, as in ``bench_dataplane``'s latency
benchmark): no flow log, a flow log nobody reads, and a flow log with ``kubefence flows -f``
reading it in its own process (the case users run). Batches of TCP connections alternate
between them, the first of a round rotating, so the machine's drift and the position in the
round affect all equally; medians of the per-batch rates.

    sudo .venv/bin/python benchmarks/bench_flows.py [--connections 20000] [-o json] [--agent]

``--agent`` measures the policy agent's table instead of the sandbox's: after each sandbox is
up, its node's table is replaced by what ``kubefence.agent``'s ``Enforcer`` installs (every pod
local): "off" as the agent runs without ``--flow-log`` and without rule counters, "on" and
"on_read" as ``cluster up`` runs it (``--flow-log``, per-policy rule counters on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_dataplane import _connect_latencies, _latency_objects

from kubefence.dataplane.netns import Sandbox, down
from kubefence.dataplane.nft import FlowLog
from kubefence.sources.objects import inventory_from_objects

_VARIANTS = ("off", "on", "on_read")
_SOURCE, _DESTINATION, _PORT = "ns0/pod1", "ns0/pod0", 8080


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _as_agent(sandbox: Sandbox, *, on: bool) -> None:
    """Install the table the agent would on this node (all pods local)."""
    from kubefence.agent._enforce import Enforcer

    enforcer = Enforcer(
        netns=sandbox.state.node_netns, flow_log=FlowLog() if on else None, counters=on
    )
    addresses = {key: slot.addresses for key, slot in sandbox.state.pods.items()}
    enforcer.install(sandbox.inventory, addresses=addresses, local=list(addresses))


def bench(connections: int, batch: int = 100, *, agent: bool = False) -> dict[str, float]:
    objects = _latency_objects(10)
    inventory = inventory_from_objects(objects)
    manifests = [
        (
            "objects.json",
            json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}).encode(),
        )
    ]
    names = {variant: f"bench-flows-{variant.replace('_', '-')}" for variant in _VARIANTS}
    rates: dict[str, list[float]] = {variant: [] for variant in _VARIANTS}
    samples: dict[str, list[float]] = {variant: [] for variant in _VARIANTS}
    sandboxes: dict[str, Sandbox] = {}
    reader: subprocess.Popen[bytes] | None = None
    result: dict[str, float] = {}
    try:
        for variant, name in names.items():
            down(name)
            sandboxes[variant] = Sandbox.up(
                inventory,
                name=name,
                manifests=manifests,
                flow_log=None if variant == "off" else FlowLog(),
            )
            if agent:
                _as_agent(sandboxes[variant], on=variant != "off")
        reader = subprocess.Popen(
            [
                *(sys.executable, "-m", "kubefence.cli.main", "flows", "-f", "-o", "json"),
                *("--name", names["on_read"]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert reader.stderr is not None
        banner = reader.stderr.readline().decode()
        assert banner.startswith("kubefence flows:"), banner
        for variant in _VARIANTS:  # warm up neighbours and caches
            _connect_latencies(sandboxes[variant], _SOURCE, _DESTINATION, _PORT, 50)
        started_all = time.perf_counter()
        for round_number in range(max(1, connections // batch)):
            shift = round_number % len(_VARIANTS)  # each variant goes first as often
            for variant in _VARIANTS[shift:] + _VARIANTS[:shift]:
                started = time.perf_counter()
                samples[variant] += _connect_latencies(
                    sandboxes[variant], _SOURCE, _DESTINATION, _PORT, batch
                )
                rates[variant].append(batch / (time.perf_counter() - started))
        result["reader_cpu_s"] = _cpu_seconds(reader.pid)
        result["measured_s"] = time.perf_counter() - started_all
    finally:
        if reader is not None:
            reader.terminate()
            reader.wait(timeout=10)
        for name in names.values():
            down(name)
    for variant in _VARIANTS:
        result[f"connections_per_s_{variant}"] = statistics.median(rates[variant])
        result[f"connect_median_us_{variant}"] = statistics.median(samples[variant]) * 1e6
    off = result["connections_per_s_off"]
    result["rate_ratio_on_over_off"] = result["connections_per_s_on"] / off
    result["rate_ratio_on_read_over_off"] = result["connections_per_s_on_read"] / off
    return result


def bench_scrape(chains: int, reads: int = 20) -> dict[str, float]:
    """What one ``/metrics`` scrape costs the agent: ``PolicyCounters.refresh`` (``nft -j -t
    list table`` in the node namespace, parsing, attribution) on a table of ``chains`` ingress
    class chains (one policy and one pod each) in a throwaway namespace; medians of ``reads``."""
    import ipaddress
    import secrets

    from kubefence.agent._counters import PolicyCounters
    from kubefence.dataplane.netns import run
    from kubefence.dataplane.nft import plan_ruleset, render_plan

    objects: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns0"}}
    ]
    addresses = {}
    for i in range(chains):
        objects.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod{i}", "namespace": "ns0", "labels": {"app": f"app{i}"}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "ports": [{"containerPort": 8080}]}]},
        })  # fmt: skip
        objects.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"pol{i}", "namespace": "ns0"},
            "spec": {"podSelector": {"matchLabels": {"app": f"app{i}"}}, "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app": f"app{(i + 1) % chains}"}}}],
                "ports": [{"port": 8080}]}]},
        })  # fmt: skip
        addresses[f"ns0/pod{i}"] = (ipaddress.ip_address(f"198.18.{i // 250}.{i % 250 + 2}"),)
    plan = plan_ruleset(inventory_from_objects(objects), addresses=addresses, counters=True)
    namespace = f"kfbench-scrape-{secrets.token_hex(3)}"
    run(["ip", "netns", "add", namespace])
    try:
        run(["nft", "-f", "-"], stdin=render_plan(plan), netns=namespace)
        counters = PolicyCounters(netns=namespace, plan=lambda: plan)
        times = []
        for _ in range(reads):
            started = time.perf_counter()
            counters.refresh(force=True)
            times.append(time.perf_counter() - started)
    finally:
        run(["ip", "netns", "delete", namespace], check=False)
    return {
        "chains": float(len(plan.ingress) + len(plan.egress)),
        "series": float(len(counters.totals)) if counters.totals else 0.0,
        "scrape_median_ms": statistics.median(times) * 1e3,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=20_000, help="per variant")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.add_argument(
        "--agent", action="store_true", help="the policy agent's table (see the docstring)"
    )
    parser.add_argument(
        "--scrape",
        type=int,
        metavar="CHAINS",
        help="instead: the cost of one /metrics scrape of the per-policy counters on a table "
        "of CHAINS class chains",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_flows: needs root (network namespaces)", file=sys.stderr)
        return 3
    if args.scrape is not None:
        scrape = bench_scrape(args.scrape)
        scrape["loadavg_1m"] = os.getloadavg()[0]
        print(json.dumps(scrape, indent=2))
        return 0
    result = bench(args.connections, agent=args.agent)
    result["loadavg_1m"] = os.getloadavg()[0]
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value:.4g}")
    target = min(result["rate_ratio_on_over_off"], result["rate_ratio_on_read_over_off"])
    print(f"target >= 0.9: {'met' if target >= 0.9 else 'NOT met'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
