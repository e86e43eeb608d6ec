"""``sandbox up`` timed with our rtnetlink client and with pyroute2 (root): which is faster?

Why this module exists: ``kubefence.dataplane.netns._rtnl`` is hand-written netlink code, kept
only while the well-kept library pyroute2 is slower at the same job. This script brings the
same sandbox up ``--repeat`` times with each (interleaved, so load on the machine hits both
alike), configuring every pod's namespace once with ``_rtnl.configure_pod`` and once with the
equivalent pyroute2 calls, and prints the median seconds of each and their ratio. It checks
that both give the pod the same routes. Every sandbox it makes is taken down, also on failure.

    .venv/bin/pip install pyroute2    # not a kubefence dependency
    sudo .venv/bin/python benchmarks/bench_rtnl.py --pods 1000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_dataplane import _pods

import kubefence.dataplane.netns._topology as topology
from kubefence.dataplane.netns import Sandbox, down
from kubefence.dataplane.netns._rtnl import configure_pod as ours
from kubefence.sources.objects import inventory_from_objects

Configure = Callable[..., None]
_IFA_F_NODAD = 0x02
_RT_SCOPE_LINK = 253


def pyroute2_configure() -> Configure:
    """``configure_pod`` written with pyroute2's ``IPRoute``, sharing one event loop across
    pods (a new loop per pod costs more still)."""
    from pyroute2 import IPRoute

    loop = asyncio.new_event_loop()

    def configure(
        *,
        ipv4: ipaddress.IPv4Address,
        ipv6: ipaddress.IPv6Address,
        gateway_v4: ipaddress.IPv4Address,
        gateway_v6: ipaddress.IPv6Address,
    ) -> None:
        lo, eth0 = socket.if_nametoindex("lo"), socket.if_nametoindex("eth0")
        with IPRoute(use_event_loop=loop) as ipr:
            ipr.link("set", index=lo, state="up")
            ipr.addr("add", index=eth0, address=str(ipv4), prefixlen=32)
            ipr.addr("add", index=eth0, address=str(ipv6), prefixlen=128, flags=_IFA_F_NODAD)
            ipr.link("set", index=eth0, state="up")
            ipr.route("add", dst=f"{gateway_v4}/32", oif=eth0, scope=_RT_SCOPE_LINK)
            ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway_v4), oif=eth0)
            ipr.route("add", dst="::/0", gateway=str(gateway_v6), oif=eth0, family=socket.AF_INET6)

    return configure


def _routes(netns: str) -> list[str]:
    """The pod's routes without the ``proto`` word (pyroute2 marks its routes static)."""
    lines = []
    for family in ("-4", "-6"):
        done = subprocess.run(
            ["ip", family, "-n", netns, "route"], capture_output=True, text=True, check=True
        )
        for line in done.stdout.splitlines():
            words = line.split()
            if "proto" in words:
                at = words.index("proto")
                del words[at : at + 2]
            lines.append(" ".join(words))
    return sorted(lines)


def bench(pods: int, repeat: int) -> dict[str, Any]:
    inventory = inventory_from_objects(_pods(pods, max(1, pods // 20), ports=[(80, "TCP")]))
    name = "bench-rtnl"
    ways: dict[str, Configure] = {"ours": ours, "pyroute2": pyroute2_configure()}
    times: dict[str, list[float]] = {way: [] for way in ways}
    routes: dict[str, list[str]] = {}
    try:
        for _ in range(repeat):
            for way, configure in ways.items():
                down(name)
                topology.configure_pod = configure  # type: ignore[assignment]
                started = time.perf_counter()
                sandbox = Sandbox.up(inventory, name=name)
                times[way].append(time.perf_counter() - started)
                last = sandbox.state.pods[max(sandbox.state.pods)]
                routes[way] = _routes(last.netns)
                down(name)
    finally:
        topology.configure_pod = ours
        down(name)
    if routes["ours"] != routes["pyroute2"]:
        raise SystemExit(f"the two ways configured different routes: {routes}")
    medians = {way: statistics.median(found) for way, found in times.items()}
    return {
        "pods": pods,
        "repeat": repeat,
        "up_s": {way: [round(t, 3) for t in found] for way, found in times.items()},
        "median_up_s": {way: round(t, 3) for way, t in medians.items()},
        "pyroute2_over_ours": round(medians["pyroute2"] / medians["ours"], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="samples per median (>= 3)")
    args = parser.parse_args(argv)
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        print("pyroute2 is not installed: .venv/bin/pip install pyroute2", file=sys.stderr)
        return 3
    print(json.dumps(bench(args.pods, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
