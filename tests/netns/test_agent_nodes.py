"""The agent and the node's own addresses (root): tier ``nodes`` peers, and the hold at start.

Why this module exists: a pod's connection to an address of a node is decided by the pod's
egress (S05), including the admin tiers' ``nodes`` peers (T05: matched on the Node objects'
labels and ``status.addresses``), and one to its own node is delivered locally (``input``),
not forwarded. Against our API server, with the agent's own RBAC (deploy/), real kubectl and
real packets from the pods' namespaces to listeners on the node namespace's addresses:

* a ClusterNetworkPolicy Deny to ``nodes`` with a label follows Node label and address
  changes (``kubectl label node``, a status patch), each step equal to the reference evaluator
  for what the API server stores;
* before the first sync the hold drops a pod's new connections to its own node too, and the
  restarted agent's first sync then lets the pods whose egress allows it through, while an
  egress-isolated pod does not reach the node from the hold on (probes every 3 ms).

Every namespace and process is removed, also on failure.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tests.control.conftest import Cluster
from tests.netns.conftest import QUICKSTART_PODS, SELECTS_NOTHING, inventory_of, unique_name
from tests.netns.test_agent_harness import (
    NODE,
    AgentProcess,
    Prober,
    admin,
    agent_kubeconfig,
    api_server,
    create_or_replace,
    kubectl_apply,
    kubectl_delete,
    publish_pods,
)

from kubefence.agent._enforce import Enforcer
from kubefence.api import IPNetwork
from kubefence.client import Resource, read_objects
from kubefence.dataplane.netns import Sandbox, down, entered, run
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects

pytestmark = pytest.mark.netns

NODES = Resource("", "v1", "nodes", namespaced=False)
PORT = 9099
OWN = "198.19.255.254"  # the sandbox node's address (``NODE_V4``), the Node ``NODE``'s
FAR = "198.19.255.200"  # added to the node namespace: the Node ``far``'s address at first
MOVED = "198.19.255.201"  # ``far``'s address after the status patch

DENY_FENCED_NODES = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-fenced-nodes}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  egress:
  - name: fenced
    action: Deny
    to: [{nodes: {matchLabels: {fence: deny}}}]
"""

LATE_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: late, namespace: default, labels: {app: late}}
spec: {containers: [{name: late, image: busybox}]}
"""

ISOLATE_TEST_EGRESS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: no-egress, namespace: test}
spec:
  podSelector: {}
  policyTypes: [Egress]
"""


class Listener(threading.Thread):
    """Accepts (and closes) TCP connections on ``PORT`` inside the node's namespace."""

    def __init__(self, netns: str) -> None:
        super().__init__(daemon=True, name="node-listener")
        with entered(netns):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", PORT))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            with suppress(TimeoutError, OSError):
                conn, _ = self.sock.accept()
                conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.sock.close()


@dataclass
class Bench:
    cluster: Cluster
    sandbox: Sandbox
    agent: AgentProcess
    held: tuple[IPNetwork, ...]
    tmp: Path

    def netns(self, key: str) -> str:
        return self.sandbox.slot(key).netns

    def reaches(self, key: str, address: str) -> bool:
        """One TCP connection from pod ``key`` to ``address:PORT`` (1 s)."""
        with entered(self.netns(key)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(1.0)
            return sock.connect_ex((address, PORT)) == 0

    def expected(self, key: str, address: str) -> bool:
        stored = inventory_from_objects(read_objects(admin(self.cluster)))
        return decide(stored, key, address, port=PORT).allowed


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    tmp = tmp_path_factory.mktemp("agent-nodes")
    name = unique_name()
    manifests = [d for d in yaml.safe_load_all(QUICKSTART_PODS) if d]  # not ``late`` yet
    listener: Listener | None = None
    agent: AgentProcess | None = None
    with api_server(tmp, "nodes") as cluster:
        sandbox = Sandbox.up(inventory_of(QUICKSTART_PODS + LATE_POD), name=name)
        try:
            node_netns = sandbox.state.node_netns
            for address in (FAR, MOVED):
                run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], netns=node_netns)
            listener = Listener(node_netns)
            listener.start()
            kube = admin(cluster)
            publish_pods(kube, sandbox, manifests)
            set_node(cluster, NODE, OWN)
            set_node(cluster, "far", FAR)
            held = tuple(
                ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                for key in ("test/nginx", "test/client", "default/busybox", "default/late")
                for address, prefix in (
                    (sandbox.slot(key).ipv4, 24),
                    (sandbox.slot(key).ipv6, 64),
                )
            )
            extra = [a for cidr in sorted({str(n) for n in held}) for a in ("--hold-cidr", cidr)]
            agent = AgentProcess(
                agent_kubeconfig(cluster, tmp / "nodes.kubeconfig"),
                node_netns,
                tmp / "nodes.log",
                extra=(*extra, "--unsupported-protocol", "SCTP"),
            ).start()
            agent.wait_ready()
            bench = Bench(cluster, sandbox, agent, tuple(set(held)), tmp)
            yield bench
            agent = bench.agent
        finally:
            if agent is not None:
                agent.stop()
            if listener is not None:
                listener.stop()
            down(name)


def set_node(cluster: Cluster, name: str, address: str) -> None:
    """Create (or replace) the Node, then write its address through ``status``."""
    kube = admin(cluster)
    create_or_replace(kube, NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    kube.patch(
        NODES.path(name=name, subresource="status"),
        {"status": {"addresses": [{"type": "InternalIP", "address": address}]}},
    )


def settled(bench: Bench, key: str, address: str, want: bool) -> None:
    """Within 2 s the pod's connections to ``address`` have the reference's outcome ``want``."""
    assert bench.expected(key, address) is want, (key, address)
    deadline = time.monotonic() + 2.0
    while bench.reaches(key, address) is not want:
        assert time.monotonic() < deadline, (key, address, want, bench.agent.tail())
        time.sleep(0.05)


def test_a_tier_deny_to_nodes_follows_node_labels_and_addresses(bench: Bench) -> None:
    client = "default/busybox"  # no NetworkPolicy selects it
    settled(bench, client, OWN, True)
    settled(bench, client, FAR, True)
    kubectl_apply(bench.cluster, DENY_FENCED_NODES)
    settled(bench, client, FAR, True)  # no node is fenced yet
    bench.cluster.kubectl("label", "node", "far", "fence=deny")
    settled(bench, client, FAR, False)
    settled(bench, client, OWN, True)
    bench.cluster.kubectl("label", "node", NODE, "fence=deny")  # its own node: input hook
    settled(bench, client, OWN, False)
    admin(bench.cluster).patch(
        NODES.path(name="far", subresource="status"),
        {"status": {"addresses": [{"type": "InternalIP", "address": MOVED}]}},
    )
    settled(bench, client, FAR, True)  # no node's address any more
    settled(bench, client, MOVED, False)
    bench.cluster.kubectl("label", "node", NODE, "fence-")
    settled(bench, client, OWN, True)
    kubectl_delete(bench.cluster, "clusternetworkpolicy", "deny-fenced-nodes")
    settled(bench, client, MOVED, True)


def test_s05_the_start_hold_covers_a_pods_connections_to_its_own_node(bench: Bench) -> None:
    kubectl_apply(bench.cluster, ISOLATE_TEST_EGRESS)
    settled(bench, "test/client", OWN, False)  # egress-isolated: its node too (S05)
    settled(bench, "default/busybox", OWN, True)
    isolated = Prober(bench.netns("test/client"), OWN, PORT)
    free = Prober(bench.netns("default/busybox"), OWN, PORT)
    probers = [isolated, free]
    try:
        for prober in probers:
            prober.start()
        bench.agent.stop()  # SIGTERM: the Lease is released, the table stays
        node = bench.agent.netns
        run(["nft", "delete", "table", "inet", "kubefence"], netns=node)  # a fresh node
        assert Enforcer(netns=node, held=bench.held).start(fail_open=False) == "held"
        held_at = time.monotonic()
        time.sleep(1.0)
        restarted = time.monotonic()
        agent = AgentProcess(
            bench.agent.kubeconfig, node, bench.agent.log, extra=bench.agent.extra
        ).start()
        bench.agent = agent
        agent.wait_ready()
        ready = time.monotonic()
        log = agent.log.read_text()
        assert "before the first sync the table is kept" in log[log.rindex('"msg": "starting"') :]
        held = [ok for sent, ok in free.since(held_at) if sent < restarted]
        assert len(held) > 50, "the prober did not run"
        assert not any(held), f"{sum(held)} of {len(held)} probes reached the node while held"
        assert free.first(True, after=ready, settle=3.0) is not None, agent.tail()
        time.sleep(0.5)
    finally:
        for prober in probers:
            prober.stop()
    seen = isolated.since(held_at)
    assert len(seen) > 100, "the prober did not run"
    assert not any(ok for _, ok in seen), "the egress-isolated pod reached its node"
    kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "no-egress")
    settled(bench, "test/client", OWN, True)


def test_a_pod_not_planned_yet_does_not_reach_its_node_until_it_is(bench: Bench) -> None:
    """The running table's per-pod hold covers ``input`` too: ``late`` has its address (the
    sandbox made it) but the API server has not published it, so while any policy exists
    nothing from it reaches the node; once published (and planned) it does."""
    kubectl_apply(bench.cluster, SELECTS_NOTHING)  # pods are held while any policy exists
    deadline = time.monotonic() + 2.0
    while "@held_v4" not in Enforcer(netns=bench.agent.netns).listing():
        assert time.monotonic() < deadline, bench.agent.tail()
        time.sleep(0.05)
    prober = Prober(bench.netns("default/late"), OWN, PORT)
    try:
        prober.start()
        started = time.monotonic()
        time.sleep(1.0)
        published = time.monotonic()
        late = next(d for d in yaml.safe_load_all(LATE_POD) if d)
        publish_pods(admin(bench.cluster), bench.sandbox, [late])
        held = [ok for sent, ok in prober.since(started) if sent < published - prober.wait]
        assert len(held) > 50, "the prober did not run"
        assert not any(held), f"{sum(held)} of {len(held)} probes reached the node while held"
        assert prober.first(True, after=published, settle=3.0) is not None, bench.agent.tail()
    finally:
        prober.stop()
    assert bench.expected("default/late", OWN) is True
    kubectl_delete(bench.cluster, "networkpolicy", "-n", "test", "selects-nothing")
