"""KF017 (an Admin Accept that opens cross-tenant paths) at 200 ClusterNetworkPolicies.

Why this module exists: KF017 compares the audit's namespace reachability with and without
each Admin Accept rule; issue 15 asked its cost bounded at 200 CNPs. This script times the
check alone (``audit._lint._tiers_cross.admin_accept_cross_tenant``) on a generated cluster
(``benchmarks/generate.py``) plus generated CNPs (``bench_nft_tiers.generate_cnps``), and prints
how many Admin Accept rules there are, how many reachability computations ran, and the findings.

    .venv/bin/python benchmarks/bench_audit_tiers.py --pods 500 --policies 500 --cnps 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_nft_tiers import generate_cnps
from benchmarks.generate import generate_cluster

from kubefence.api import AdminAction
from kubefence.audit import LintOptions

try:
    from kubefence.audit._lint import _tiers_cross as tiers_lint
except ImportError:  # before KF017 moved (to time the old code: PYTHONPATH=<old>/src)
    from kubefence.audit._lint import _tiers as tiers_lint  # type: ignore[no-redef]
from kubefence.audit._lint._context import LintContext
from kubefence.semantics import index_for
from kubefence.sources.objects import inventory_from_objects


def bench(pods: int, policies: int, cnps: int, repeat: int) -> dict[str, Any]:
    objects = generate_cluster(pods=pods, namespaces=max(1, pods // 10), policies=policies, seed=3)
    inventory = inventory_from_objects([*objects, *generate_cnps(cnps, seed=3)])
    context = LintContext(
        inventory=inventory,
        options=LintOptions(tenant_label="team"),
        index=index_for(inventory),
        namespaces=tuple(sorted({n.name for n in inventory.namespaces})),
    )
    accepts = sum(
        rule.action is AdminAction.ACCEPT
        for p in inventory.admin_policies
        if p.tier.value == "Admin"
        for rule in (*p.ingress, *p.egress)
    )
    calls = 0
    original = tiers_lint._cross

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    tiers_lint._cross = counted  # type: ignore[assignment]
    times = []
    findings: list[str] = []
    for _ in range(repeat):
        calls = 0
        started = time.perf_counter()
        findings = [f.message for f in tiers_lint.admin_accept_cross_tenant(context)]
        times.append(time.perf_counter() - started)
    tiers_lint._cross = original  # type: ignore[assignment]
    return {
        "pods": len(inventory.pods),
        "policies": len(inventory.policies),
        "cnps": len(inventory.admin_policies),
        "admin_accept_rules": accepts,
        "reachability_computations": calls,
        "kf017_s": round(statistics.median(times), 3),
        "findings": len(findings),
        "first_findings": findings[:3],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--policies", type=int, default=500)
    parser.add_argument("--cnps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(bench(args.pods, args.policies, args.cnps, args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
