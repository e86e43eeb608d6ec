"""The policy agent end to end: our API server over TLS, the agent's own RBAC, real packets.

Each test changes policies with the real kubectl and watches real connections from a pod's
namespace: a policy is enforced (first dropped SYN) within kubectl's return + 100 ms and
revoked likewise; after each change the probed matrix equals the reference evaluator's answer
for what the API stores; a policy the agent cannot compile gets an Event and keeps its pods
isolated; SIGKILL leaves the rules in place and a restarted agent reconciles with no open
window; an API server down for 10 s while policies change converges within 2 s of recovery.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.control.conftest import Cluster
from tests.netns.conftest import QUICKSTART_PODS, confirmed, inventory_of, unique_name
from tests.netns.test_agent_harness import (
    NODE,
    POLICIES,
    AgentProcess,
    Prober,
    admin,
    agent_kubeconfig,
    api_server,
    free_port,
    kubectl_apply,
    kubectl_delete,
    publish_pods,
    restart_server,
)

from kubefence.agent._enforce import Enforcer
from kubefence.api import Protocol
from kubefence.client import read_objects
from kubefence.control.cluster import cluster_up
from kubefence.dataplane.netns import Sandbox, down, run
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects

pytestmark = pytest.mark.netns

DENY_NGINX = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-nginx, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  policyTypes: [Ingress]
"""

ALLOW_SAME_NAMESPACE = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-same-namespace, namespace: test}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}]
"""

SCTP_ONLY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp-only, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress: [{ports: [{port: 80, protocol: SCTP}]}]
"""


@dataclass
class Bench:
    cluster: Cluster
    sandbox: Sandbox
    agent: AgentProcess
    tmp: Path

    def probe_netns(self, key: str) -> str:
        return self.sandbox.slot(key).netns

    def address(self, key: str) -> str:
        return str(self.sandbox.slot(key).ipv4)

    def prober(self, src: str, dst: str, port: int = 80) -> Prober:
        prober = Prober(self.probe_netns(src), self.address(dst), port)
        prober.start()
        return prober

    def restart_agent(self, *extra: str, cli: bool = False) -> AgentProcess:
        entry = (str(Path(sys.executable).parent / "kubefence"), "agent") if cli else None
        self.agent = AgentProcess(
            self.agent.kubeconfig,
            self.agent.netns,
            self.agent.log,
            extra=extra,
            **({"entry": entry} if entry else {}),
        ).start()
        return self.agent


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    tmp = tmp_path_factory.mktemp("agent")
    name = unique_name()
    manifests = [d for d in yaml.safe_load_all(QUICKSTART_PODS) if d]
    with api_server(tmp, "agent") as cluster:
        sandbox = Sandbox.up(inventory_of(QUICKSTART_PODS), name=name)
        agent = None
        try:
            kube = admin(cluster)
            publish_pods(kube, sandbox, manifests)
            kubeconfig = agent_kubeconfig(cluster, tmp / "agent.kubeconfig")
            agent = AgentProcess(
                kubeconfig,
                sandbox.state.node_netns,
                tmp / "agent.log",
                extra=("--unsupported-protocol", "SCTP"),
            ).start()
            agent.wait_ready()
            bench = Bench(cluster, sandbox, agent, tmp)
            yield bench
            agent = bench.agent
        finally:
            if agent is not None:
                agent.stop()
            down(name)


def matrix_matches_the_api(bench: Bench) -> None:
    """Real packets on every pair (TCP 80, UDP 53) equal the reference for the stored objects."""
    stored = inventory_from_objects(read_objects(admin(bench.cluster)))
    keys = {p.key: p for p in bench.sandbox.inventory.pods}
    for matrix in bench.sandbox.probe_many([(80, Protocol.TCP), (53, Protocol.UDP)]):
        for (src, dst), result in matrix.results.items():
            if src not in keys or dst not in keys:
                continue
            expected = decide(
                stored, src, dst, port=int(matrix.port), protocol=matrix.protocol
            ).allowed
            got = confirmed(bench.sandbox, result, expected)
            assert got is expected, (src, dst, matrix.port, matrix.protocol, bench.agent.tail())


def test_agent_programs_only_this_node_and_reports_ready(bench: Bench) -> None:
    assert bench.agent.get("/healthz")[0] == 200
    assert bench.agent.get("/readyz")[0] == 200
    assert bench.agent.metric("kubefence_agent_local_pods") == 3
    assert bench.agent.metric("kubefence_agent_ready") == 1
    listing = run(["nft", "list", "table", "inet", "kubefence"], netns=bench.agent.netns).stdout
    assert "map egress_v4" in listing
    matrix_matches_the_api(bench)


def test_apply_and_revoke_are_enforced_within_kubectl_return_plus_100ms(bench: Bench) -> None:
    prober = bench.prober("default/busybox", "test/nginx")
    try:
        time.sleep(0.2)
        assert all(ok for _, ok in prober.since(time.monotonic() - 0.1)), "not open at start"
        returned = kubectl_apply(bench.cluster, DENY_NGINX)
        denied = prober.first(False, after=returned - 2.0)
        assert denied is not None, bench.agent.tail()
        assert denied - returned <= 0.1, f"enforced {denied - returned:.3f}s after kubectl"
        time.sleep(0.3)
        matrix_matches_the_api(bench)
        returned = kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "deny-nginx")
        time.sleep(0.5)
        allowed = prober.first(True, after=denied + 0.05)
        assert allowed is not None, bench.agent.tail()
        assert allowed - returned <= 0.1, f"revoked {allowed - returned:.3f}s after kubectl"
    finally:
        prober.stop()
    matrix_matches_the_api(bench)


def test_a_policy_the_agent_cannot_compile_gets_an_event_and_isolates(bench: Bench) -> None:
    kubectl_apply(bench.cluster, SCTP_ONLY)
    try:
        deadline = time.monotonic() + 5
        events: list[dict[str, object]] = []
        while time.monotonic() < deadline and not events:
            listed = bench.cluster.kubectl("get", "events", "-n", "test", "-o", "yaml").stdout
            events = [
                e
                for e in yaml.safe_load(listed)["items"]
                if e["involvedObject"]["name"] == "sctp-only" and e["reason"] == "NotEnforced"
            ]
            time.sleep(0.1)
        assert events, bench.agent.tail()
        assert "SCTP" in str(events[0]["message"])
        assert events[0]["involvedObject"]["kind"] == "NetworkPolicy"
        assert bench.agent.metric("kubefence_agent_objects_not_compiled") == 1
        # nginx is isolated for ingress and nothing is opened: TCP 80 from anywhere is dropped.
        result = bench.sandbox.probe_many(
            [(80, Protocol.TCP)], pairs=[("default/busybox", "test/nginx")]
        )[0]
        assert result.results[("default/busybox", "test/nginx")].reachable is False
    finally:
        kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "sctp-only")
    time.sleep(0.3)
    matrix_matches_the_api(bench)
    assert bench.agent.metric("kubefence_agent_objects_not_compiled") == 0


def test_sigkill_keeps_rules_and_restart_reconciles_without_an_open_window(bench: Bench) -> None:
    kubectl_apply(bench.cluster, DENY_NGINX)
    time.sleep(0.3)
    watch = bench.prober("default/busybox", "test/nginx")  # must never be answered
    try:
        time.sleep(0.2)
        bench.agent.kill()
        time.sleep(0.5)  # the rules stay without their agent
        returned = kubectl_apply(bench.cluster, ALLOW_SAME_NAMESPACE)
        agent = bench.restart_agent("--unsupported-protocol", "SCTP", cli=True)
        agent.wait_ready()
        time.sleep(0.3)
        matrix_matches_the_api(bench)
        opened = [t - returned for t, ok in watch.since(0) if ok]
        assert not opened, f"busybox reached nginx during the restart at {opened[:5]}"
        assert len(watch.since(0)) > 100
    finally:
        watch.stop()
        kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "deny-nginx")
        kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "allow-same-namespace")
    time.sleep(0.3)
    matrix_matches_the_api(bench)


def test_fail_closed_start_holds_new_connections_until_the_first_sync(bench: Bench) -> None:
    bench.agent.stop()  # SIGTERM: the Lease is released, the table stays
    assert "stopped; the table stays as it is" in bench.agent.tail()
    node = bench.agent.netns
    run(["nft", "delete", "table", "inet", "kubefence"], netns=node)
    enforcer = Enforcer(netns=node)
    assert enforcer.start(fail_open=True) == "open"
    assert not enforcer.table_exists()
    assert enforcer.start(fail_open=False) == "held"
    pairs = [("default/busybox", "test/nginx"), ("test/client", "test/nginx")]
    held = bench.sandbox.probe_many([(80, Protocol.TCP)], pairs=pairs)[0]
    assert [held.results[p].reachable for p in pairs] == [False, False]
    assert enforcer.start(fail_open=False) == "kept"
    agent = bench.restart_agent("--unsupported-protocol", "SCTP")
    agent.wait_ready()
    log = agent.log.read_text()
    restart = log[log.rindex('"msg": "starting"') :]
    assert "lease held by another agent" not in restart  # the released Lease: taken at once
    assert "before the first sync the table is kept" in restart
    matrix_matches_the_api(bench)


def test_a_second_agent_for_the_node_waits_for_the_lease(bench: Bench) -> None:
    second = AgentProcess(
        bench.agent.kubeconfig, bench.agent.netns, bench.tmp / "second.log"
    ).start()
    try:
        deadline = time.monotonic() + 60
        while "lease held by another agent" not in second.tail():
            assert time.monotonic() < deadline, second.tail()
            time.sleep(0.1)
        time.sleep(4.0)  # longer than the lease: the first agent keeps renewing it
        assert second.get("/healthz")[0] == 200
        assert second.get("/readyz")[0] == 503
        assert "first sync done" not in second.tail()
    finally:
        second.stop()
    lease = admin(bench.cluster).get(
        f"/apis/coordination.k8s.io/v1/namespaces/kubefence-system/leases/kubefence-agent-{NODE}"
    )
    assert lease["spec"]["holderIdentity"]


def kill_server(pid: int) -> None:
    """SIGKILL an API server this process started, and reap it."""
    os.kill(pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_api_server_down_for_10s_while_policies_change_converges_within_2s(bench: Bench) -> None:
    """The agent's server is killed; a second server on the same store takes changes the agent
    cannot see; 10 s later the agent's server is back and the data plane must follow in 2 s."""
    cluster = bench.cluster
    kubectl_apply(cluster, DENY_NGINX)
    time.sleep(0.3)
    watch = bench.prober("test/client", "test/nginx")
    try:
        assert cluster.info.pid is not None
        kill_server(cluster.info.pid)
        killed = time.monotonic()
        # While the agent's server is down, policies change through another server instance
        # on the same store and another port (the agent cannot reach it).
        other = cluster_up(cluster.info.name, port=free_port())
        assert other.url != cluster.info.url
        kube = admin(Cluster(other, cluster.kubeconfig, cluster.cache))
        kube.create(POLICIES.path(namespace="test"), yaml.safe_load(ALLOW_SAME_NAMESPACE))
        kube.delete(POLICIES.path(namespace="test", name="deny-nginx"))
        time.sleep(1.0)
        assert not any(ok for _, ok in watch.since(killed + 0.5)), "rules changed while blind"
        assert other.pid is not None
        kill_server(other.pid)
        time.sleep(max(0.0, 10.0 - (time.monotonic() - killed)))
        assert not any(ok for _, ok in watch.since(killed + 0.5)), "rules changed while blind"
        bench.cluster = restart_server(cluster)
        recovered = time.monotonic()
        allowed = watch.first(True, after=recovered, settle=3.0)
        assert allowed is not None, bench.agent.tail()
        assert allowed - recovered <= 2.0, f"converged {allowed - recovered:.2f}s after recovery"
    finally:
        watch.stop()
    time.sleep(0.3)
    matrix_matches_the_api(bench)
    kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "allow-same-namespace")
