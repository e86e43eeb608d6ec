"""``apply``: policy, label and pod changes reach the kernel atomically; strict mode (S25)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from tests.netns.conftest import (
    ALLOW_POLICY,
    DENY_ALL_INGRESS,
    QUICKSTART_PODS,
    SandboxMaker,
    confirmed,
    inventory_of,
)

from kubefence.api import Protocol
from kubefence.dataplane.netns import Outcome, Sandbox, entered, status
from kubefence.semantics import Settings, decide

pytestmark = pytest.mark.netns

EXTRA_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: extra, namespace: default, labels: {app: extra}}
spec:
  containers:
  - {name: x, image: busybox, ports: [{containerPort: 7000}, {containerPort: 7001, protocol: UDP}]}
"""


def _reachable(sandbox: Sandbox, src: str, dst: str, port: int, protocol: Protocol) -> bool | None:
    matrix = sandbox.probe_many([(port, protocol)], timeout=1.0, pairs=[(src, dst)])[0]
    return matrix.results[(src, dst)].reachable


def test_s04_apply_policy_change_is_enforced_and_matches_reference(
    make_sandbox: SandboxMaker,
) -> None:
    """Adding, then removing a deny-all policy flips real reachability as decide predicts."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    assert _reachable(sandbox, "default/busybox", "test/nginx", 80, Protocol.TCP) is True
    sandbox.apply(inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS))
    assert _reachable(sandbox, "default/busybox", "test/nginx", 80, Protocol.TCP) is False
    assert _reachable(sandbox, "test/nginx", "default/busybox", 80, Protocol.TCP) is True
    matrix = sandbox.probe(port=53, protocol=Protocol.UDP, timeout=0.3)
    for (src, dst), result in matrix.results.items():
        expected = decide(sandbox.inventory, src, dst, port=53, protocol=Protocol.UDP).allowed
        assert confirmed(sandbox, result, expected) is expected, (src, dst)
    sandbox.apply(inventory_of(QUICKSTART_PODS))
    assert _reachable(sandbox, "default/busybox", "test/nginx", 80, Protocol.TCP) is True


def test_s12_apply_label_change_moves_a_pod_in_and_out_of_a_policy(
    make_sandbox: SandboxMaker,
) -> None:
    """Relabelling the client (app=nginx -> app=other) removes it from allow-policy's peers."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS + ALLOW_POLICY))
    assert _reachable(sandbox, "test/client", "test/nginx", 80, Protocol.TCP) is True
    relabelled = QUICKSTART_PODS.replace(
        "name: client, namespace: test, labels: {app: nginx}",
        "name: client, namespace: test, labels: {app: other}",
    )
    report = sandbox.apply(inventory_of(relabelled + ALLOW_POLICY))
    assert report.added == ()
    assert report.removed == ()
    assert _reachable(sandbox, "test/client", "test/nginx", 80, Protocol.TCP) is False


def test_apply_adds_and_removes_pods(make_sandbox: SandboxMaker) -> None:
    """A new pod gets a namespace and served ports; a removed pod's namespace disappears."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    removed_netns = sandbox.state.pods["test/client"].netns
    without_client = QUICKSTART_PODS.replace(
        """---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: test, labels: {app: nginx}}
spec: {containers: [{name: client, image: busybox}]}
""",
        "",
    )
    report = sandbox.apply(inventory_of(without_client + EXTRA_POD))
    assert report.added == ("default/extra",)
    assert report.removed == ("test/client",)
    assert report.server_restarted
    info = status(sandbox.name)
    assert info.healthy
    assert removed_netns not in sandbox.state.namespaces
    tcp = sandbox.probe(port=7000, timeout=0.5)
    assert tcp.results[("test/nginx", "default/extra")].outcome is Outcome.CONNECTED
    udp = sandbox.probe(port=7001, protocol=Protocol.UDP, timeout=0.5)
    assert udp.results[("test/nginx", "default/extra")].outcome is Outcome.CONNECTED
    assert "test/client" not in tcp.endpoints


@contextmanager
def _connection(
    sandbox: Sandbox, src: str, dst: str, port: int
) -> Iterator[tuple[socket.socket, socket.socket]]:
    """An established TCP connection from pod ``src`` to a listener opened inside ``dst``."""
    with entered(sandbox.state.pods[dst].netns):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(4)
    with entered(sandbox.state.pods[src].netns):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(2)
    client.connect((str(sandbox.state.pods[dst].ipv4), port))
    server, _ = listener.accept()
    server.settimeout(1.0)
    try:
        yield client, server
    finally:
        client.close()
        server.close()
        listener.close()


def _delivered(client: socket.socket, server: socket.socket, payload: bytes) -> bool:
    try:
        client.sendall(payload)
        return server.recv(100) == payload
    except OSError:  # timeout on recv, or a reset
        return False


def test_s25_strict_mode_cuts_an_established_connection(make_sandbox: SandboxMaker) -> None:
    """After a deny is applied, the next packet of an open connection no longer arrives."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    with _connection(sandbox, "default/busybox", "test/nginx", 9100) as (client, server):
        assert _delivered(client, server, b"before")
        started = time.monotonic()
        report = sandbox.apply(inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS))
        applied = time.monotonic() - started
        assert any(f.dport == 9100 for f in report.cut)
        assert not _delivered(client, server, b"after")
    assert applied < 5


def test_s25_setting_keeps_established_connections(make_sandbox: SandboxMaker) -> None:
    """With cut_established_on_deny=False an open connection survives; new ones are denied."""
    sandbox = make_sandbox(
        inventory_of(QUICKSTART_PODS), settings=Settings(cut_established_on_deny=False)
    )
    with _connection(sandbox, "default/busybox", "test/nginx", 9101) as (client, server):
        assert _delivered(client, server, b"before")
        # A later command (a new process) attaches with the settings the sandbox was made with.
        again = Sandbox.attach(sandbox.name, inventory_of(QUICKSTART_PODS))
        assert again.settings.cut_established_on_deny is False
        report = again.apply(inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS))
        assert report.cut == ()
        assert _delivered(client, server, b"after")
        assert _reachable(sandbox, "default/busybox", "test/nginx", 9101, Protocol.TCP) is False


def test_s06_s25_strict_mode_keeps_allowed_connections(make_sandbox: SandboxMaker) -> None:
    """Only denied flows are cut: an allowed connection keeps working across the swap (S06)."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    with _connection(sandbox, "test/client", "test/nginx", 9102) as (client, server):
        assert _delivered(client, server, b"before")
        report = sandbox.apply(inventory_of(QUICKSTART_PODS + ALLOW_POLICY))
        assert all(f.dport != 9102 for f in report.cut)
        assert _delivered(client, server, b"after")
        server.sendall(b"reply")
        assert client.recv(100) == b"reply"


EGRESS_ALLOWED = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-allowed, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{}]
"""

ADMIN_DENY_TO_NGINX = """
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-to-test}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: test}}}
  ingress:
  - name: no-default
    action: Deny
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: default}}}]
"""


def test_s25_a_tiered_policy_change_alone_cuts_what_it_denies(make_sandbox: SandboxMaker) -> None:
    """Only a ClusterNetworkPolicy changes (no namespace's NetworkPolicies do): the open
    connection it now denies is cut too (the changed-namespaces shortcut must not skip it)."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    sandbox.apply(inventory_of(QUICKSTART_PODS + EGRESS_ALLOWED))  # checked, table changed
    with _connection(sandbox, "default/busybox", "test/nginx", 9103) as (client, server):
        assert _delivered(client, server, b"before")
        report = sandbox.apply(inventory_of(QUICKSTART_PODS + EGRESS_ALLOWED + ADMIN_DENY_TO_NGINX))
        assert any(f.dport == 9103 for f in report.cut)
        assert not _delivered(client, server, b"after")
