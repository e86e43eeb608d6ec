"""Flow logs and per-policy counters from the policy agents of a 2-node sandbox cluster.

``kubefence flows --cluster`` runs as a separate process, as a user would, reading every node's
NFLOG; connections are made from inside the pods' namespaces (found in the node records).
Shop's web pod (node-0) is isolated for ingress by ``deny-all`` (no rules) and ``allow-client``
(port 80 from app=client). ``other`` (node-0, same node) and ``stranger`` (node-1) are denied,
``client`` (node-1) is allowed: the cross-node connections cross two tables and must still give
one line each. Each agent serves ``/metrics`` on its node's address inside the node namespace;
the counters that move are exactly those docs/agent.md ("Metrics") says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.control.conftest import Cluster, state_restored
from tests.netns.test_flows_netns import assert_flood_accounted, flow_records, flows_running

from kubefence.control.cluster import cluster_down, cluster_up
from kubefence.control.nodes import AGENT_METRICS_PORT
from kubefence.dataplane.netns import PodSlot, cluster_pod_slots, entered, node_from_name

pytestmark = pytest.mark.netns

PLACES = {"web": "node-0", "other": "node-0", "client": "node-1", "stranger": "node-1"}
POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-client, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}]
"""


def _manifests() -> str:
    documents = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}]
    for name, node in PLACES.items():
        container: dict[str, object] = {
            "name": "main",
            "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "command": ["/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", "80"],
            "ports": [{"containerPort": 80}],
        }
        documents.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [container]},
        })  # fmt: skip
    return "\n---\n".join(json.dumps(d) for d in documents)


@dataclass(frozen=True, slots=True)
class Bench:
    cluster: Cluster
    slots: dict[str, PodSlot]

    def tcp(self, source: str, destination: str, port: int = 80) -> bool:
        with entered(self.slots[f"shop/{source}"].netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(0.5)  # one SYN: the first retransmission is after 1 s
            try:
                sock.connect((str(self.slots[f"shop/{destination}"].ipv4), port))
            except OSError:
                return False
            return True

    def metrics(self, node: str) -> dict[tuple[str, ...], float]:
        """The node agent's ``kubefence_policy_connections_total`` series."""
        plan = node_from_name(self.cluster.info.name, node)
        url = f"http://{plan.address_v4}:{AGENT_METRICS_PORT}/metrics"
        with entered(plan.netns):
            sock = socket.create_connection((str(plan.address_v4), AGENT_METRICS_PORT), 5)
        sock.close()  # the port answers inside the node's namespace
        with entered(plan.netns):
            text = urllib.request.urlopen(url, timeout=10).read().decode()
        found = {}
        for line in text.splitlines():
            match = re.fullmatch(r"kubefence_policy_connections_total\{(.*)\} (\S+)", line)
            if match:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
                key = tuple(
                    labels[k] for k in ("tier", "namespace", "policy", "direction", "verdict")
                )
                found[key] = float(match.group(2))
        return found


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    pytest.importorskip("kubefence.agent.__main__", reason="enforcement needs kubefence.agent")
    tmp = tmp_path_factory.mktemp("flows")
    name = f"f{os.getpid() % 100000}"
    with state_restored():
        os.environ["KUBEFENCE_STATE"] = str(tmp)
        try:
            info = cluster_up(name, nodes=2, timeout=60)
            cluster = Cluster(info, info.directory / "kubeconfig", tmp / "kubectl-cache")
            cluster.kubectl("apply", "-f", "-", input=_manifests())
            deadline = time.monotonic() + 30
            while True:
                pods = json.loads(cluster.kubectl("get", "pods", "-n", "shop", "-o", "json")
                                  .stdout)["items"]  # fmt: skip
                if len(pods) == len(PLACES) and all(
                    p["status"].get("phase") == "Running" for p in pods
                ):
                    break
                assert time.monotonic() < deadline, [p["status"].get("phase") for p in pods]
                time.sleep(0.2)
            cluster.kubectl("apply", "-f", "-", input=POLICIES)
            bench = Bench(cluster, cluster_pod_slots(name, info.directory))
            deadline = time.monotonic() + 10
            while bench.tcp("other", "web"):  # until the agents enforce the policies
                assert time.monotonic() < deadline
                time.sleep(0.2)
            time.sleep(1.5)  # let the reader's memory of that probe's connection lapse
            yield bench
        finally:
            cluster_down(name)
            shutil.rmtree(tmp, ignore_errors=True)


def _flows(
    bench: Bench, *extra: str, duration: float
) -> AbstractContextManager[subprocess.Popen[str]]:
    return flows_running("--cluster", bench.cluster.info.name, *extra, duration=duration)


def _moved(
    before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float]
) -> dict[tuple[str, ...], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_each_connection_one_line_with_explanation_and_exactly_its_counters_move(
    bench: Bench,
) -> None:
    before = {node: bench.metrics(node) for node in ("node-0", "node-1")}
    with _flows(bench, duration=3.0) as process:
        assert not bench.tcp("other", "web")  # same node
        assert not bench.tcp("stranger", "web")  # across nodes: node-1 lets it out
        assert bench.tcp("client", "web")  # across nodes, both tables log it
    records = [r for r in flow_records(process) if "verdict" in r]
    lines = {(r["source"], r["verdict"]): r for r in records}
    assert len(records) == 3, records
    assert set(lines) == {
        ("shop/other", "denied"),
        ("shop/stranger", "denied"),
        ("shop/client", "allowed"),
    }
    for record in records:
        assert record["destination"] == "shop/web"
        assert (record["port"], record["protocol"]) == (80, "TCP")
        assert record["node"] == "node-0"  # the last table on every path
        assert record["predicted"] == record["verdict"]
    for source in ("shop/other", "shop/stranger"):
        explanation = str(lines[(source, "denied")]["explanation"])
        assert explanation.startswith("ingress at shop/web: isolated by "), explanation
        assert explanation.endswith(", no rule allows it"), explanation
        assert "shop/deny-all" in explanation
        assert "shop/allow-client" in explanation
    assert lines[("shop/client", "allowed")]["explanation"] == (
        "ingress at shop/web: allowed by shop/allow-client rule 0"
    )
    time.sleep(1.1)  # the agents read the kernel's counters at most once a second
    moved = {node: _moved(before[node], bench.metrics(node)) for node in before}
    assert moved["node-1"] == {}, moved  # nothing isolates egress
    assert moved["node-0"] == {
        ("NetworkPolicy", "shop", "deny-all", "ingress", "denied"): 2.0,
        ("NetworkPolicy", "shop", "allow-client", "ingress", "denied"): 2.0,
        ("NetworkPolicy", "shop", "allow-client", "ingress", "allowed"): 1.0,
    }, moved


def test_filters_by_verdict_and_namespace(bench: Bench) -> None:
    with _flows(bench, "--verdict", "denied", duration=2.0) as process:
        bench.tcp("other", "web")
        bench.tcp("client", "web")
    assert [r["source"] for r in flow_records(process) if "verdict" in r] == ["shop/other"]
    with _flows(bench, "-n", "elsewhere", duration=2.0) as process:
        bench.tcp("other", "web")
    assert [r for r in flow_records(process) if "verdict" in r] == []


def test_flood_stays_under_the_rate_limit_and_reports_its_drops(bench: Bench) -> None:
    """10,000 new (denied) UDP connections between two pods of node-0: at most burst + rate x
    time are logged (200 + 200/s, what ``cluster up`` gives its agents), the rest is counted by
    nft and reported; together they are all 10,000."""
    flood = 10_000
    with entered(bench.slots["shop/other"].netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = str(bench.slots["shop/web"].ipv4)
    with _flows(bench, duration=3.0) as process, sock:
        started = time.monotonic()
        for port in range(20_000, 20_000 + flood):
            sock.sendto(b"x", (target, port))
        elapsed = time.monotonic() - started
    records = flow_records(process)
    assert_flood_accounted(records, flood=flood, elapsed=elapsed, burst=200, rate=200)


ADMIT_SHOP = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: admit-shop}
spec:
  tier: Admin
  priority: 5
  subject:
    namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}
  ingress:
  - name: from-shop
    action: Accept
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}]
"""


def test_an_admin_accept_is_counted_for_its_tier_policy_and_named_in_the_line(
    bench: Bench,
) -> None:
    """An Admin Accept from shop opens other -> web ahead of NetworkPolicy: the line names the
    tier policy, its counter moves and no NetworkPolicy counter does (the Accept returns
    before NetworkPolicy is asked)."""
    bench.cluster.kubectl("apply", "-f", "-", input=ADMIT_SHOP)
    try:
        deadline = time.monotonic() + 10
        while not bench.tcp("other", "web"):
            assert time.monotonic() < deadline, "the Admin Accept was not enforced"
            time.sleep(0.2)
        time.sleep(1.5)  # the reader's memory of the probes lapses, the counters are read anew
        before = bench.metrics("node-0")
        with _flows(bench, duration=2.0) as process:
            assert bench.tcp("other", "web")
        records = [r for r in flow_records(process) if "verdict" in r]
        assert [(r["source"], r["verdict"]) for r in records] == [("shop/other", "allowed")]
        assert records[0]["explanation"] == (
            "ingress at shop/web: accepted by Admin ClusterNetworkPolicy admit-shop "
            "ingress[0] (from-shop)"
        ), records
        time.sleep(1.1)
        assert _moved(before, bench.metrics("node-0")) == {
            ("Admin", "", "admit-shop", "ingress", "allowed"): 1.0
        }
    finally:
        bench.cluster.kubectl("delete", "clusternetworkpolicy", "admit-shop")
        deadline = time.monotonic() + 10
        while bench.tcp("other", "web"):
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_without_a_running_cluster_the_command_says_so(tmp_path: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kubefence.cli.main", "flows", "--cluster", "nosuchcluster"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBEFENCE_STATE": str(tmp_path)},
    )
    assert done.returncode == 3, done.stderr
    assert "not running" in done.stderr


def test_cluster_tutorial_shows_the_flow_line_under_each_timed_out_curl(tmp_path: Path) -> None:
    """``kubefence tutorial`` (cluster mode, here 2 nodes) at the deny-all step: under each
    ``kubectl exec ... curl`` that timed out, and under the ``curl`` that timed out in the
    interactive ``kubectl run --rm`` shell (whose pod is gone when it ends), the ``kubefence
    flows`` line of its connection."""
    done = subprocess.run(
        [sys.executable, "-m", "kubefence", "tutorial", "--name", f"t{os.getpid() % 100000}",
         "--no-color", "--nodes", "2", "--step", "2"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "KUBEFENCE_STATE": str(tmp_path), "NO_COLOR": "1"},
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    timed_out = [
        i for i, line in enumerate(lines) if "command terminated with exit code 28" in line
    ]
    assert len(timed_out) == 2, done.stdout[-3000:]
    session = [i for i, line in enumerate(lines) if line.startswith("curl: (28)")]
    assert len(session) == 1, done.stdout[-3000:]
    assert "denied   test/busybox:" in lines[session[0] + 1]
    for index in [*timed_out, *session]:
        flow = lines[index + 1].strip()
        assert flow.startswith("kubefence flows: "), lines[index - 3 : index + 3]
        assert flow.endswith(
            "-> test/nginx 80/TCP  ingress at test/nginx: isolated by "
            "test/deny-all-policy, no rule allows it"
        ), flow
