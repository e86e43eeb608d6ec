"""Admin tiers in the data plane: planning cost with and without ClusterNetworkPolicies, and one
ClusterNetworkPolicy change applied to a running sandbox (root).

Why this module exists: issue 15 asks that tiers do not make the table's per-packet cost grow
with the number of policies and that one CNP change is enforced in the sandbox within 100 ms.
This script measures, on a generated cluster (``benchmarks/generate.py``) plus generated CNPs:

* plan + render of the whole ruleset without and with the CNPs (medians), the ruleset's size,
  the largest number of rule steps one tier class has (what a packet walked, one set lookup
  each, before the class verdict maps) and of lookups a tier class chain now holds (one);
* with root: ``nft -f`` of the tiered table in a throwaway namespace, and ``Sandbox.apply`` of a
  one-CNP change (the smaller update transaction, see ``_update``), alternating two versions.

    .venv/bin/python benchmarks/bench_nft_tiers.py --pods 2000 --policies 1000 --cnps 200
    sudo .venv/bin/python benchmarks/bench_nft_tiers.py --sandbox   # also the root parts
    sudo .venv/bin/python benchmarks/bench_nft_tiers.py --no-plan --sandbox --cli  # + the CLI
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import ENVS, TEAMS, generate_cluster

from kubefence.api import Inventory
from kubefence.dataplane.netns import Sandbox, down
from kubefence.dataplane.nft import MemoisedRenderer, plan_ruleset, render_plan, ruleset_update
from kubefence.sources.objects import inventory_from_objects

_APPS = ("web", "api", "db", "cache", "worker", "queue", "auth", "metrics")


def _selector(rng: random.Random, key: str, pool: Sequence[str]) -> dict[str, Any]:
    return {"matchLabels": {key: rng.choice(pool)}}


def _peer(rng: random.Random, *, egress: bool) -> dict[str, Any]:
    choice = rng.randrange(4 if egress else 3)
    if choice == 0:
        return {"namespaces": _selector(rng, "team", TEAMS)}
    if choice == 1:
        return {
            "pods": {
                "namespaceSelector": _selector(rng, "env", ENVS),
                "podSelector": {"matchLabels": {"app": rng.choice(_APPS)}},
            }
        }
    if choice == 2:
        return {"namespaces": {}}
    return {"networks": [f"198.19.{rng.randrange(256)}.0/24"]}


def _rule(rng: random.Random, index: int, *, egress: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": f"r{index}",
        "action": rng.choice(("Accept", "Deny", "Pass")),
        ("to" if egress else "from"): [_peer(rng, egress=egress) for _ in range(rng.randint(1, 3))],
    }
    if rng.random() < 0.7:
        port = rng.choice((53, 80, 443, 5432, 8080, 9090))
        rule["protocols"] = [{rng.choice(("tcp", "udp")): {"destinationPort": {"number": port}}}]
    return rule


def generate_cnps(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` ClusterNetworkPolicies of both tiers, 1-5 rules per direction, subjects by the
    generated namespaces' ``team``/``env`` labels; deterministic per seed."""
    rng = random.Random(seed)
    objects = []
    for i in range(count):
        key, pool = rng.choice((("team", TEAMS), ("env", ENVS)))
        spec: dict[str, Any] = {
            "tier": "Admin" if rng.random() < 0.6 else "Baseline",
            "priority": rng.randrange(1000),
            "subject": {"namespaces": _selector(rng, key, pool)},
            "ingress": [_rule(rng, j, egress=False) for j in range(rng.randint(1, 5))],
            "egress": [_rule(rng, j, egress=True) for j in range(rng.randint(1, 5))],
        }
        objects.append(
            {
                "apiVersion": "policy.networking.k8s.io/v1alpha2",
                "kind": "ClusterNetworkPolicy",
                "metadata": {"name": f"cnp-{i:04d}"},
                "spec": spec,
            }
        )
    return objects


def _addresses(inventory: Inventory) -> dict[str, tuple[Any, ...]]:
    """Every pod an address of 198.18.0.0/15 (declared or not), as a sandbox would give."""
    found = {}
    for number, pod in enumerate(inventory.pods, start=1):
        found[pod.key] = (ipaddress_of(number),)
    return found


def ipaddress_of(number: int) -> Any:
    import ipaddress

    return ipaddress.IPv4Address("198.18.0.0") + number


def _median_plan(
    inventory: Inventory, addresses: dict[str, tuple[Any, ...]], repeat: int
) -> tuple[float, str]:
    times = []
    text = ""
    for _ in range(repeat):
        started = time.perf_counter()
        text = render_plan(plan_ruleset(inventory, addresses=addresses))
        times.append(time.perf_counter() - started)
    return statistics.median(times), text


def _lookups_per_tier_chain(text: str) -> list[int]:
    """Per tier class chain of the rendered table, how many set or map lookups it holds."""
    found = []
    for chain in text.split("\tchain ")[1:]:
        name = chain.split(" ", 1)[0]
        if name[:3] in ("ad_", "bl_") and "_c" in name:
            found.append(chain.split("\n\t}", 1)[0].count(" @"))
    return found


def bench_plan(pods: int, policies: int, cnps: int, repeat: int) -> dict[str, Any]:
    objects = generate_cluster(pods=pods, namespaces=max(1, pods // 10), policies=policies, seed=1)
    tiered = inventory_from_objects([*objects, *generate_cnps(cnps, seed=1)])
    plain = dataclasses.replace(tiered, admin_policies=())
    addresses = _addresses(plain)
    without, plain_text = _median_plan(plain, addresses, repeat)
    with_tiers, text = _median_plan(tiered, addresses, repeat)
    plan = plan_ruleset(tiered, addresses=addresses)
    assert plan.tiers is not None
    steps = [len([s for s in c.steps if s.elements]) for g in plan.tiers.groups for c in g.classes]
    lookups = _lookups_per_tier_chain(text)
    result: dict[str, Any] = {
        "pods": len(plain.pods),
        "policies": len(plain.policies),
        "cnps": len(tiered.admin_policies),
        "plan_render_s": round(without, 3),
        "plan_render_with_cnps_s": round(with_tiers, 3),
        "ratio": round(with_tiers / without, 2),
        "ruleset_bytes": len(plain_text),
        "ruleset_with_cnps_bytes": len(text),
        "tier_classes": len(steps),
        # what a packet walks in its class chain: before the verdict maps, one set lookup
        # per step (up to ``max_steps_per_chain``); now the lookups the chains hold
        "max_steps_per_chain": max(steps, default=0),
        "median_steps_per_chain": statistics.median(steps) if steps else 0,
        "max_lookups_per_tier_chain": max(lookups, default=0),
        "tier_map_elements": sum(
            len(getattr(c, "verdicts", ())) for g in plan.tiers.groups for c in g.classes
        ),
        "tier_step_elements": sum(len(s.elements) for g in plan.tiers.groups for s in g.sets),
    }
    if os.geteuid() == 0:
        name = f"kfbench-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            started = time.perf_counter()
            subprocess.run(
                ["ip", "netns", "exec", name, "nft", "-f", "-"], input=text, text=True, check=True
            )
            result["nft_load_with_cnps_s"] = round(time.perf_counter() - started, 3)
        finally:
            subprocess.run(["ip", "netns", "delete", name], check=False)
    return result


def _effective_flip(
    objects: list[dict[str, Any]],
    tiers: list[dict[str, Any]],
    base: Inventory,
    *,
    first: int | None = None,
) -> tuple[Inventory, str]:
    """Flip CNP ``first``'s first ingress rule, or (None) the first CNP's whose flip changes
    the kernel's table."""
    renderer = MemoisedRenderer()
    addresses = _addresses(base)
    before = renderer.plan(base, addresses=addresses)
    for index, cnp in enumerate(tiers):
        if first is not None and index != first:
            continue
        changed_tiers = json.loads(json.dumps(tiers))
        first = changed_tiers[index]["spec"]["ingress"][0]
        first["action"] = "Deny" if first["action"] != "Deny" else "Accept"
        changed = inventory_from_objects([*objects, *changed_tiers])
        changed = dataclasses.replace(base, admin_policies=changed.admin_policies)
        if first is not None or ruleset_update(before, renderer.plan(changed, addresses=addresses)):
            return changed, f"{cnp['metadata']['name']} ingress[0] action flipped"
    raise SystemExit("no CNP flip changes the table")


def bench_cnp_change(
    pods: int, policies: int, cnps: int, repeat: int, *, first: int | None = None
) -> dict[str, Any]:
    """``Sandbox.apply`` of a one-CNP change (one rule's action flipped), alternating. The
    rule is the first ingress rule, in CNP order, whose flip changes the kernel's table
    (flipping a rule no pod's class reaches changes comments only: "unchanged", no nft run)."""
    objects = generate_cluster(pods=pods, namespaces=max(1, pods // 10), policies=policies, seed=2)
    tiers = generate_cnps(cnps, seed=2)
    base = inventory_from_objects([*objects, *tiers])
    changed, which = _effective_flip(objects, tiers, base, first=first)
    name = f"bt{secrets.token_hex(3)}"
    samples = []
    try:
        sandbox = Sandbox.up(base, name=name)
        for number in range(repeat * 2):
            target = changed if number % 2 == 0 else base
            wanted = dataclasses.replace(
                sandbox.inventory,
                admin_policies=target.admin_policies,
            )
            started = time.perf_counter()
            report = sandbox.apply(wanted)
            samples.append(time.perf_counter() - started)
            assert report.ruleset == "update", report.ruleset
    finally:
        down(name)
    return {
        "pods": len(base.pods),
        "policies": len(base.policies),
        "cnps": len(base.admin_policies),
        "changed": which,
        "apply_one_cnp_change_s": round(statistics.median(samples), 3),
        "apply_min_s": round(min(samples), 3),
    }


def bench_cli_apply(
    pods: int, policies: int, cnps: int, repeat: int, *, first: int | None = None
) -> dict[str, Any]:
    """``kubefence sandbox apply -f`` (a new process each time: parse, attach, plan from
    scratch, update) of the same one-CNP change, alternating, wall clock per command."""
    import tempfile

    objects = generate_cluster(pods=pods, namespaces=max(1, pods // 10), policies=policies, seed=2)
    tiers = generate_cnps(cnps, seed=2)
    base = inventory_from_objects([*objects, *tiers])
    _, which = _effective_flip(objects, tiers, base, first=first)
    index = int(which.split(" ")[0].split("-")[1])
    changed_tiers = json.loads(json.dumps(tiers))
    first = changed_tiers[index]["spec"]["ingress"][0]
    first["action"] = "Deny" if first["action"] != "Deny" else "Accept"
    name = f"bc{secrets.token_hex(3)}"
    command = [sys.executable, "-m", "kubefence.cli.main", "sandbox"]
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for label, docs in (("base", tiers), ("changed", changed_tiers)):
            path = Path(folder) / f"{label}.json"
            path.write_text(
                json.dumps({"apiVersion": "v1", "kind": "List", "items": [*objects, *docs]})
            )
            paths.append(str(path))
        try:
            subprocess.run(
                [*command, "up", "--name", name, "-f", paths[0]], check=True, capture_output=True
            )
            for number in range(repeat * 2):
                started = time.perf_counter()
                subprocess.run(
                    [*command, "apply", "--name", name, "-f", paths[1 - number % 2]],
                    check=True,
                    capture_output=True,
                )
                samples.append(time.perf_counter() - started)
        finally:
            down(name)
    return {
        "cli_apply_one_cnp_change_s": round(statistics.median(samples), 3),
        "cli_apply_min_s": round(min(samples), 3),
        "changed": which,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--cnps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sandbox", action="store_true", help="also Sandbox.apply (root)")
    parser.add_argument("--sandbox-pods", type=int, default=100)
    parser.add_argument("--cli", action="store_true", help="also `kubefence sandbox apply` (root)")
    parser.add_argument("--flip", type=int, help="flip this CNP's first ingress rule")
    parser.add_argument("--no-plan", action="store_true", help="skip the planning part")
    args = parser.parse_args(argv)
    if not args.no_plan:
        print(json.dumps(bench_plan(args.pods, args.policies, args.cnps, args.repeat)))
    if args.sandbox:
        found = bench_cnp_change(
            args.sandbox_pods, args.policies, args.cnps, args.repeat, first=args.flip
        )
        print(json.dumps(found))
    if args.cli:
        found = bench_cli_apply(
            args.sandbox_pods, args.policies, args.cnps, args.repeat, first=args.flip
        )
        print(json.dumps(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
