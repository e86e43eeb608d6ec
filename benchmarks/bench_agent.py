"""Policy agent benchmarks (root): enforce and revoke latency, full sync, one change, memory.

Why this module exists: issue 14 sets performance targets for the agent; this script measures
each on this machine, against our API server over TLS with the agent's own RBAC (deploy/), and
prints medians as a table (and JSON with ``-o json``). Every namespace, process and file it makes
is removed, also on failure.

    sudo .venv/bin/python benchmarks/bench_agent.py             # everything
    sudo .venv/bin/python benchmarks/bench_agent.py --quick     # 2,000 pods / 1,000 policies

| measurement                                                            | target  |
|------------------------------------------------------------------------|---------|
| ``kubectl apply`` of a policy -> first dropped SYN, after kubectl returns | 100 ms |
| ``kubectl delete`` of it -> first answered SYN                          | 100 ms  |
| full sync, node of 110 pods in 10,000 pods / 5,000 policies             | 1 s     |
| one pod label change applied (event -> nft committed)                   | 20 ms   |
| agent memory (RSS) at that size                                         | 300 MB  |

The latencies are measured with real packets on the sandbox's quickstart pods (a prober opens a
connection every 3 ms from one pod to another); the scale figures on a cluster whose 110 pods
of this node run in the sandbox (one namespace each) and whose other pods and policies exist
only in the API server, as on a real cluster.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from benchmarks.generate import generate_cluster  # noqa: E402
from tests.netns.conftest import QUICKSTART_PODS, inventory_of  # noqa: E402
from tests.netns.test_agent_harness import (  # noqa: E402
    NAMESPACES,
    NODE,
    PODS,
    POLICIES,
    AgentProcess,
    Prober,
    admin,
    agent_kubeconfig,
    api_server,
    kubectl_apply,
    kubectl_delete,
    publish_pods,
)

from kubefence.client import Kube  # noqa: E402
from kubefence.dataplane.netns import Sandbox, down  # noqa: E402
from kubefence.sources.objects import inventory_from_objects  # noqa: E402

DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bench-deny, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  policyTypes: [Ingress]
"""
DENY_ARGS = ("networkpolicy", "-n", "test", "bench-deny")
# The same change as one admin-tier object: an Admin Deny of everything into namespace test.
ADMIN_DENY = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: bench-admin-deny}
spec:
  tier: Admin
  priority: 10
  subject:
    namespaces: {matchLabels: {kubernetes.io/metadata.name: test}}
  ingress:
  - name: deny-everything
    action: Deny
    from: [{namespaces: {}}]
"""
ADMIN_DENY_ARGS = ("clusternetworkpolicy", "bench-admin-deny")


@contextmanager
def sandbox_of(inventory_text: str | None, name: str, inventory: Any = None) -> Iterator[Sandbox]:
    sandbox = Sandbox.up(inventory if inventory is not None else inventory_of(inventory_text or ""),
                         name=name)  # fmt: skip
    try:
        yield sandbox
    finally:
        down(name)


def latencies(
    tmp: Path, changes: int, *, policy: str = DENY, delete: tuple[str, ...] = DENY_ARGS
) -> dict[str, Any]:
    """Apply and delete a policy ``changes`` times; first dropped / answered SYN after kubectl."""
    manifests = [d for d in yaml.safe_load_all(QUICKSTART_PODS) if d]
    enforce: list[float] = []
    revoke: list[float] = []
    with (
        api_server(tmp, "bench-lat") as cluster,
        sandbox_of(QUICKSTART_PODS, f"ba{int(time.time()) % 100000}") as sandbox,
    ):
        publish_pods(admin(cluster), sandbox, manifests)
        agent = AgentProcess(
            agent_kubeconfig(cluster, tmp / "lat.kubeconfig"),
            sandbox.state.node_netns,
            tmp / "lat.log",
        ).start()
        prober = Prober(sandbox.slot("default/busybox").netns,
                        str(sandbox.slot("test/nginx").ipv4), 80)  # fmt: skip
        try:
            agent.wait_ready()
            prober.start()
            time.sleep(0.3)
            for _ in range(changes):
                started = time.monotonic()
                returned = kubectl_apply(cluster, policy)
                denied = prober.first(False, after=started)
                assert denied is not None, agent.tail()
                enforce.append(denied - returned)
                time.sleep(0.2)
                started = time.monotonic()
                returned = kubectl_delete(cluster, *delete)
                allowed = prober.first(True, after=started)
                assert allowed is not None, agent.tail()
                revoke.append(allowed - returned)
                time.sleep(0.2)
        finally:
            prober.stop()
            agent.stop()
    return {
        "enforce_ms": summary(enforce),
        "revoke_ms": summary(revoke),
    }


def summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "median": round(statistics.median(ms), 1),
        "p90": round(ms[int(len(ms) * 0.9) - 1 if len(ms) > 1 else 0], 1),
        "min": round(ms[0], 1),
        "max": round(ms[-1], 1),
        "n": len(ms),
    }


def scale_objects(pods: int, policies: int, local: int) -> list[dict[str, Any]]:
    """The generator's cluster with every pod bare, addresses in 198.18.0.0/15 by node (node 0
    is this agent's: ``local`` pods), ipBlocks moved into 198.19.0.0/16."""
    namespaces = max(1, pods // 10)
    objects = generate_cluster(pods=pods, namespaces=namespaces, policies=policies, seed=14,
                               bare_pod_fraction=1.0)  # fmt: skip
    text = json.dumps(objects)
    text = re.sub(r'"10\.(\d+)\.0\.0/16"', lambda m: f'"198.19.{m.group(1)}.0/24"', text)
    text = re.sub(
        r'"10\.(\d+)\.(\d+)\.0/24"',
        lambda m: f'"198.19.{m.group(1)}.{int(m.group(2)) & 240}/28"',
        text,
    )
    objects = json.loads(text)
    index = 0
    remote_nodes = max(1, (pods - local + 109) // 110)
    for obj in objects:
        if obj["kind"] != "Pod":
            continue
        if index < local:
            node, ip = NODE, f"198.18.0.{index + 2}"
        else:
            number = (index - local) % remote_nodes + 1
            host = (index - local) // remote_nodes + 2
            node, ip = f"node-{number + 1}", f"198.18.{number}.{host}"
        obj["spec"]["nodeName"] = node
        obj["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        index += 1
    return objects


def post_all(kube: Kube, objects: list[dict[str, Any]]) -> float:
    started = time.monotonic()
    for obj in objects:
        if obj["kind"] == "Namespace":
            kube.create(NAMESPACES.path(), obj)

    def post(obj: dict[str, Any]) -> None:
        namespace = obj["metadata"]["namespace"]
        if obj["kind"] == "Pod":
            created = kube.create(PODS.path(namespace=namespace), obj)
            if (created.get("status") or {}).get("podIP") != obj["status"]["podIP"]:
                kube.patch(
                    PODS.path(namespace=namespace, name=obj["metadata"]["name"],
                              subresource="status"),
                    {"status": obj["status"]},
                )  # fmt: skip
        else:
            kube.create(POLICIES.path(namespace=namespace), obj)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, [o for o in objects if o["kind"] != "Namespace"]))
    return time.monotonic() - started


def log_records(agent: AgentProcess) -> list[dict[str, Any]]:
    records = []
    for line in agent.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def wall(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()


def next_reconcile(agent: AgentProcess, after: float, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in log_records(agent):
            if record.get("msg", "").startswith("ruleset ") and wall(record) >= after:
                return record
        time.sleep(0.01)
    raise AssertionError(f"no reconcile after {after}:\n{agent.tail()}")


def wait_record(agent: AgentProcess, message: str, timeout: float = 10.0) -> dict[str, Any]:
    """The first log record with ``msg`` equal to ``message`` (/readyz can answer first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in log_records(agent):
            if record.get("msg") == message:
                return record
        time.sleep(0.01)
    raise AssertionError(f"no {message!r} in the log:\n{agent.tail()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process used so far (steadier than wall time on a busy host)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (
        round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        round(int(fields["VmHWM"].split()[0]) / 1024, 1),
    )


def scale(tmp: Path, *, pods: int, policies: int, changes: int, syncs: int = 3) -> dict[str, Any]:
    local = 110
    objects = scale_objects(pods, policies, local)
    local_objects = [o for o in objects if o["kind"] == "Pod"
                     and o["spec"]["nodeName"] == NODE]  # fmt: skip
    namespaces = {o["metadata"]["namespace"] for o in local_objects}
    local_inventory = inventory_from_objects(
        [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] in namespaces]
        + local_objects
    )
    result: dict[str, Any] = {"pods": pods, "policies": policies, "local_pods": local}
    with api_server(tmp, "bench-scale") as cluster:
        kube = admin(cluster)
        result["post_seconds"] = round(post_all(kube, objects), 1)
        name = f"bs{int(time.time()) % 100000}"
        up_started = time.monotonic()
        with sandbox_of(None, name, inventory=local_inventory) as sandbox:
            result["sandbox_up_seconds"] = round(time.monotonic() - up_started, 1)
            moved = [k for k in sandbox.state.pods
                     if str(sandbox.slot(k).ipv4) !=
                     str(local_inventory.pod_by_key[k].ips[0])]  # fmt: skip
            assert not moved, f"the sandbox moved {moved[:3]}"
            kubeconfig = agent_kubeconfig(cluster, tmp / "scale.kubeconfig")
            agent = AgentProcess(kubeconfig, sandbox.state.node_netns, tmp / "scale.log").start()
            try:
                result["ready_seconds_from_exec"] = round(agent.wait_ready(timeout=120), 2)
                first = wait_record(agent, "first sync done")
                full = next(r for r in log_records(agent) if r["msg"].startswith("ruleset "))
                result["full_sync_seconds"] = first["seconds"]
                result["full_sync_parts"] = {k: first.get(k) for k in
                                             ("list_seconds", "pods_seconds",
                                              "install_seconds", "cpu_seconds",
                                              "list_cpu_seconds", "pods_cpu_seconds",
                                              "install_cpu_seconds")}  # fmt: skip
                result["first_install"] = {k: full.get(k) for k in
                                           ("seconds", "pods", "local_pods", "policies",
                                            "chains", "elements", "plan_seconds",
                                            "nft_seconds")}  # fmt: skip
                assert agent.process is not None
                result["rss_mb_after_sync"], result["rss_peak_mb"] = rss_mb(agent.process.pid)
                # Start-up (interpreter, imports) included: an upper bound of the sync's CPU.
                result["cpu_seconds_to_ready"] = round(cpu_seconds(agent.process.pid), 2)
                cpu_before = cpu_seconds(agent.process.pid)
                label: list[float] = []
                label_e2e: list[float] = []
                label_parts: dict[str, list[float]] = {"plan_seconds": [], "nft_seconds": []}
                pod = local_objects[0]
                path = PODS.path(
                    namespace=pod["metadata"]["namespace"], name=pod["metadata"]["name"]
                )
                for i in range(changes):
                    before = time.time()
                    kube.patch(path, {"metadata": {"labels": {"bench": str(i)}}})
                    returned = time.time()
                    record = next_reconcile(agent, before)
                    label.append(float(record["seconds"]))
                    label_e2e.append(wall(record) - returned)
                    for part, values in label_parts.items():
                        if part in record:
                            values.append(float(record[part]))
                result["label_change_ms"] = summary(label)
                result["label_change_parts_ms"] = {
                    part: summary(values) for part, values in label_parts.items() if values
                }
                result["label_change_cpu_ms_mean"] = round(
                    (cpu_seconds(agent.process.pid) - cpu_before) * 1000 / changes, 1
                )
                result["label_change_after_patch_ms"] = summary(label_e2e)
                applied: list[float] = []
                namespace = pod["metadata"]["namespace"]
                for i in range(changes):
                    body = yaml.safe_load(
                        DENY.replace("namespace: test", f"namespace: {namespace}")
                    )
                    body["metadata"]["name"] = f"bench-{i}"
                    body["spec"]["podSelector"] = {"matchLabels": {"bench": str(changes - 1)}}
                    before = time.time()
                    kube.create(POLICIES.path(namespace=namespace), body)
                    record = next_reconcile(agent, before)
                    applied.append(float(record["seconds"]))
                result["policy_apply_ms"] = summary(applied)
                result["rss_mb_end"], result["rss_peak_mb_end"] = rss_mb(agent.process.pid)
            finally:
                agent.stop()
            result["full_syncs"] = more_syncs(result, kubeconfig, sandbox, tmp, syncs)
    return result


def more_syncs(
    result: dict[str, Any], kubeconfig: Path, sandbox: Sandbox, tmp: Path, syncs: int
) -> dict[str, Any]:
    """Restart the agent ``syncs - 1`` more times (its table kept, as after an upgrade) and
    give the median of every full-sync figure over all the syncs, and each sync's seconds."""
    runs = [{"full_sync_seconds": result["full_sync_seconds"], **result["full_sync_parts"]}]
    for index in range(1, syncs):
        agent = AgentProcess(
            kubeconfig, sandbox.state.node_netns, tmp / f"scale-{index}.log"
        ).start()
        try:
            agent.wait_ready(timeout=120)
            first = wait_record(agent, "first sync done")
            runs.append({"full_sync_seconds": first["seconds"],
                         **{k: first.get(k) for k in result["full_sync_parts"]}})  # fmt: skip
        finally:
            agent.stop()
    for run in runs:  # the sync's own CPU (``cpu_seconds`` counts from the interpreter's start)
        run["sync_cpu_seconds"] = sum(
            float(run[k]) for k in ("list_cpu_seconds", "pods_cpu_seconds", "install_cpu_seconds")
        )
    medians = {key: round(statistics.median(float(r[key]) for r in runs), 3) for key in runs[0]}
    return {"n": len(runs), "median": medians,
            "seconds": [r["full_sync_seconds"] for r in runs]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 pods / 1,000 policies")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--latency-only", action="store_true", help="only the apply/revoke latencies"
    )
    parser.add_argument("--scale-only", action="store_true", help="only the scale figures")
    parser.add_argument("--syncs", type=int, default=3, help="full syncs (agent restarts)")
    args = parser.parse_args()
    pods, policies = (2_000, 1_000) if args.quick else (10_000, 5_000)
    with tempfile.TemporaryDirectory(prefix="kf-bench-agent-") as directory:
        tmp = Path(directory)
        if args.scale_only:
            scaled = scale(
                tmp, pods=pods, policies=policies, changes=args.changes, syncs=args.syncs
            )
            print(json.dumps({"scale": scaled}, indent=2))
            return 0
        results = {
            "latency": latencies(tmp, args.changes),
            "latency_admin_tier": latencies(
                tmp, args.changes, policy=ADMIN_DENY, delete=ADMIN_DENY_ARGS
            ),
        }
        print(json.dumps(results), file=sys.stderr, flush=True)
        if args.latency_only:
            print(json.dumps(results, indent=2))
            return 0
        results["scale"] = scale(
            tmp, pods=pods, policies=policies, changes=args.changes, syncs=args.syncs
        )
    if args.output == "json":
        print(json.dumps(results, indent=2))
        return 0
    lat, big, tier = results["latency"], results["scale"], results["latency_admin_tier"]
    rows = [
        ("apply -> first dropped SYN after kubectl returns (median ms)",
         lat["enforce_ms"]["median"], "<= 100"),
        ("delete -> first answered SYN after kubectl returns (median ms)",
         lat["revoke_ms"]["median"], "<= 100"),
        ("apply a ClusterNetworkPolicy -> first dropped SYN (median ms)",
         tier["enforce_ms"]["median"], "<= 100"),
        ("delete it -> first answered SYN (median ms)", tier["revoke_ms"]["median"], "<= 100"),
        (f"full sync, {big['local_pods']} local pods, {big['pods']:,} pods / "
         f"{big['policies']:,} policies (median s)", big["full_syncs"]["median"][
             "full_sync_seconds"], "<= 1"),
        ("full sync, agent CPU in it (median s)", big["full_syncs"]["median"]["sync_cpu_seconds"],
         "-"),
        ("one pod label change, event -> nft committed (median ms)",
         big["label_change_ms"]["median"], "<= 20"),
        ("one policy created, event -> nft committed (median ms)",
         big["policy_apply_ms"]["median"], "-"),
        ("agent CPU from exec to ready, imports included (s)", big["cpu_seconds_to_ready"], "-"),
        ("one pod label change, agent CPU (mean ms)", big["label_change_cpu_ms_mean"], "-"),
        ("agent RSS after the changes (MB)", big["rss_mb_end"], "<= 300"),
    ]  # fmt: skip
    for label, value, target in rows:
        print(f"{label:<78} {value!s:>10}  {target}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
