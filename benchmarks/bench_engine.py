"""Benchmark: the vectorised engine on seeded synthetic multi-tenant clusters.

Why this module exists: issue 4 set targets for whole-cluster reachability (engine time after
loading), issue 16 tightened them: 500 pods / 50 namespaces / 150 policies <= 0.1 s; 10,000 /
1,000 / 7,000 <= 0.25 s; 100,000 pods / 5,000 / 68,000 <= 3 s and <= 2 GB peak RSS; one policy
change at 100,000 pods <= 50 ms. This script measures them on clusters from
``benchmarks/generate.py`` (Deployments sharing label sets, bare pods with IPv4/IPv6 addresses,
policies mixing every feature).

    python benchmarks/bench_engine.py                 # small and medium
    python benchmarks/bench_engine.py --sizes small,medium,large
    python benchmarks/bench_engine.py --sizes large --digest   # result digest, every port class
    python benchmarks/bench_engine.py --sizes medium --cnps 200 --repeat 5   # the CNP column
    python benchmarks/bench_engine.py --sizes large --incremental   # one policy change at 100k

Each size runs in its own process, so the reported peak resident memory belongs to that size.
"Engine" is ``ReachabilityAnalysis(inventory).matrix(port)`` from scratch (compile policies,
classify pods, evaluate selectors, combine), the median of ``--repeat`` runs, as wall time and
process CPU time (CPU time is steadier on a shared machine). "Expand" is turning the class
matrix into the dense pod x pod matrix, which only per-pod output needs.

The CNP column (issue 15: a matrix with 200 ClusterNetworkPolicies <= 1.5x the time without
them) adds ``--cnps`` seeded tiered policies (``cluster_policies``: three Admin to one Baseline,
subjects by namespace and pod labels, 1-4 rules per direction with Accept/Deny/Pass, namespace,
pod and networks peers, numbered, ranged and named ports, priorities with ties) to the same
cluster. Both versions are timed in the same process, alternating, ``--repeat`` times each;
the row gives both medians and their ratio (``cnp_ratio``, on wall time; ``cnp_cpu_ratio``).

``--digest`` measures nothing: it prints a SHA-256 of the pod x pod matrix of every port class
(computed on the class matrix, one distinct row at a time, so any two engines that give the same
verdicts give the same digest whatever classes they use), to check that an optimisation changed
no verdict: run it on both versions' sources (``PYTHONPATH=<checkout>/src``) and compare.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import APPS, ENVS, TEAMS, generate_cluster

from kubefence.api import Inventory, NetworkPolicy
from kubefence.engine import Matrix, ReachabilityAnalysis, port_classes
from kubefence.sources.objects import inventory_from_objects

SIZES = {
    "small": (500, 50, 150, 0.1),
    "medium": (10_000, 1_000, 7_000, 0.25),
    "large": (100_000, 5_000, 68_000, 3.0),
}
PORT = 8080  # the generator's http port: policies both allow and deny it


_CNP_NETWORKS = ("0.0.0.0/1", "0.0.0.0/0", "198.18.0.0/15", "fd00::/8")  # the first holds pods


def _cnp_peer(rng: random.Random, *, egress: bool) -> dict[str, Any]:
    choice = rng.random()
    if egress and choice < 0.2:
        return {"networks": sorted(set(rng.sample(_CNP_NETWORKS, rng.randint(1, 2))))}
    if choice < 0.55:
        label = rng.choice((("team", TEAMS), ("env", ENVS)))
        return {"namespaces": {"matchLabels": {label[0]: rng.choice(label[1])}}}
    return {
        "pods": {
            "namespaceSelector": {"matchLabels": {"env": rng.choice(ENVS)}},
            "podSelector": {"matchLabels": {"app": rng.choice(APPS)}},
        }
    }


def _cnp_ports(rng: random.Random, *, named: bool) -> list[dict[str, Any]] | None:
    choice = rng.random()
    if choice < 0.35:
        return None  # every port
    if choice < 0.6:
        number = rng.choice((80, 443, 5432, 6379, 8080, 9090))
        return [{"tcp": {"destinationPort": {"number": number}}}]
    if choice < 0.75:
        start = rng.choice((8000, 9000, 30000))
        return [{"tcp": {"destinationPort": {"range": {"start": start, "end": start + 100}}}}]
    if choice < 0.85 or not named:
        return [{"udp": {"destinationPort": {"number": 53}}}]
    return [{"destinationNamedPort": rng.choice(("http", "metrics", "postgres"))}]


def _cnp_rule(rng: random.Random, *, egress: bool, index: int) -> dict[str, Any]:
    peers = [_cnp_peer(rng, egress=egress) for _ in range(rng.randint(1, 3))]
    # CEL: no named port in an egress rule with a networks peer
    named = not (egress and any("networks" in p for p in peers))
    rule: dict[str, Any] = {
        "name": f"r{index}",
        "action": rng.choice(("Accept", "Deny", "Deny", "Pass")),
        "to" if egress else "from": peers,
    }
    ports = _cnp_ports(rng, named=named)
    if ports is not None:
        rule["protocols"] = ports
    return rule


def cluster_policies(count: int, *, seed: int) -> list[dict[str, Any]]:
    """``count`` seeded ClusterNetworkPolicies for the generator's namespaces and pods."""
    rng = random.Random(seed * 7919 + count)
    out = []
    for i in range(count):
        subject: dict[str, Any]
        if rng.random() < 0.6:
            key, pool = rng.choice((("team", TEAMS), ("env", ENVS)))
            subject = {"namespaces": {"matchLabels": {key: rng.choice(pool)}}}
        else:
            subject = {
                "pods": {
                    "namespaceSelector": {"matchLabels": {"team": rng.choice(TEAMS)}},
                    "podSelector": {"matchLabels": {"app": rng.choice(APPS)}},
                }
            }
        spec: dict[str, Any] = {
            "tier": "Baseline" if i % 4 == 3 else "Admin",
            "priority": rng.randrange(0, 1000, 5),  # steps of 5: some ties
            "subject": subject,
            "ingress": [_cnp_rule(rng, egress=False, index=k) for k in range(rng.randint(1, 4))],
            "egress": [_cnp_rule(rng, egress=True, index=k) for k in range(rng.randint(1, 4))],
        }
        out.append(
            {
                "apiVersion": "policy.networking.k8s.io/v1alpha2",
                "kind": "ClusterNetworkPolicy",
                "metadata": {"name": f"cnp-{i:03d}"},
                "spec": spec,
            }
        )
    return out


def _time_engine(inventory: Inventory) -> tuple[float, float, ReachabilityAnalysis, Matrix]:
    """One from-scratch engine run: wall and CPU seconds, the analysis and its matrix."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    analysis = ReachabilityAnalysis(inventory)
    matrix = analysis.matrix(PORT)
    return time.perf_counter() - wall, time.process_time() - cpu, analysis, matrix


def _measure_cnps(size: str, repeat: int, seed: int, cnps: int) -> dict[str, object]:
    """The same cluster without and with ``cnps`` ClusterNetworkPolicies, alternating."""
    pods, namespaces, policies, _ = SIZES[size]
    objects = generate_cluster(pods=pods, namespaces=namespaces, policies=policies, seed=seed)
    plain = inventory_from_objects(objects)
    tiered = inventory_from_objects([*objects, *cluster_policies(cnps, seed=seed)])
    del objects
    times: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    counts: dict[bool, int] = {}
    allowed: dict[bool, int] = {}
    for _ in range(repeat):
        for with_cnps, inventory in ((False, plain), (True, tiered)):
            wall, cpu, analysis, matrix = _time_engine(inventory)
            times[with_cnps][0].append(wall)
            times[with_cnps][1].append(cpu)
            counts[with_cnps] = analysis.classes.count
            allowed[with_cnps] = matrix.namespace_summary().total_allowed()
            del analysis, matrix
    wall0, wall1 = (statistics.median(times[k][0]) for k in (False, True))
    cpu0, cpu1 = (statistics.median(times[k][1]) for k in (False, True))
    return {
        "size": size,
        "pods": len(plain.pods),
        "policies": len(plain.policies),
        "cnps": len(tiered.admin_policies),
        "repeat": repeat,
        "classes": counts[False],
        "cnp_classes": counts[True],
        "engine_wall_s": round(wall0, 3),
        "engine_cnp_wall_s": round(wall1, 3),
        "cnp_ratio": round(wall1 / wall0, 2),
        "engine_cpu_s": round(cpu0, 3),
        "engine_cnp_cpu_s": round(cpu1, 3),
        "cnp_cpu_ratio": round(cpu1 / cpu0, 2),
        "cnp_ratio_target": 1.5,
        "allowed_pairs": allowed[False],
        "cnp_allowed_pairs": allowed[True],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _measure(size: str, repeat: int, seed: int, incremental: bool) -> dict[str, object]:
    pods, namespaces, policies, target = SIZES[size]
    started = time.perf_counter()
    objects = generate_cluster(pods=pods, namespaces=namespaces, policies=policies, seed=seed)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    inventory = inventory_from_objects(objects)
    loaded = time.perf_counter() - started
    del objects
    walls, cpus = [], []
    analysis = None
    for _ in range(repeat):
        analysis = matrix = None  # the previous repetition's result is not part of this one
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        analysis = ReachabilityAnalysis(inventory)
        matrix = analysis.matrix(PORT)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert analysis is not None
    assert matrix is not None
    second = time.perf_counter()
    analysis.matrix(5432)
    second_port = time.perf_counter() - second
    # Peak before the namespace summary (output, not engine work: two 5,000 x 5,000 int64
    # arrays at the large size); ``peak_rss_mb`` includes it.
    engine_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall = time.perf_counter()
    summary = matrix.namespace_summary()
    summary_s = time.perf_counter() - wall
    allowed = summary.total_allowed()
    result: dict[str, object] = {
        "size": size,
        "pods": len(inventory.pods),
        "namespaces": len(inventory.namespaces),
        "policies": len(inventory.policies),
        "classes": analysis.classes.count,
        "generate_s": round(generated, 3),
        "load_s": round(loaded, 3),
        "engine_wall_s": round(statistics.median(walls), 3),
        "engine_cpu_s": round(statistics.median(cpus), 3),
        "another_port_s": round(second_port, 3),
        "target_s": target,
        "summary_s": round(summary_s, 3),
        "allowed_pairs": allowed,
    }
    if pods <= 20_000:
        wall = time.perf_counter()
        dense = matrix.dense()
        result["expand_s"] = round(time.perf_counter() - wall, 3)
        assert int(dense.sum()) - len(inventory.pods) == allowed  # diagonal is 1 (S07)
        del dense
    result["engine_peak_rss_mb"] = round(engine_rss)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if incremental:
        del analysis, matrix, summary
        result.update(_incremental(inventory, repeat))
        # The model, then a fresh analysis of the changed objects to check it against.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["incremental_peak_rss_mb"] = round(peak)
    return result


def _incremental(inventory: Inventory, repeat: int) -> dict[str, object]:
    """Single policy changes in a built ``ReachabilityModel``: a rule dropped (replace), the
    policy removed, then added back; medians over several policies. The model's matrix is then
    compared (``_matrix_digest``) with a from-scratch analysis of the changed objects."""
    from kubefence.engine import ReachabilityModel

    gc.collect()
    wall = time.perf_counter()
    model = ReachabilityModel(inventory, port=PORT)
    built = time.perf_counter() - wall
    times: dict[str, list[float]] = {"replace": [], "remove": [], "add": []}
    policies = list(inventory.policies)
    current = {p.key: p for p in policies}
    for k in range(max(5, repeat)):
        old: NetworkPolicy = policies[(k * 997) % len(policies)]
        new = NetworkPolicy(
            namespace=old.namespace,
            name=old.name,
            pod_selector=old.pod_selector,
            policy_types=old.policy_types,
            ingress=old.ingress[:-1] if old.ingress else old.ingress,
            egress=old.egress,
        )
        steps: tuple[tuple[str, Any, Any], ...] = (
            ("replace", model.replace_policy, new),
            ("remove", model.remove_policy, new.key),
            ("add", model.add_policy, old),
        )
        for kind, change, argument in steps:
            wall = time.perf_counter()
            change(argument)
            times[kind].append(time.perf_counter() - wall)
        current[old.key] = old
    # Last: one change left in place, so that the check below is not of the initial state.
    last = policies[len(policies) // 2]
    changed = NetworkPolicy(
        namespace=last.namespace,
        name=last.name,
        pod_selector=last.pod_selector,
        policy_types=last.policy_types,
        egress=last.egress[:-1] if last.egress else last.egress,
    )
    model.replace_policy(changed)
    current[changed.key] = changed
    fresh = ReachabilityAnalysis(
        Inventory.of(
            namespaces=inventory.namespaces, pods=inventory.pods, policies=current.values()
        )
    ).matrix(PORT)
    same = _matrix_digest(model.matrix()) == _matrix_digest(fresh)
    return {
        "incremental_build_s": round(built, 3),
        "policy_change_ms": round(1000 * statistics.median(times["replace"]), 2),
        "policy_remove_ms": round(1000 * statistics.median(times["remove"]), 2),
        "policy_add_ms": round(1000 * statistics.median(times["add"]), 2),
        "policy_change_target_ms": 50,
        "incremental_rebuilds": model.rebuilds,
        "incremental_equals_fresh": same,
    }


def _matrix_digest(matrix: Matrix) -> bytes:
    """SHA-256 of the pod-level matrix: per pod, the hash of its row (self cell and S24
    overrides hashed apart), so each distinct class row is expanded only once."""
    import numpy as np

    of = matrix.class_of
    count = int(of.max()) + 1 if len(of) else 0
    row_hash: list[bytes] = []
    step = max(1, 4_000_000 // max(1, len(of)))
    for lo in range(0, count, step):
        ids = np.arange(lo, min(count, lo + step))
        if hasattr(matrix, "class_rows"):
            rows = matrix.class_rows(ids)
        else:  # before class_bits existed
            rows = matrix.class_allowed[ids]
        for row in np.packbits(rows[:, of], axis=1):
            row_hash.append(hashlib.sha256(row.tobytes()).digest())
    digest = hashlib.sha256()
    digest.update(repr((matrix.endpoints, matrix.self_allowed, matrix.overrides)).encode())
    for c in of.tolist():
        digest.update(row_hash[c])
    return digest.digest()


def _digest(size: str, seed: int) -> dict[str, object]:
    pods, namespaces, policies, _ = SIZES[size]
    objects = generate_cluster(pods=pods, namespaces=namespaces, policies=policies, seed=seed)
    inventory = inventory_from_objects(objects)
    del objects
    analysis = ReachabilityAnalysis(inventory)
    digest = hashlib.sha256()
    classes = port_classes([inventory])
    for pc in classes:
        matrix = analysis.matrix(pc.port, pc.protocol, label=pc.label)
        digest.update(f"{pc.protocol}/{pc.label}".encode())
        digest.update(_matrix_digest(matrix))
        del matrix
    return {"size": size, "port_classes": len(classes), "digest": digest.hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,medium", help="comma list of " + ",".join(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON lines, not a table")
    parser.add_argument("--digest", action="store_true", help="print result digests instead")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one size here
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="also time single policy changes in ReachabilityModel (always on for medium)",
    )
    parser.add_argument(
        "--cnps",
        type=int,
        default=0,
        help="measure the engine without and with this many ClusterNetworkPolicies instead",
    )
    args = parser.parse_args()
    if args.one:
        if args.digest:
            print(json.dumps(_digest(args.one, args.seed)))
            return 0
        if args.cnps:
            print(json.dumps(_measure_cnps(args.one, args.repeat, args.seed, args.cnps)))
            return 0
        print(json.dumps(_measure(args.one, args.repeat, args.seed, args.incremental)))
        return 0
    rows = []
    for size in args.sizes.split(","):
        if size not in SIZES:
            parser.error(f"unknown size {size!r}")
        command = [sys.executable, __file__, "--one", size, "--repeat", str(args.repeat)]
        command += ["--seed", str(args.seed)]
        if args.digest:
            command.append("--digest")
        elif args.cnps:
            command += ["--cnps", str(args.cnps)]
        elif size == "medium" or args.incremental:
            command.append("--incremental")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{size}: failed\n{done.stderr}", file=sys.stderr)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        keys = sorted(
            {k for r in rows for k in r},
            key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99,
        )
        for row in rows:
            print(f"== {row['size']}")
            for key in keys:
                if key in row and key != "size":
                    print(f"  {key:26} {row[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
