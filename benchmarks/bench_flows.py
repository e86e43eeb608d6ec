"""What the flow log costs new connections (root): logging on must keep >= 0.9x the rate of off.

Why this module exists: brief J (issue 17) puts the flow log of ``kubefence flows`` in the
forward path as nft rules (NFLOG behind a shared rate limit, a counter over it); this script
checks that it does not slow new connections down. Three sandboxes run at once with the same
inventory (pod1 -> pod0 on 8080, both sides isolated, as in ``bench_dataplane``'s latency
benchmark): no flow log, a flow log nobody reads, and a flow log with ``kubefence flows -f``
reading it in its own process (the case users run). Batches of TCP connections alternate
between them, the first of a round rotating, so the machine's drift and the position in the
round affect all equally; medians of the per-batch rates.

    sudo .venv/bin/python benchmarks/bench_flows.py [--connections 20000] [-o json]
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


def bench(connections: int, batch: int = 100) -> dict[str, float]:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=20_000, help="per variant")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_flows: needs root (network namespaces)", file=sys.stderr)
        return 3
    result = bench(args.connections)
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
