"""Benchmark: the reference evaluator ``decide`` asked about many pairs of one cluster.

Why this module exists: ``decide`` compiles policies once per inventory (``index_for``) so that
a CLI session, a test suite or the engine's cross-checks can ask many questions cheaply. This
measures the one-off index build and the median cost of one decision (allowed and denied, the
latter with its explanation), on seeded clusters from ``benchmarks/generate.py``.

    python benchmarks/bench_decide.py                  # 500 pods, 50 namespaces, 150 policies
    python benchmarks/bench_decide.py --pods 5000 --namespaces 500 --policies 1500
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import generate_cluster

from kubefence.semantics import PolicyIndex, decide
from kubefence.sources.objects import inventory_from_objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--policies", type=int, default=150)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    objects = generate_cluster(
        pods=args.pods, namespaces=args.namespaces, policies=args.policies, seed=args.seed
    )
    inventory = inventory_from_objects(objects)
    builds = []
    for _ in range(5):
        start = time.perf_counter()
        PolicyIndex.build(inventory)
        builds.append(time.perf_counter() - start)

    rng = random.Random(args.seed)
    keys = [p.key for p in inventory.pods]
    pairs = [(rng.choice(keys), rng.choice(keys)) for _ in range(args.pairs)]
    timings: dict[bool, list[float]] = {True: [], False: []}
    decide(inventory, keys[0], keys[-1], port=80)  # builds and caches the index
    for src, dst in pairs:
        start = time.perf_counter()
        decision = decide(inventory, src, dst, port=80)
        timings[decision.allowed].append(time.perf_counter() - start)

    print(
        f"cluster: {len(inventory.pods)} pods, {len(inventory.namespaces)} namespaces, "
        f"{len(inventory.policies)} policies"
    )
    print(f"index build (compile every policy): median {statistics.median(builds) * 1e3:.2f} ms")
    for allowed, label in ((True, "allowed"), (False, "denied (with explanation)")):
        values = timings[allowed]
        if values:
            print(
                f"decide, {label}: {len(values)} pairs, median "
                f"{statistics.median(values) * 1e6:.0f} us"
            )
    total = sum(timings[True]) + sum(timings[False])
    print(f"all {len(pairs)} pairs: {total:.3f} s ({len(pairs) / total:.0f} decisions/s)")


if __name__ == "__main__":
    main()
