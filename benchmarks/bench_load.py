"""Benchmark: load + validate a generated cluster (by default 10,000 pods, 1,000 namespaces,
3,000 policies).

Why this module exists: users feed whole clusters' manifests to every command, so loading must
stay well inside interactive time. Targets on the reference machine: ``--size default`` <= 3 s
and <= 1 GB; ``--size large`` (100,000 pods, 10,000 namespaces, 68,000 policies) <= 6 s and
<= 2 GB.

    python benchmarks/bench_load.py [--size default|large] [--pods N] [--namespaces N]
                                    [--policies N] [--seed S] [--repeat N] [--cold-only]

Reports the YAML size, the median of ``--repeat`` load times (files, and in-memory objects), and
peak memory: the traced Python allocation peak of one load (tracemalloc) and the process's
maximum resident set size. File loads are timed three ways, named in the output: cold (no
cache: what every first run on new manifests costs), storing (cold plus writing the CLI's
inventory cache, ``sources._cache``) and warm (the CLI's second run on unchanged manifests,
served from that cache); the cache lives in a temporary ``XDG_CACHE_HOME``. The target verdict
is given for cold and warm separately. ``--cold-only`` times only the cold file load (and the
process's maximum RSS), for before/after runs that alternate between two source trees:

    for i in 1 2 3; do
      PYTHONPATH=/tmp/main/src python benchmarks/bench_load.py --size large --cold-only
      python benchmarks/bench_load.py --size large --cold-only
    done
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import generate_cluster, write_yaml

from kubefence.sources.files import load_paths
from kubefence.sources.objects import inventory_from_objects


@dataclass(frozen=True, slots=True)
class Size:
    """A named cluster size and the load target that goes with it."""

    pods: int
    namespaces: int
    policies: int
    seconds: float
    gigabytes: int


SIZES = {
    "default": Size(pods=10_000, namespaces=1_000, policies=3_000, seconds=3.0, gigabytes=1),
    "large": Size(pods=100_000, namespaces=10_000, policies=68_000, seconds=6.0, gigabytes=2),
}


def _timed(action: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of each run (CPU time is what a busy machine cannot inflate)."""
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def _line(label: str, wall: list[float], cpu: list[float]) -> str:
    runs = ", ".join(f"{t:.2f}" for t in wall)
    return (
        f"{label}: median {statistics.median(wall):.2f} s wall ({runs}), "
        f"{statistics.median(cpu):.2f} s CPU"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--pods", type=int, help="instead of the size's number")
    parser.add_argument("--namespaces", type=int, help="instead of the size's number")
    parser.add_argument("--policies", type=int, help="instead of the size's number")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--cold-only", action="store_true", help="time only cold file loads (before/after runs)"
    )
    args = parser.parse_args(argv)
    size = SIZES[args.size]

    objects = generate_cluster(
        pods=size.pods if args.pods is None else args.pods,
        namespaces=size.namespaces if args.namespaces is None else args.namespaces,
        policies=size.policies if args.policies is None else args.policies,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="kubefence-bench-") as tmp:
        path = write_yaml(objects, Path(tmp) / "cluster.yaml")
        megabytes = path.stat().st_size / 1e6
        inventory = load_paths([str(path)])
        print(
            f"input: {len(objects)} documents, {megabytes:.1f} MB -> "
            f"{len(inventory.namespaces)} namespaces, {len(inventory.pods)} pods, "
            f"{len(inventory.policies)} policies"
        )
        file_wall, file_cpu = _timed(lambda: load_paths([str(path)]), args.repeat)
        if args.cold_only:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
            print(_line("load+validate files, cold (no cache)  ", file_wall, file_cpu))
            code = Path(load_paths.__code__.co_filename).parent.parent
            print(
                f"process max RSS {rss / 1e6:.0f} MB (with the generator's objects); load "
                f"average {os.getloadavg()[0]:.1f}; code from {code}"
            )
            return 0
        object_wall, object_cpu = _timed(lambda: inventory_from_objects(objects), args.repeat)
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        os.environ.pop("KUBEFENCE_CACHE", None)
        stores = [str(Path(tmp) / f"copy-{n}.yaml") for n in range(args.repeat)]
        for name in stores:  # each copy has its own name, so each stored load is a miss
            os.link(path, name)
        store_runs = iter(stores)
        store_wall, store_cpu = _timed(
            lambda: load_paths([next(store_runs)], cache=True), args.repeat
        )
        warm_wall, warm_cpu = _timed(lambda: load_paths([stores[0]], cache=True), args.repeat)
        tracemalloc.start()
        load_paths([str(path)])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(_line("load+validate files, cold (no cache)  ", file_wall, file_cpu))
    print(_line("load+validate files, cold + store     ", store_wall, store_cpu))
    print(_line("load+validate files, warm (cache hit) ", warm_wall, warm_cpu))
    print(_line("load+validate objects                 ", object_wall, object_cpu))
    print(
        f"peak memory: traced {peak / 1e6:.0f} MB during one cold load; process max RSS "
        f"{rss / 1e6:.0f} MB"
    )
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} (wall time waits for CPU)")
    memory_ok = max(peak, rss) <= size.gigabytes * 1024**3
    verdicts = {}
    for label, wall, cpu in (("cold", file_wall, file_cpu), ("warm", warm_wall, warm_cpu)):
        seconds = min(statistics.median(wall), statistics.median(cpu))
        verdicts[label] = seconds <= size.seconds and memory_ok
    print(
        f"target <= {size.seconds:.0f} s (median wall, or CPU on a busy machine) and "
        f"<= {size.gigabytes} GB: "
        + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in verdicts.items())
    )
    return 0 if verdicts["cold"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
