"""Benchmark: kubefence against network-config-analyzer (NCA) on three generators.

Why this module exists: NCA (``pip install network-config-analyzer``) is the Python tool users
have for whole-cluster connectivity. This script installs it into its own venv, generates
clusters of the same shape (10 pods and 3 policies a namespace) from three generators - ours
with every pod a bare Pod (``benchmarks/generate.py``), ours with every pod a Deployment
replica, and an independently written one (``benchmarks/generate_independent.py``) - at each
size (500 and 2,000 pods by default), runs both tools as whole processes on the same
directory, on the same machine, in the same run, and prints both wall times (medians) and the
ratio. kubefence's time is cold (``KUBEFENCE_CACHE=off``: every run reads the YAML); the "warm"
columns rerun it with its inventory cache primed, as a second command on the same files runs.
Runs alternate between the tools (kubefence cold, warm, NCA; again), and "CPU ratio" compares
median CPU times (user + system), which a shared machine's load inflates less than wall time.
NCA runs are capped (``--nca-timeout``; reported as "> N s"). Where NCA finished, the two
are compared cell by cell, where NCA's output can be mapped:

* NCA ``--connectivity -o txt_no_fw_rules --output_endpoints pods`` prints one line
  ``SRC => DST : CONNECTIONS`` per allowed pair, where CONNECTIONS is ``All connections`` or
  ``{protocols:TCP, UDP,dst_ports:53,8000-8100}`` sets. A pair without a line is denied.
* NCA keeps at most two pods per workload, named ``NAME-1`` and ``NAME-2``; kubefence names
  every replica ``NAME-0`` ... ``NAME-(n-1)``. Replica ``NAME-k`` of NCA is ``NAME-(k-1)`` here;
  bare pods keep their names. Replicas NCA does not model are not compared; pods it models
  but never names (isolated from everything, in its output) are compared as denied.
* kubefence prints one matrix per port class (``matrix -o json`` without ``--port``); each
  class is compared at its representative port.
* Where Kubernetes leaves a choice open, kubefence is run with NCA's: NCA treats an ipBlock as
  addresses outside the cluster, never matching a pod, which is kubefence's S15 setting
  ``ipblock_matches_pods=false`` (default true; docs/semantics.md). ``--kubefence-setting``
  changes this.

    python benchmarks/vs_nca.py [--sizes 500,2000] [--repeat 3] [--nca-timeout 120]
    python benchmarks/vs_nca.py --generators independent --sizes 500 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import generate_cluster, write_yaml
from benchmarks.generate_independent import independent_cluster

_LINE = re.compile(r"^(\S+) => (\S+) : (.+)$")
_SET = re.compile(r"\{protocols:([A-Z, ]+?)(?:,dst_ports:([0-9,\-]+))?\}")


def ensure_nca(venv: Path) -> Path:
    """The ``nca`` executable of ``venv``, creating the venv and installing NCA if needed."""
    nca = venv / "bin" / "nca"
    if not nca.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "network-config-analyzer"]
        subprocess.run(pip, check=True)
    return nca


def _allows(connections: str, port: int, protocol: str) -> bool | None:
    """Does an NCA connection string admit ``port``/``protocol``? None: cannot be read."""
    if connections.strip() == "All connections":
        return True
    sets = _SET.findall(connections)
    if not sets:
        return None
    for protocols, ports in sets:
        if protocol not in {p.strip() for p in protocols.split(",")}:
            continue
        if not ports:
            return True
        for part in ports.split(","):
            low, _, high = part.partition("-")
            if int(low) <= port <= int(high or low):
                return True
    return False


def parse_nca(text: str) -> tuple[dict[tuple[str, str], list[str]], set[str]]:
    """Allowed pairs (pod names as NCA prints them) with their connection strings, and every
    pod name NCA mentions."""
    pairs: dict[tuple[str, str], list[str]] = {}
    names: set[str] = set()
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        src, dst, connections = match.groups()
        for name in (src, dst):
            if "/" in name and not name[0].isdigit():
                names.add(name)
        pairs.setdefault((src, dst), []).append(connections)
    return pairs, names


def nca_name(key: str, owner: str | None) -> str | None:
    """The name NCA gives the kubefence pod ``key`` (None: NCA does not model that replica)."""
    if owner is None:
        return key
    namespace, name = key.split("/", 1)
    base, _, index = name.rpartition("-")
    if not index.isdigit() or int(index) > 1:
        return None
    return f"{namespace}/{base}-{int(index) + 1}"


def agreement(
    kubefence: list[dict[str, object]], nca_text: str, owners: dict[str, str | None]
) -> dict[str, object]:
    pairs, listed = parse_nca(nca_text)
    first = kubefence[0]
    endpoints = list(first["endpoints"])  # type: ignore[call-overload]
    mapped = {i: nca_name(k, owners.get(k)) for i, k in enumerate(endpoints)}
    # Every pod NCA models is compared, also one its output never names: NCA prints allowed
    # pairs only, so a pod it isolates completely is absent, and leaving it out would hide any
    # connection kubefence allows to or from it.
    usable = [i for i, n in mapped.items() if n is not None]
    unlisted = sorted(str(mapped[i]) for i in usable if mapped[i] not in listed)
    compared = agree = unreadable = 0
    disagreements: list[str] = []
    for doc in kubefence:
        label, protocol = str(doc["port"]), str(doc["protocol"])
        rows: list[str] = doc["rows"]  # type: ignore[assignment]
        port = _representative(label)
        for i in usable:
            for j in usable:
                a, b = mapped[i], mapped[j]
                if i == j or a == b:
                    continue
                assert a is not None
                assert b is not None
                verdicts = [_allows(c, port, protocol) for c in pairs.get((a, b), [])]
                if any(v is None for v in verdicts):
                    unreadable += 1
                    continue
                theirs = any(verdicts)
                ours = rows[i][j] == "1"
                compared += 1
                if theirs == ours:
                    agree += 1
                elif len(disagreements) < 10:
                    verdict = {True: "allow", False: "deny"}
                    disagreements.append(
                        f"{endpoints[i]} -> {endpoints[j]} {label}/{protocol}: "
                        f"kubefence {verdict[ours]}, NCA {verdict[theirs]}"
                    )
    return {
        "pods_compared": len(usable),
        "pods_unlisted": unlisted,
        "cells_compared": compared,
        "cells_agreeing": agree,
        "cells_unreadable": unreadable,
        "disagreements": disagreements,
    }


def _representative(label: str) -> int:
    """The port a class label stands for: its first number, or for "other" a port no policy
    names (65535 is never used by the generator; NCA is then asked about the same port)."""
    if label == "other":
        return 65535
    return int(label.split("-")[0])


def _generators(seed: int) -> dict[str, Callable[[int], list[dict[str, Any]]]]:
    """Each generator at ``pods`` pods, in the shape of 10 pods and 3 policies per namespace."""
    return {
        "ours-pods": lambda pods: generate_cluster(
            pods=pods,
            namespaces=pods // 10,
            policies=3 * (pods // 10),
            seed=seed,
            bare_pod_fraction=1.0,
        ),
        "ours-deployments": lambda pods: generate_cluster(
            pods=pods,
            namespaces=pods // 10,
            policies=3 * (pods // 10),
            seed=seed,
            bare_pod_fraction=0.0,
        ),
        "independent": lambda pods: independent_cluster(
            namespaces=pods // 10, pods_per_namespace=10, seed=seed
        ),
        # the same cluster with `owner Exists` written as the equivalent `owner In [...]`
        "independent-no-exists": lambda pods: independent_cluster(
            namespaces=pods // 10, pods_per_namespace=10, seed=seed, exists=False
        ),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_capped(
    command: Sequence[str], output: Path, repeat: int, timeout: float, env: dict[str, str]
) -> list[tuple[float, float]] | None:
    """Wall and CPU (user + system) seconds of ``repeat`` runs, or None when a run exceeds
    ``timeout`` seconds."""
    times = []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _children_cpu()
        try:
            with output.open("w") as handle:
                subprocess.run(
                    command,
                    stdout=handle,
                    stderr=subprocess.DEVNULL,
                    check=True,
                    timeout=timeout,
                    env=env,
                )
        except subprocess.TimeoutExpired:
            return None
        times.append((time.perf_counter() - started, _children_cpu() - cpu))
    return times


def compare(
    name: str,
    objects: list[dict[str, Any]],
    *,
    nca: Path,
    repeat: int,
    timeout: float,
    agree_max_pods: int,
    settings: Sequence[str] = (),
) -> dict[str, Any]:
    """Both tools on one generated cluster: times, and agreement where NCA finished."""
    kubefence_script = Path(sys.executable).parent / "kubefence"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix=f"kf-vs-nca-{name}-") as tmp:
        workdir = Path(tmp)
        cluster = workdir / "cluster"
        cluster.mkdir()
        write_yaml(objects, cluster / "cluster.yaml")
        nca_out, kf_out = workdir / "nca.txt", workdir / "kubefence.json"
        nca_cmd = [str(nca), "--connectivity", "-r", str(cluster), "-o", "txt_no_fw_rules"]
        nca_cmd += ["--output_endpoints", "pods"]
        kf_cmd = [str(kubefence_script), "matrix", "-f", str(cluster), "-o", "json"]
        for setting in settings:
            kf_cmd += ["--setting", setting]
        # kubefence's headline time is cold: its inventory cache off, every run parses the
        # YAML as a first run on new manifests does. "warm" runs with the cache primed (a
        # private XDG_CACHE_HOME), as a second command on unchanged manifests runs.
        cold_env = {**env, "KUBEFENCE_CACHE": "off"}
        warm_env = {**env, "KUBEFENCE_CACHE": "on", "XDG_CACHE_HOME": str(workdir / "xdg")}
        warm_out = workdir / "warm.json"
        _timed_capped(kf_cmd, kf_out, 1, 3600, cold_env)  # warm-up: writes __pycache__
        _timed_capped(kf_cmd, warm_out, 1, 3600, warm_env)  # primes the cache
        # Interleaved (kubefence cold, warm, NCA; again), so that a shared machine's changing
        # load weighs on both tools alike; CPU times are compared too, load inflates them less.
        kf_times: list[tuple[float, float]] = []
        kf_warm: list[tuple[float, float]] = []
        nca_times: list[tuple[float, float]] | None = []
        for _ in range(repeat):
            kf_times += _timed_capped(kf_cmd, kf_out, 1, 3600, cold_env) or []
            kf_warm += _timed_capped(kf_cmd, warm_out, 1, 3600, warm_env) or []
            if nca_times is not None:
                once = _timed_capped(nca_cmd, nca_out, 1, timeout, env)
                nca_times = None if once is None else nca_times + once
        if warm_out.read_bytes() != kf_out.read_bytes():
            raise SystemExit(f"{name}: the cached run printed another matrix than the cold one")
        from kubefence.sources.files import load_paths

        inventory = load_paths([str(cluster)])
        result: dict[str, Any] = {
            "generator": name,
            "pods": len(inventory.pods),
            "policies": len(inventory.policies),
            "kubefence": kf_times,
            "kubefence_warm": kf_warm,
            "nca": nca_times,
            "agreement": None,
        }
        if nca_times is not None and len(inventory.pods) <= agree_max_pods:
            owners = {p.key: p.owner for p in inventory.pods}
            kubefence = json.loads(kf_out.read_text())
            result["agreement"] = agreement(kubefence, nca_out.read_text(), owners)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--generators",
        default="ours-pods,ours-deployments,independent",
        help="comma-separated: ours-pods (benchmarks/generate.py, every pod a bare Pod), "
        "ours-deployments (the same generator, every pod a Deployment replica), independent "
        "(benchmarks/generate_independent.py); also independent-no-exists (the same cluster "
        "with each `owner Exists` written as the equivalent `owner In [...]`)",
    )
    parser.add_argument(
        "--sizes", default="500,2000", help="pod counts, comma-separated (10 pods a namespace)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--nca-timeout", type=float, default=120.0, help="seconds per NCA run before giving up"
    )
    parser.add_argument(
        "--agree-max-pods",
        type=int,
        default=1000,
        help="compare cell by cell up to this many pods (the comparison runs in Python)",
    )
    parser.add_argument(
        "--kubefence-setting",
        action="append",
        metavar="NAME=BOOL",
        help="kubefence --setting for the comparison; repeatable (default: "
        "ipblock_matches_pods=false, NCA's reading of ipBlocks)",
    )
    parser.add_argument("--venv", type=Path, default=Path("/tmp/nca-venv"))
    args = parser.parse_args()
    settings = args.kubefence_setting or ["ipblock_matches_pods=false"]
    print(f"kubefence settings: {', '.join(settings)}")

    nca = ensure_nca(args.venv)
    generators = _generators(args.seed)
    sizes = [int(x) for x in args.sizes.split(",")]
    results = []
    for name in args.generators.split(","):
        for pods in sizes:
            result = compare(
                name,
                generators[name](pods),
                nca=nca,
                repeat=args.repeat,
                timeout=args.nca_timeout,
                agree_max_pods=args.agree_max_pods,
                settings=settings,
            )
            results.append(result)
            _print_row(result, args.nca_timeout)
    print()
    print("agreement (every kubefence port class at its representative port, pods NCA lists):")
    for r in results:
        a = r["agreement"]
        if a is None:
            continue
        print(
            f"  {r['generator']} ({r['pods']} pods): {a['cells_agreeing']} of "
            f"{a['cells_compared']} cells agree over {a['pods_compared']} pods "
            f"({len(a['pods_unlisted'])} of them in no line of NCA's output); "
            f"{a['cells_unreadable']} cells with NCA output that could not be read"
        )
        for line in a["disagreements"]:
            print(f"    differs: {line}")
    return 0


def _print_row(r: dict[str, Any], timeout: float) -> None:
    if not getattr(_print_row, "header", False):
        print(
            f"{'generator':18} {'pods':>5} {'policies':>8} {'NCA s':>9} {'kubefence s':>12} "
            f"{'NCA/kubefence':>14} {'warm s':>7} {'NCA/warm':>9} {'CPU ratio':>10}  agreement"
        )
        _print_row.header = True  # type: ignore[attr-defined]
    kf = statistics.median(w for w, _ in r["kubefence"])
    kf_cpu = statistics.median(c for _, c in r["kubefence"])
    warm = statistics.median(w for w, _ in r["kubefence_warm"])
    if r["nca"] is None:
        nca_text, ratio = f"> {timeout:.0f}", f"> {timeout / kf:.0f}x"
        warm_ratio, cpu_ratio = f"> {timeout / warm:.0f}x", "-"
    else:
        nca = statistics.median(w for w, _ in r["nca"])
        nca_cpu = statistics.median(c for _, c in r["nca"])
        nca_text, ratio = f"{nca:.2f}", f"{nca / kf:.1f}x"
        warm_ratio, cpu_ratio = f"{nca / warm:.1f}x", f"{nca_cpu / kf_cpu:.1f}x"
    a = r["agreement"]
    agree = (
        "not compared"
        if a is None
        else f"{a['cells_agreeing']}/{a['cells_compared']} cells"
        + (f", {len(a['disagreements'])}+ differ" if a["disagreements"] else "")
    )
    print(
        f"{r['generator']:18} {r['pods']:>5} {r['policies']:>8} {nca_text:>9} {kf:>12.2f} "
        f"{ratio:>14} {warm:>7.2f} {warm_ratio:>9} {cpu_ratio:>10}  {agree}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
