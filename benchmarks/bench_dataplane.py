"""Data-plane benchmarks (root): sandbox up, ruleset swap, one change, per-packet cost, verify.

Why this module exists: issue 5 sets performance targets for the real enforcement path; this
script measures each one on this machine and prints medians (and the 10-vs-5,000-policy ratio)
as a table and, with ``-o json``, as JSON. Every sandbox it makes is taken down, also on failure.

    sudo .venv/bin/python benchmarks/bench_dataplane.py            # everything
    sudo .venv/bin/python benchmarks/bench_dataplane.py --quick    # skip the 1,000-pod up

| measurement                                         | target   |
|-----------------------------------------------------|----------|
| ``sandbox up``, 100 pods / 1,000 pods               | 10 / 60 s|
| render + atomic ``nft -f``, 2,000 pods, 1,000 pols  | 1 s      |
| one policy change applied (``Sandbox.apply``)       | 100 ms   |
| new-connection latency, 10 vs 5,000 policies        | >= 0.9   |
| ``verify``, 30 pods x 2 ports x 2 protocols         | 10 s     |
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import generate_cluster, write_yaml

from kubefence.api import Inventory
from kubefence.cli.main import main as cli_main
from kubefence.dataplane.netns import RulesetRenderer, Sandbox, down, entered
from kubefence.dataplane.netns._slots import NODE_V4, NODE_V6, plan_slots, sandbox_inventory
from kubefence.dataplane.nft import render_ruleset
from kubefence.semantics import DEFAULT_SETTINGS
from kubefence.sources.objects import inventory_from_objects

Objects = list[dict[str, Any]]


@contextmanager
def _sandbox(
    inventory: Inventory, name: str, timings: list[float] | None = None
) -> Iterator[Sandbox]:
    down(name)
    started = time.perf_counter()
    try:
        sandbox = Sandbox.up(inventory, name=name)
        if timings is not None:
            timings.append(time.perf_counter() - started)
        yield sandbox
    finally:
        down(name)


def _pods(count: int, namespaces: int, *, ports: Sequence[tuple[int, str]]) -> Objects:
    objects: Objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns{n}"}}
        for n in range(namespaces)
    ]
    for i in range(count):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"pod{i}",
                    "namespace": f"ns{i % namespaces}",
                    "labels": {"app": f"app{i % 5}", "client": f"c{i % 7}"},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "nginx" if i % 3 == 0 else "busybox",
                            "ports": [
                                {"containerPort": port, "protocol": protocol}
                                for port, protocol in ports
                            ],
                        }
                    ]
                },
            }
        )
    return objects


def _policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# --- measurements ---------------------------------------------------------------------------


def bench_up(pods: int, repeat: int) -> dict[str, float]:
    objects = _pods(pods, max(1, pods // 20), ports=[(80, "TCP"), (53, "UDP")])
    objects.append(
        _policy(
            "ns0",
            "allow-app0",
            {
                "podSelector": {"matchLabels": {"app": "app0"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"client": "c1"}}}]}],
            },
        )
    )
    inventory = inventory_from_objects(objects)
    name = f"bench-up{pods}"
    ups: list[float] = []
    downs: list[float] = []
    for _ in range(repeat):
        down(name)
        started = time.perf_counter()
        try:
            Sandbox.up(inventory, name=name)
            ups.append(time.perf_counter() - started)
        finally:
            started = time.perf_counter()
            down(name)
            downs.append(time.perf_counter() - started)
    return {"up_s": statistics.median(ups), "down_s": statistics.median(downs)}


def bench_render_apply(repeat: int) -> dict[str, float]:
    objects = generate_cluster(pods=2000, namespaces=200, policies=1000, seed=1)
    inventory = inventory_from_objects(objects)
    slots = plan_slots("benchrender", inventory.pods)
    addresses = {key: slot.addresses for key, slot in slots.items()}
    running = sandbox_inventory(inventory, slots)
    name = "benchrender"
    node = f"kf-{name}-node"
    down(name)
    subprocess.run(["ip", "netns", "add", node], check=True)
    renders: list[float] = []
    applies: list[float] = []
    totals: list[float] = []
    size = 0
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            text = render_ruleset(
                running,
                addresses=addresses,
                settings=DEFAULT_SETTINGS,
                node_addresses=(NODE_V4, NODE_V6),
            )
            rendered = time.perf_counter()
            subprocess.run(
                ["ip", "netns", "exec", node, "nft", "-f", "-"], input=text, text=True, check=True
            )
            done = time.perf_counter()
            renders.append(rendered - started)
            applies.append(done - rendered)
            totals.append(done - started)
            size = len(text)
    finally:
        down(name)
    return {
        "pods": len(inventory.pods),
        "policies": len(inventory.policies),
        "ruleset_bytes": size,
        "render_s": statistics.median(renders),
        "nft_apply_s": statistics.median(applies),
        "total_s": statistics.median(totals),
    }


def bench_one_change(repeat: int) -> dict[str, float]:
    objects = generate_cluster(pods=100, namespaces=10, policies=1000, seed=2)
    base = inventory_from_objects(objects)
    changed_objects = [dict(o) for o in objects]
    for index, obj in enumerate(changed_objects):
        if obj["kind"] == "NetworkPolicy":
            spec = dict(obj["spec"])
            spec["podSelector"] = {"matchLabels": {"bench": "changed"}}
            changed_objects[index] = {**obj, "spec": spec}
            break
    changed = inventory_from_objects(changed_objects)
    # The way a sandbox applies (memoised planning) against a fresh render each time, in
    # alternation on one sandbox, so that both see the same machine.
    # (renderer, whole table): the sandbox's way (memoised plan, smaller nft update), the
    # whole table with the memoised plan, and the whole table rendered afresh (the old way).
    ways: dict[str, tuple[RulesetRenderer | None, bool]] = {
        "apply_s": (None, False),
        "apply_whole_table_s": (None, True),
        "apply_whole_table_unmemoised_s": (render_ruleset, True),
    }
    names = list(ways)
    samples: dict[str, list[float]] = {way: [] for way in ways}
    with _sandbox(base, "bench-change") as sandbox:
        for number in range(repeat * 2 * len(ways)):
            # changed, base with one way, then changed, base with the next: always a change.
            way = names[(number // 2) % len(names)]
            started = time.perf_counter()
            renderer, whole = ways[way]
            sandbox.apply(
                changed if number % 2 == 0 else base, renderer=renderer, whole_table=whole
            )
            samples[way].append(time.perf_counter() - started)
    result: dict[str, float] = {"pods": len(base.pods), "policies": len(base.policies)}
    result.update({way: statistics.median(found) for way, found in samples.items()})
    result["speedup"] = result["apply_whole_table_unmemoised_s"] / result["apply_s"]
    return result


def _latency_objects(policies: int) -> Objects:
    """pod1 -> pod0 on 8080 allowed by two policies; ``policies - 2`` more select the same pods
    (so both sides are evaluated) with other peers and ports."""
    objects = _pods(4, 1, ports=[(8080, "TCP")])
    objects.append(
        _policy(
            "ns0",
            "bench-ingress",
            {
                "podSelector": {"matchLabels": {"app": "app0"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"client": "c1"}}}],
                        "ports": [{"port": 8080}],
                    }
                ],
            },
        )
    )
    objects.append(
        _policy(
            "ns0",
            "bench-egress",
            {
                "podSelector": {"matchLabels": {"app": "app1"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": {"app": "app0"}}}],
                        "ports": [{"port": 8080}],
                    }
                ],
            },
        )
    )
    for i in range(policies - 2):
        objects.append(
            _policy(
                "ns0",
                f"filler-{i}",
                {
                    "podSelector": {"matchLabels": {"app": f"app{i % 4}"}},
                    "ingress": [
                        {
                            "from": [{"podSelector": {"matchLabels": {"client": f"c{i % 4}"}}}],
                            "ports": [{"port": 10000 + i}],
                        }
                    ],
                    "egress": [
                        {
                            "to": [{"podSelector": {"matchLabels": {"app": f"app{(i + 1) % 4}"}}}],
                            "ports": [{"port": 20000 + i}],
                        }
                    ],
                },
            )
        )
    return objects


def _connect_latencies(sandbox: Sandbox, src: str, dst: str, port: int, count: int) -> list[float]:
    address = str(sandbox.state.pods[dst].ipv4)
    netns = sandbox.state.pods[src].netns
    samples: list[float] = []
    for _ in range(count):
        with entered(netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(2)
        started = time.perf_counter()
        sock.connect((address, port))
        samples.append(time.perf_counter() - started)
        sock.close()
    return samples


def bench_latency(count: int) -> dict[str, float]:
    """Both sandboxes run at once; batches of connections alternate between them, so drift of
    the machine (CPU frequency, caches) affects both equally."""
    from kubefence.semantics import decide

    src, dst = "ns0/pod1", "ns0/pod0"
    sizes = (10, 5000)
    sandboxes: dict[int, Sandbox] = {}
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    rates: dict[int, list[float]] = {size: [] for size in sizes}  # per batch: connections / s
    try:
        for size in sizes:
            inventory = inventory_from_objects(_latency_objects(size))
            decision = decide(inventory, src, dst, port=8080)
            assert decision.allowed, "the latency benchmark's connection must be allowed"
            assert decision.ingress is not None
            assert decision.ingress.isolated
            assert decision.egress is not None
            assert decision.egress.isolated
            down(f"bench-lat{size}")
            sandboxes[size] = Sandbox.up(inventory, name=f"bench-lat{size}")
            _connect_latencies(sandboxes[size], src, dst, 8080, 50)  # warm up neighbours
        batch = 100
        for _ in range(max(1, count // batch)):
            for size in sizes:
                started = time.perf_counter()
                samples[size] += _connect_latencies(sandboxes[size], src, dst, 8080, batch)
                rates[size].append(batch / (time.perf_counter() - started))
    finally:
        for size in sizes:
            down(f"bench-lat{size}")
    result: dict[str, float] = {}
    for size in sizes:
        result[f"connect_median_us_{size}"] = statistics.median(samples[size]) * 1e6
        result[f"connections_per_s_{size}"] = statistics.median(rates[size])
    result["latency_ratio_10_over_5000"] = (
        result["connect_median_us_10"] / result["connect_median_us_5000"]
    )
    result["rate_ratio_5000_over_10"] = (
        result["connections_per_s_5000"] / result["connections_per_s_10"]
    )
    return result


def bench_verify(repeat: int) -> dict[str, float]:
    objects = _pods(30, 3, ports=[(80, "TCP"), (80, "UDP"), (53, "TCP"), (53, "UDP")])
    objects.append(
        _policy(
            "ns0",
            "web-from-c1",
            {
                "podSelector": {"matchLabels": {"app": "app0"}},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {},
                                "podSelector": {"matchLabels": {"client": "c1"}},
                            }
                        ],
                        "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
                    }
                ],
            },
        )
    )
    objects.append(_policy("ns1", "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]}))
    samples: list[float] = []
    codes: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = write_yaml(objects, Path(tmp) / "cluster.yaml")
        name = "bench-verify"
        down(name)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the results
                assert cli_main(["sandbox", "up", "-f", str(path), "--name", name]) == 0
                for _ in range(repeat):
                    started = time.perf_counter()
                    codes.append(cli_main(["sandbox", "verify", "--name", name]))
                    samples.append(time.perf_counter() - started)
        finally:
            down(name)
    return {"pairs": 30 * 30 * 4, "verify_s": statistics.median(samples), "exit_codes": max(codes)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="skip the 1,000-pod sandbox")
    parser.add_argument("--repeat", type=int, default=3, help="samples per median")
    parser.add_argument("--connections", type=int, default=2000, help="latency samples")
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    parser.add_argument("--only", help="run only the measurements whose label contains this")
    args = parser.parse_args(argv)
    benches: list[tuple[str, Callable[[], Mapping[str, float]]]] = [
        ("up_100_pods", lambda: bench_up(100, args.repeat)),
        ("render_apply_2000_pods_1000_policies", lambda: bench_render_apply(args.repeat)),
        ("one_policy_change", lambda: bench_one_change(args.repeat)),
        ("new_connection_10_vs_5000_policies", lambda: bench_latency(args.connections)),
        ("verify_30_pods_2_ports_2_protocols", lambda: bench_verify(args.repeat)),
    ]
    if not args.quick:
        benches.insert(1, ("up_1000_pods", lambda: bench_up(1000, 1)))
    results: dict[str, Mapping[str, float]] = {}
    for label, bench in benches:
        if args.only and args.only not in label:
            continue
        print(f"... {label}", file=sys.stderr, flush=True)
        results[label] = bench()
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        for label, values in results.items():
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
            )
            print(f"{label:40} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
