"""Benchmark: ``kubefence report`` at 500, 2,000 and 10,000 pods: render time and open time.

Why this module exists: issue 17's targets are a report for 10,000 pods that renders in <= 5 s
and opens in the browser in <= 3 s. This script measures, per size (``benchmarks/generate.py``
clusters with the sizes of ``bench_audit``: 500 pods / 50 namespaces / 150 policies, 2,000 /
200 / 600, 10,000 / 1,000 / 7,000; tenants by the ``team`` label):

* render, whole process: ``kubefence report -f cluster.yaml --tenant-label team -o out.html``
  in a fresh interpreter, wall time and the child's CPU time (user + sys, steadier on a shared
  machine), with its own ``-v`` phase times (load, lint, report data, write) from the median
  run; twice: ``cold``, the first run on these manifests (an empty inventory cache: YAML is
  parsed and the inventory stored), and ``warm``, a repeated run (the CLI's inventory cache
  holds it, ``sources._cache``);
* render, in process: ``report_data`` + ``render_html`` on an inventory and findings loaded once
  (what the report module itself costs), wall and process CPU time;
* open: Debian Chromium driven by Playwright (as ``tests/browser``), from ``page.goto`` to the
  page's ready mark (``body[data-ready=true]``, set by the page's script after the graph and the
  heat map have been painted), and the page's own ``performance.now()`` at that mark (time
  since navigation start);
* the file's size.

Each figure is the median of ``--repeat`` runs (default 3). ``--before REV`` also renders and
opens with another revision's ``src`` (``git archive``, e.g. ``main``) in the same run, runs
alternating (before, cold, warm), for before/after ratios; ``--before-sizes`` limits that (the
old page did not open at 10,000 pods: 250 MB of JSON). ``--no-open`` skips the browser.

    python benchmarks/bench_report.py                                  # all three sizes
    python benchmarks/bench_report.py --sizes 10000 --before main --before-sizes 10000
    python benchmarks/bench_report.py --json                           # one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZES = {500: (50, 150), 2_000: (200, 600), 10_000: (1_000, 7_000)}
TARGETS = {"render_s": 5.0, "open_s": 3.0}  # at 10,000 pods (issue 17)
TENANT = "team"
CHROMIUM = os.environ.get("KUBEFENCE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]


def _cluster(pods: int, workdir: Path) -> Path:
    from benchmarks.generate import generate_cluster, write_yaml

    path = workdir / f"cluster-{pods}.yaml"
    if not path.exists():
        namespaces, policies = SIZES[pods]
        objects = generate_cluster(pods=pods, namespaces=namespaces, policies=policies, seed=1)
        write_yaml(objects, path)
    return path


def _source(rev: str, workdir: Path) -> Path:
    """``src`` of ``rev`` unpacked under ``workdir`` (the "before" code)."""
    target = workdir / f"src-{re.sub(r'[^A-Za-z0-9_.-]', '_', rev)}"
    if not target.exists():
        archive = workdir / "src.tar"
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "src"], check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    return target / "src"


def _render(
    cluster: Path, out: Path, src: Path, cache: Path
) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of one whole ``kubefence report`` process (inventory cache under
    ``cache``) and its ``-v`` phases."""
    env = dict(os.environ, PYTHONPATH=str(src), XDG_CACHE_HOME=str(cache))
    env.pop("KUBEFENCE_CACHE", None)
    argv = [sys.executable, "-m", "kubefence", "report", "-f", str(cluster),
            "--tenant-label", TENANT, "-o", str(out), "-v"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # -v prints the time since start after each phase: load, lint, report data, write
    marks = [
        int(found.group(1)) / 1000
        for line in done.stderr.splitlines()
        if (found := re.search(r": (\d+) ms since start$", line))
    ]
    names = ("load", "lint", "report_data", "write")
    phases = {
        name: round(mark - previous, 3)
        for name, mark, previous in zip(names, marks, [0.0, *marks], strict=False)
    }
    return wall, cpu, phases


def _in_process(cluster: Path, repeat: int) -> tuple[float, float]:
    """Median wall and process CPU seconds of ``report_data`` + ``render_html`` (inputs loaded
    once; CPU time is steadier on a shared machine)."""
    from kubefence.audit import lint
    from kubefence.report import render_html, report_data
    from kubefence.sources.files import load_paths

    inventory = load_paths([str(cluster)])
    findings = sorted(lint(inventory), key=lambda f: f.sort_key())
    walls, cpus = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        render_html(report_data(inventory, findings, tenant_label=TENANT))
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _open(browser: Any, page_file: Path) -> tuple[float, float]:
    """Seconds from ``goto`` to the ready mark, and the page's own time to it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        started = time.perf_counter()
        page.goto(page_file.as_uri(), timeout=600_000)
        page.wait_for_selector("body[data-ready]", state="attached", timeout=600_000)
        wall = time.perf_counter() - started
        if page.evaluate("document.body.dataset.ready") != "true" or problems:
            raise RuntimeError(f"the page did not draw: {problems}")
        return wall, float(page.evaluate("window.kfReadyMs")) / 1000
    finally:
        page.close()


def measure(sizes: list[int], repeat: int, before: str | None, before_sizes: set[int],
            in_process: bool, browse: bool) -> dict[str, Any]:  # fmt: skip
    from contextlib import ExitStack

    results: dict[str, Any] = {"sizes": {}, "repeat": repeat}
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp, ExitStack() as stack:
        browser = None
        if browse:
            from playwright.sync_api import sync_playwright

            pw = stack.enter_context(sync_playwright())
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        workdir = Path(tmp)
        variants = {"before": None, "cold": ROOT / "src", "warm": ROOT / "src"}
        if before:
            variants["before"] = _source(before, workdir)
        for pods in sizes:
            cluster = _cluster(pods, workdir)
            row: dict[str, Any] = {}
            runs: dict[str, dict[str, list[Any]]] = {}
            warm_cache = workdir / f"cache-warm-{pods}"
            _render(cluster, workdir / "warming.html", ROOT / "src", warm_cache)  # untimed
            for n in range(repeat):  # alternate the variants within a size
                for name, src in variants.items():
                    if src is None or (name == "before" and pods not in before_sizes):
                        continue
                    cache = warm_cache if name == "warm" else workdir / f"cache-{name}-{n}"
                    out = workdir / f"{name}-{pods}.html"
                    wall, cpu, phases = _render(cluster, out, src, cache)
                    if name != "warm":
                        shutil.rmtree(cache, ignore_errors=True)
                    r = runs.setdefault(name, {"render": [], "cpu": [], "phases": [],
                                               "open": [], "page": [], "size": []})  # fmt: skip
                    r["render"].append(wall)
                    r["cpu"].append(cpu)
                    r["phases"].append(phases)
                    r["size"].append(out.stat().st_size)
                    if browser is not None and name != "cold":  # the cold page is the warm one
                        opened, in_page = _open(browser, out)
                        r["open"].append(opened)
                        r["page"].append(in_page)
            for name, r in runs.items():
                middle = sorted(range(len(r["render"])), key=lambda k: r["render"][k])
                row[name] = {
                    "render_s": round(statistics.median(r["render"]), 2),
                    "render_cpu_s": round(statistics.median(r["cpu"]), 2),
                    "render_phases_s": r["phases"][middle[len(middle) // 2]],
                    "file_kib": r["size"][0] // 1024,
                }
                if r["open"]:
                    row[name]["open_s"] = round(statistics.median(r["open"]), 2)
                    row[name]["open_in_page_s"] = round(statistics.median(r["page"]), 2)
            if in_process:
                wall, cpu = _in_process(cluster, repeat)
                row["warm"]["in_process_s"] = round(wall, 2)
                row["warm"]["in_process_cpu_s"] = round(cpu, 2)
            if "before" in row:
                for name in ("cold", "warm"):
                    row[f"ratio_{name}"] = round(
                        row["before"]["render_s"] / row[name]["render_s"], 2
                    )
                    row[f"ratio_{name}_cpu"] = round(
                        row["before"]["render_cpu_s"] / row[name]["render_cpu_s"], 2
                    )
            row["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
            results["sizes"][str(pods)] = row
            print(f"{pods} pods: {json.dumps(row)}", file=sys.stderr, flush=True)
        if browser is not None:
            browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,10000", help="pods, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default=None, help="a git revision to compare with")
    parser.add_argument("--before-sizes", default="500,2000")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--no-open", action="store_true", help="do not open the pages")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"sizes must be among {sorted(SIZES)}")
    results = measure(sizes, args.repeat, args.before,
                      {int(s) for s in args.before_sizes.split(",") if s},
                      not args.no_in_process, not args.no_open)  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for pods, row in results["sizes"].items():
            for name in ("before", "cold", "warm"):
                if name in row:
                    r = row[name]
                    print(f"{pods:>6} pods {name:>6}: render {r['render_s']:.2f} s "
                          f"({r['render_cpu_s']:.2f} s CPU; phases {r['render_phases_s']})"
                          + (f", open {r['open_s']:.2f} s ({r['open_in_page_s']:.2f} s in page)"
                             if "open_s" in r else "")
                          + f", {r['file_kib']} KiB"
                          + (f", in process {r['in_process_s']:.2f} s "
                             f"({r['in_process_cpu_s']:.2f} s CPU)"
                             if "in_process_s" in r else ""))  # fmt: skip
            for name in ("cold", "warm"):
                if f"ratio_{name}" in row:
                    print(f"{pods:>6} pods before/{name}: render x{row[f'ratio_{name}']} wall, "
                          f"x{row[f'ratio_{name}_cpu']} CPU")  # fmt: skip
            print(f"{pods:>6} pods loadavg {' '.join(row['loadavg'])}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
