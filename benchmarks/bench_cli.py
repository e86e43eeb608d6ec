"""Benchmark: wall time of whole ``kubefence`` processes, as a user starts them.

Why this module exists: a CLI that takes half a second before it answers feels broken, and most
of that time is start-up (imports) rather than work. This script times the console script
(``kubefence``, next to the running interpreter) as a whole process - interpreter start, ``site``,
imports, reading the YAML, the work and the output - for ``--help``, ``validate`` and
``matrix -o json`` on a seeded 500-pod cluster (``benchmarks/generate.py``: 50 namespaces, 150
policies), and ``python -c pass`` as the floor no command can beat. Runs are interleaved (one of
each, then again), so a noisy shared machine slows every variant alike, and medians are printed.

``validate`` and ``matrix`` are timed twice, and the rows say which: *cold* with the inventory
cache off (``KUBEFENCE_CACHE=off``: every run reads the YAML, as the first run on new manifests
does) and *warm* with it primed (a private ``XDG_CACHE_HOME``: the second command on unchanged
manifests). A baseline tree without the cache runs cold in both rows.

``--baseline-src DIR`` times a second copy of the source tree in the same run (the same console
script with ``PYTHONPATH=DIR``), e.g. the tree before a change:

    git archive main src | tar -x -C /tmp/base
    python benchmarks/bench_cli.py --runs 7 --baseline-src /tmp/base/src
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import generate_cluster, write_yaml


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _once(command: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one whole process."""
    cpu, started = _cpu_of_children(), time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(env), check=True
    )
    return time.perf_counter() - started, _cpu_of_children() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (median)")
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--policies", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--baseline-src", type=Path, help="a second source tree to time in the same run"
    )
    args = parser.parse_args()

    script = Path(sys.executable).parent / "kubefence"
    if not script.exists():
        raise SystemExit(f"no console script at {script}: pip install -e . first")
    # A user's installation has compiled bytecode; PYTHONDONTWRITEBYTECODE (set in some CI and
    # sandboxes) would make every run recompile every module, so the warm-up run writes it.
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    variants: dict[str, dict[str, str]] = {"this tree": environ}
    if args.baseline_src is not None:
        baseline = dict(environ)
        baseline["PYTHONPATH"] = str(args.baseline_src.resolve())
        variants = {"baseline": baseline, **variants}
    with tempfile.TemporaryDirectory(prefix="kf-bench-cli-") as tmp:
        cluster = Path(tmp) / "cluster.yaml"
        objects = generate_cluster(
            pods=args.pods, namespaces=args.namespaces, policies=args.policies, seed=args.seed
        )
        write_yaml(objects, cluster)
        validate = [str(script), "validate", "-f", str(cluster)]
        matrix = [str(script), "matrix", "-f", str(cluster), "-o", "json"]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], {}),
            "kubefence --help": ([str(script), "--help"], {}),
            "kubefence validate -f C, cold": (validate, {"KUBEFENCE_CACHE": "off"}),
            "kubefence validate -f C, warm": (validate, {}),
            "kubefence matrix -f C -o json, cold": (matrix, {"KUBEFENCE_CACHE": "off"}),
            "kubefence matrix -f C -o json, warm": (matrix, {}),
        }
        for index, env in enumerate(variants.values()):  # each tree its own cache
            env.pop("KUBEFENCE_CACHE", None)
            env["XDG_CACHE_HOME"] = str(Path(tmp) / f"cache-{index}")
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for (label, env), (name, (command, extra)) in (
            (v, c) for v in variants.items() for c in commands.items()
        ):
            _once(command, {**env, **extra})  # page cache, __pycache__, the inventory cache
            times[(label, name)] = []
        for _ in range(args.runs):
            for label, env in variants.items():
                for name, (command, extra) in commands.items():
                    times[(label, name)].append(_once(command, {**env, **extra}))
    print(
        f"cluster C: {args.pods} pods, {args.namespaces} namespaces, {args.policies} policies "
        f"(seed {args.seed}); medians of {args.runs} runs in seconds, wall / CPU (user+system; "
        "less disturbed by other load on the machine)"
    )
    print(f"{'command':40}" + "".join(f"{label:>22}" for label in variants))
    for name in commands:
        cells = ""
        for label in variants:
            runs = times[(label, name)]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            cells += f"{wall:14.3f} / {cpu:5.3f}"
        print(f"{name:40}{cells}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
