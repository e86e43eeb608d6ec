"""The policy agent's store and planner in one process: where a full sync and a change go.

Why this module exists: ``bench_agent.py`` measures the agent as a user sees it (root, an API
server over TLS, nft), where the machine's load and the API server blur the agent's own share.
This script feeds ``bench_agent.scale_objects``'s cluster straight into the agent's ``Store``
and its ``Enforcer``'s planner (no API server, no nft, no root) and prints the CPU time of each
step of a full sync and the medians of one local pod's label changes. It also runs against an
older checkout (``PYTHONPATH=<checkout>/src``) for before/after figures.

    .venv/bin/python benchmarks/bench_agent_core.py                 # 10,000 pods / 5,000 policies
    .venv/bin/python benchmarks/bench_agent_core.py --pods 2000 --policies 1000
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_agent import scale_objects  # noqa: E402
from tests.netns.test_agent_harness import NODE  # noqa: E402

from kubefence.agent._enforce import Enforcer  # noqa: E402
from kubefence.agent._store import Store  # noqa: E402
from kubefence.client._informer import object_key  # noqa: E402
from kubefence.dataplane.nft import render_plan, ruleset_update  # noqa: E402


def _plan(enforcer: Enforcer, store: Store) -> tuple[Any, float, float]:
    started = time.process_time()
    snapshot = store.snapshot()
    snapped = time.process_time()
    expect = getattr(enforcer.renderer.memo, "expect", None)  # absent before the hints
    if expect is not None:
        expect(getattr(snapshot, "changes", None))
    plan = enforcer.renderer.plan(
        snapshot.inventory, addresses=snapshot.addresses, local=snapshot.local
    )
    return plan, snapped - started, time.process_time() - snapped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--policies", type=int, default=5_000)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    objects = scale_objects(args.pods, args.policies, 110)
    texts = {
        kind: json.dumps({"items": [o for o in objects if o["kind"] == kind]})
        for kind in ("Namespace", "NetworkPolicy", "Pod")
    }
    full: dict[str, float] = {}
    started = time.process_time()
    listed = {kind: json.loads(text)["items"] for kind, text in texts.items()}
    full["json_s"] = time.process_time() - started
    store = Store(NODE, unsupported=())
    started = time.process_time()
    for kind in ("Namespace", "NetworkPolicy"):
        for obj in listed[kind]:
            store.put(kind, object_key(obj), obj)
    full["namespaces_policies_s"] = time.process_time() - started
    started = time.process_time()
    store.put_pods([(object_key(obj), obj) for obj in listed["Pod"]])
    full["pods_s"] = time.process_time() - started
    enforcer = Enforcer(netns=None)
    plan, full["snapshot_s"], full["plan_s"] = _plan(enforcer, store)
    started = time.process_time()
    render_plan(plan)
    full["render_s"] = time.process_time() - started
    full["total_s"] = sum(full.values())
    pod = next(o for o in listed["Pod"] if o["spec"].get("nodeName") == NODE)
    steps: dict[str, list[float]] = {"put_ms": [], "snapshot_ms": [], "plan_ms": [], "diff_ms": []}
    for i in range(args.changes):
        changed = copy.deepcopy(pod)
        changed["metadata"]["labels"] = dict(changed["metadata"].get("labels") or {}, bench=str(i))
        started = time.process_time()
        store.put("Pod", object_key(changed), changed)
        steps["put_ms"].append(time.process_time() - started)
        new, snapshot, planned = _plan(enforcer, store)
        steps["snapshot_ms"].append(snapshot)
        steps["plan_ms"].append(planned)
        started = time.process_time()
        ruleset_update(plan, new)
        steps["diff_ms"].append(time.process_time() - started)
        plan = new
    change = {k: round(statistics.median(v) * 1000, 2) for k, v in steps.items()}
    change["total_ms"] = round(
        statistics.median(sum(values) for values in zip(*steps.values(), strict=True)) * 1000, 2
    )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(
        json.dumps(
            {
                "pods": args.pods,
                "policies": args.policies,
                "full_sync_cpu": {k: round(v, 3) for k, v in full.items()},
                "label_change_cpu_median": change,
                "loadavg": load,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
