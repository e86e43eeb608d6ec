"""Benchmark: ``kubefence audit``'s report (``build_report``) on seeded multi-tenant clusters.

Why this module exists: the report must stay usable on real clusters (issue 17's 10,000-pod HTML
report builds on it): targets ``build_report`` <= 1 s at 500 pods / 50 namespaces / 150 policies
and <= 5 s at 10,000 / 1,000 / 7,000, tenants by the generator's ``env`` namespace label. This
script measures the working tree ("after") and, for comparison, another revision ("before",
default ``main``, its ``src`` taken with ``git archive`` into a temporary directory), each size
in its own process, the median of ``--repeat`` runs as wall and process CPU time (CPU time is
steadier on a shared machine). "before" runs ``--before-repeat`` times (default once: it took
minutes at 2,000 pods), capped by ``--time-limit`` seconds per size.

When both finish, their facts are compared: the namespace matrix, and per cross-tenant
namespace pair the number of pod pairs (the old report listed every pair) and the ports of
every example pair the new report shows.

    python benchmarks/bench_audit.py                          # 500 and 2,000 pods
    python benchmarks/bench_audit.py --sizes 500,2000,10000 --time-limit 300
    python benchmarks/bench_audit.py --before ''              # "after" only
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = {500: (50, 150), 2_000: (200, 600), 10_000: (1_000, 7_000)}
TARGETS = {500: 1.0, 10_000: 5.0}
TENANT = "env"


def _child(pods: int, repeat: int, seed: int, examples_file: str | None) -> dict[str, Any]:
    """Runs in a subprocess whose ``sys.path`` puts the measured ``src`` first."""
    import gc

    from benchmarks.generate import generate_cluster

    from kubefence.audit import build_report
    from kubefence.sources.objects import inventory_from_objects

    namespaces, policies = SIZES[pods]
    objects = generate_cluster(pods=pods, namespaces=namespaces, policies=policies, seed=seed)
    inventory = inventory_from_objects(objects)
    walls, cpus = [], []
    report = None
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        report = build_report(inventory, tenant_label=TENANT)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert report is not None
    counts: dict[str, int] = {}
    tenant_paths = getattr(report, "tenant_paths", None)
    if tenant_paths is not None:  # the aggregated report
        for p in tenant_paths:
            counts[f"{p.source} {p.destination}"] = p.pod_pairs
        ports = {f"{e.source} {e.destination}": list(e.ports) for e in report.cross_tenant}
        pod_pairs = sum(counts.values())
    else:  # the old report: every pod pair
        for path in report.cross_tenant:
            key = f"{path.source.split('/')[0]} {path.destination.split('/')[0]}"
            counts[key] = counts.get(key, 0) + 1
        wanted = set(json.loads(Path(examples_file).read_text())) if examples_file else set()
        ports = {
            f"{e.source} {e.destination}": list(e.ports)
            for e in report.cross_tenant
            if f"{e.source} {e.destination}" in wanted
        }
        pod_pairs = len(report.cross_tenant)
    return {
        "pods": len(inventory.pods),
        "namespaces": len(inventory.namespaces),
        "policies": len(inventory.policies),
        "wall_s": round(statistics.median(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
        "runs": repeat,
        "namespace_pairs": len(counts),
        "pod_pairs": pod_pairs,
        "examples": len(report.cross_tenant),
        "matrix": ["".join("1" if c else "0" for c in row) for row in report.matrix],
        "counts": counts,
        "ports": ports,
    }


def _run(
    src: Path, pods: int, repeat: int, seed: int, limit: float | None, examples: str | None
) -> dict[str, Any] | str:
    code = (
        f"import sys, json; sys.path[:0] = [{str(src)!r}, {str(ROOT)!r}]; "
        "from benchmarks.bench_audit import _child; "
        f"print(json.dumps(_child({pods}, {repeat}, {seed}, {examples!r})))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        return f"> {limit:.0f} s (time limit)"
    if done.returncode:
        return "failed: " + done.stderr.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _compare(after: dict[str, Any], before: dict[str, Any]) -> str:
    problems = []
    if after["matrix"] != before["matrix"]:
        problems.append("namespace matrix differs")
    if after["counts"] != before["counts"]:
        problems.append("pod pairs per namespace pair differ")
    if after["ports"] != before["ports"]:
        problems.append("example ports differ")
    return "; ".join(problems) or "same facts"


def _summary(result: dict[str, Any] | str) -> Any:
    if isinstance(result, str):
        return result
    return {k: v for k, v in result.items() if k not in ("matrix", "counts", "ports")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="500,2000", help="pod counts, of 500, 2000, 10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--before", default="main", help="revision to compare with ('' skips)")
    parser.add_argument("--before-repeat", type=int, default=1, help="runs of 'before' per size")
    parser.add_argument("--time-limit", type=float, default=300.0, help="per 'before' size, s")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        old_src: Path | None = None
        if args.before:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.before, "src"],
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            old_src = Path(tmp) / "src"
        for pods in sizes:
            after = _run(ROOT / "src", pods, args.repeat, args.seed, None, None)
            row: dict[str, Any] = {"size": pods, "after": _summary(after)}
            if isinstance(after, dict) and pods in TARGETS:
                row["target_s"] = TARGETS[pods]
            if old_src is not None:
                wanted = Path(tmp) / f"examples-{pods}.json"
                wanted.write_text(
                    json.dumps(list(after["ports"]) if isinstance(after, dict) else [])
                )
                before = _run(
                    old_src, pods, args.before_repeat, args.seed, args.time_limit, str(wanted)
                )
                row["before"] = _summary(before)
                if isinstance(before, dict) and isinstance(after, dict):
                    row["comparison"] = _compare(after, before)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
