"""``kubefence sandbox apply`` as a whole process, this tree against a baseline tree (root).

Why this module exists: ``sandbox apply`` used to parse two manifest sets, the new one and the
stored copy of what the sandbox enforced (only to learn what its server serves); now it parses
the new one only. This measures the whole command (a new process each time: imports, parse,
attach, plan, nft, conntrack, state) on one sandbox of generated objects (100 pods, 1,000
NetworkPolicies, 200 ClusterNetworkPolicies by default, from ``bench_nft_tiers``), applying a
one-CNP change back and forth, alternating this tree and ``--baseline-src`` (e.g. a ``git
worktree`` of main) in each round, so both meet the same machine load. Wall and CPU time
(user+sys of the command) per command, medians, and the load average next to each round.

    sudo .venv/bin/python benchmarks/bench_sandbox_apply.py --baseline-src /tmp/main/src --rounds 4
    sudo ... --cache   # the inventory cache on (each tree its own, empty at start)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_nft_tiers import _effective_flip, generate_cnps
from benchmarks.generate import generate_cluster

from kubefence.dataplane.netns import down
from kubefence.sources.objects import inventory_from_objects

HERE = Path(__file__).resolve().parent.parent / "src"


def _files(folder: Path, pods: int, policies: int, cnps: int) -> tuple[list[str], str]:
    objects = generate_cluster(pods=pods, namespaces=max(1, pods // 10), policies=policies, seed=2)
    tiers = generate_cnps(cnps, seed=2)
    base = inventory_from_objects([*objects, *tiers])
    _, which = _effective_flip(objects, tiers, base)
    index = int(which.split(" ")[0].split("-")[1])
    changed = json.loads(json.dumps(tiers))
    first = changed[index]["spec"]["ingress"][0]
    first["action"] = "Deny" if first["action"] != "Deny" else "Accept"
    paths = []
    for label, docs in (("base", tiers), ("changed", changed)):
        path = folder / f"{label}.yaml"
        items = [*objects, *docs]
        path.write_text("\n---\n".join(json.dumps(item) for item in items))  # JSON is YAML
        paths.append(str(path))
    return paths, which


def _command(src: Path, *args: str, cache: str | None = None) -> tuple[float, float]:
    """Run ``kubefence sandbox ARGS`` with ``src`` first on the path: (wall, CPU) seconds.
    ``cache``: the inventory cache's directory (``XDG_CACHE_HOME``), None: cache off."""
    env = {**os.environ, "PYTHONPATH": str(src), "KUBEFENCE_CACHE": "off"}
    if cache is not None:
        env.update(KUBEFENCE_CACHE="on", XDG_CACHE_HOME=cache)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "kubefence.cli.main", "sandbox", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{src}: sandbox {' '.join(args)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--cnps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument(
        "--cache", action="store_true", help="inventory cache on (a fresh one per tree)"
    )
    args = parser.parse_args(argv)
    trees = {"new": HERE, "old": args.baseline_src.resolve()}
    samples: dict[str, list[tuple[float, float]]] = {"new": [], "old": []}
    loads = []
    name = f"ba{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as folder:
        caches: dict[str, str | None] = dict.fromkeys(trees)
        if args.cache:
            caches = {label: str(Path(folder) / f"cache-{label}") for label in trees}
        paths, which = _files(Path(folder), args.pods, args.policies, args.cnps)
        try:
            _command(HERE, "up", "--name", name, "-f", paths[0])
            state = 0  # which file the sandbox enforces now
            for number in range(args.rounds):
                order = ("new", "old") if number % 2 == 0 else ("old", "new")
                loads.append(Path("/proc/loadavg").read_text().split()[0])
                for label in order:
                    for _ in range(2):  # there and back: each tree applies both files
                        state = 1 - state
                        found = _command(
                            trees[label],
                            "apply",
                            "--name",
                            name,
                            "-f",
                            paths[state],
                            cache=caches[label],
                        )
                        samples[label].append(found)
        finally:
            down(name)
    result: dict[str, Any] = {
        "pods": args.pods,
        "policies": args.policies,
        "cnps": args.cnps,
        "changed": which,
        "commands_each": len(samples["new"]),
        "cache": args.cache,
        "loadavg_per_round": loads,
    }
    for label, found in samples.items():
        result[f"{label}_wall_median_s"] = round(statistics.median(w for w, _ in found), 3)
        result[f"{label}_cpu_median_s"] = round(statistics.median(c for _, c in found), 3)
    result["ratio_wall"] = round(result["new_wall_median_s"] / result["old_wall_median_s"], 3)
    result["ratio_cpu"] = round(result["new_cpu_median_s"] / result["old_cpu_median_s"], 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
