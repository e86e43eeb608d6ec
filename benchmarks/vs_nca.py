"""Benchmark: kubefence against network-config-analyzer (NCA) on the same generated cluster.

Why this module exists: NCA (``pip install network-config-analyzer``) is the Python tool users
have for whole-cluster connectivity. This script installs it into its own venv, generates one
seeded cluster (``benchmarks/generate.py``), runs both tools as whole processes on the same
directory, on the same machine, in the same run, and prints both wall times and the ratio. It
then checks whether the two agree on every connection where NCA's output can be mapped:

* NCA ``--connectivity -o txt_no_fw_rules --output_endpoints pods`` prints one line
  ``SRC => DST : CONNECTIONS`` per allowed pair, where CONNECTIONS is ``All connections`` or
  ``{protocols:TCP, UDP,dst_ports:53,8000-8100}`` sets. A pair without a line is denied.
* NCA keeps at most two pods per workload, named ``NAME-1`` and ``NAME-2``; kubefence names
  every replica ``NAME-0`` ... ``NAME-(n-1)``. Replica ``NAME-k`` of NCA is ``NAME-(k-1)`` here;
  bare pods keep their names. Pairs involving pods NCA does not list are not compared.
* kubefence prints one matrix per port class (``matrix -o json`` without ``--port``); each
  class is compared at its representative port.

    python benchmarks/vs_nca.py [--pods 500 --namespaces 50 --policies 150] [--repeat 3]
    python benchmarks/vs_nca.py --bare-pod-fraction 1.0     # every pod a Pod: NCA sees all 500
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import generate_cluster, write_yaml

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


def _timed(command: Sequence[str], output: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with output.open("w") as handle:
            subprocess.run(command, stdout=handle, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return times


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
    usable = [i for i, n in mapped.items() if n is not None and n in listed]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--policies", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--bare-pod-fraction",
        type=float,
        default=0.2,
        help="share of pods written as bare Pods rather than Deployment replicas; NCA analyses "
        "at most two pods per workload, so 1.0 makes both tools analyse every pod",
    )
    parser.add_argument("--venv", type=Path, default=Path("/tmp/nca-venv"))
    args = parser.parse_args()

    nca = ensure_nca(args.venv)
    objects = generate_cluster(
        pods=args.pods,
        namespaces=args.namespaces,
        policies=args.policies,
        seed=args.seed,
        bare_pod_fraction=args.bare_pod_fraction,
    )
    with tempfile.TemporaryDirectory(prefix="kf-vs-nca-") as tmp:
        workdir = Path(tmp)
        cluster = workdir / "cluster"
        cluster.mkdir()
        write_yaml(objects, cluster / "cluster.yaml")
        nca_out, kf_out = workdir / "nca.txt", workdir / "kubefence.json"
        nca_cmd = [str(nca), "--connectivity", "-r", str(cluster), "-o", "txt_no_fw_rules"]
        nca_cmd += ["--output_endpoints", "pods"]
        kf_cmd = [sys.executable, "-m", "kubefence", "matrix", "-f", str(cluster), "-o", "json"]
        nca_times = _timed(nca_cmd, nca_out, args.repeat)
        kf_times = _timed(kf_cmd, kf_out, args.repeat)
        kubefence = json.loads(kf_out.read_text())
        from kubefence.sources.files import load_paths

        inventory = load_paths([str(cluster)])
        owners = {p.key: p.owner for p in inventory.pods}
        result = agreement(kubefence, nca_out.read_text(), owners)
    nca_median, kf_median = statistics.median(nca_times), statistics.median(kf_times)
    print(f"cluster: {args.pods} pods, {args.namespaces} namespaces, {args.policies} policies")
    print(f"network-config-analyzer --connectivity: median {nca_median:.2f} s {nca_times}")
    print(f"kubefence matrix (all port classes):    median {kf_median:.2f} s {kf_times}")
    print(f"ratio (NCA / kubefence): {nca_median / kf_median:.1f}x")
    print(
        f"agreement: {result['cells_agreeing']} of {result['cells_compared']} cells agree "
        f"({result['pods_compared']} pods NCA lists, every kubefence port class; "
        f"{result['cells_unreadable']} cells with NCA output that could not be read)"
    )
    for line in result["disagreements"]:  # type: ignore[attr-defined]
        print(f"  differs: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
