"""The sandbox end to end: up, real probes agree with the reference evaluator, the CLI, down."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.netns.conftest import (
    ALLOW_POLICY,
    DENY_ALL_INGRESS,
    QUICKSTART_PODS,
    SandboxMaker,
    confirmed,
    inventory_of,
    unique_name,
)

from kubefence.api import Protocol
from kubefence.cli.main import main
from kubefence.dataplane.netns import Outcome, Sandbox, status
from kubefence.semantics import Settings, decide

pytestmark = pytest.mark.netns


def _assert_matches_reference(sandbox: Sandbox, port: int, protocol: Protocol, family: int) -> None:
    matrix = sandbox.probe(port=port, protocol=protocol, timeout=0.3, family=family)
    assert not matrix.unprobed
    for (src, dst), result in matrix.results.items():
        expected = decide(sandbox.inventory, src, dst, port=port, protocol=protocol).allowed
        assert confirmed(sandbox, result, expected) is expected, (src, dst, port, family, result)


@pytest.mark.parametrize("family", [4, 6])
def test_s11_quickstart_packets_match_reference_tcp_udp(
    make_sandbox: SandboxMaker, family: int
) -> None:
    """Allow-policy (podSelector peer, S11): real TCP and UDP packets agree with decide, on
    IPv4 and IPv6."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS + ALLOW_POLICY))
    for port, protocol in [(80, Protocol.TCP), (53, Protocol.UDP), (9000, Protocol.TCP)]:
        _assert_matches_reference(sandbox, port, protocol, family)
    matrix = sandbox.probe(port=80, timeout=0.3)
    assert matrix.results[("default/busybox", "test/nginx")].outcome is Outcome.TIMEOUT
    assert matrix.results[("test/client", "test/nginx")].outcome is Outcome.CONNECTED


def test_udp_echo_and_refusal_both_count_as_reached(make_sandbox: SandboxMaker) -> None:
    """UDP to a served port is echoed; to an unserved port the pod's ICMP refusal counts."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    served = sandbox.probe(port=53, protocol=Protocol.UDP, timeout=0.5)
    assert served.results[("default/busybox", "test/nginx")].outcome is Outcome.CONNECTED
    closed = sandbox.probe(port=5999, protocol=Protocol.UDP, timeout=0.5)
    assert closed.results[("default/busybox", "test/nginx")].outcome is Outcome.REFUSED


SCTP_POLICY = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp-only, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: nginx}}}]
    ports: [{port: 132, protocol: SCTP}]
"""


@pytest.mark.parametrize("family", [4, 6])
def test_s18_sctp_raw_probes_match_reference(make_sandbox: SandboxMaker, family: int) -> None:
    """Without SCTP sockets, raw INIT packets still show the SCTP port rules enforced."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS + SCTP_POLICY))
    for port in (132, 133):
        _assert_matches_reference(sandbox, port, Protocol.SCTP, family)
    allowed = sandbox.probe(port=132, protocol=Protocol.SCTP, timeout=0.3, family=family)
    assert allowed.results[("test/client", "test/nginx")].outcome is Outcome.CONNECTED
    assert allowed.results[("default/busybox", "test/nginx")].outcome is Outcome.TIMEOUT
    other = sandbox.probe(port=133, protocol=Protocol.SCTP, timeout=0.3, family=family)
    assert other.results[("test/client", "test/nginx")].outcome is Outcome.TIMEOUT


def test_cli_session_up_status_probe_verify_exec_down(
    tmp_path: Path, sandbox_names: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    """The documented CLI session works end to end, including nginx's welcome page via curl."""
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(QUICKSTART_PODS + ALLOW_POLICY)
    name = unique_name()
    sandbox_names.append(name)
    assert main(["sandbox", "up", "-f", str(manifests), "--name", name]) == 0
    assert main(["sandbox", "status", "--name", name]) == 0
    capfd.readouterr()
    main(["sandbox", "status", "--all"])  # other suites' sandboxes may be unhealthy right now
    assert f"{name} " in capfd.readouterr().out

    assert main(["sandbox", "probe", "--name", name, "--port", "80", "-o", "json"]) == 0
    shape = json.loads(capfd.readouterr().out)
    assert shape["endpoints"] == ["default/busybox", "test/client", "test/nginx"]
    assert shape["rows"] == ["100", "111", "111"]
    assert shape["port"] == "80"
    assert shape["protocol"] == "TCP"

    assert main(["sandbox", "verify", "--name", name, "--timeout", "0.3"]) == 0
    assert "0 mismatch" in capfd.readouterr().out

    nginx = status(name).pods[2]
    assert nginx.key == "test/nginx"
    url = f"http://{nginx.ipv4}/"
    assert main(["sandbox", "exec", "--name", name, "test/client", "--", "curl", "-s", url]) == 0
    assert "Welcome to nginx!" in capfd.readouterr().out
    code = main(
        ["sandbox", "exec", "--name", name, "default/busybox", "--", "curl", "-sm", "0.5", url]
    )
    assert code != 0  # dropped by allow-policy: curl times out

    manifests.write_text(QUICKSTART_PODS + ALLOW_POLICY + DENY_ALL_INGRESS)
    assert main(["sandbox", "apply", "-f", str(manifests), "--name", name]) == 0
    assert "2 policies applied atomically" in capfd.readouterr().out
    assert main(["sandbox", "probe", "--name", name, "--port", "http", "-o", "json"]) == 0
    shape = json.loads(capfd.readouterr().out)
    assert shape["rows"] == ["??0", "??1", "??1"]  # named port: resolved per destination
    assert {item["to"] for item in shape["unprobed"]} == {"default/busybox", "test/client"}
    assert main(["sandbox", "verify", "--name", name, "--timeout", "0.3"]) == 0

    assert main(["sandbox", "down", "--name", name]) == 0
    assert main(["sandbox", "status", "--name", name]) == 2  # no such sandbox any more


IPV6_ONLY_BLOCK = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-ipv6-pods, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - from: [{ipBlock: {cidr: "fd00::/8"}}]
"""


@pytest.mark.parametrize("family", ["4", "6"])
def test_s15_verify_judges_ip_blocks_per_address_family(
    tmp_path: Path, sandbox_names: list[str], capfd: pytest.CaptureFixture[str], family: str
) -> None:
    """An IPv6-only ipBlock admits IPv6 packets and not IPv4 ones; verify agrees on both."""
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(QUICKSTART_PODS + IPV6_ONLY_BLOCK)
    name = unique_name()
    sandbox_names.append(name)
    assert main(["sandbox", "up", "-f", str(manifests), "--name", name]) == 0
    flags = ["--ipv6"] if family == "6" else []
    capfd.readouterr()
    assert main(["sandbox", "probe", "--name", name, "-o", "json", *flags]) == 0
    rows = json.loads(capfd.readouterr().out)["rows"]
    assert rows[0][2] == ("1" if family == "6" else "0")  # default/busybox -> test/nginx
    code = main(["sandbox", "verify", "--name", name, "--timeout", "0.3", *flags])
    out = capfd.readouterr().out
    assert code == 0, out
    assert f"(IPv{family})" in out
    assert " 0 mismatch" in out


def test_verify_reports_mismatch_with_explanation(
    tmp_path: Path, sandbox_names: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    """If the kernel enforces something else than predicted, verify prints why and exits 1."""
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text(QUICKSTART_PODS + ALLOW_POLICY)
    name = unique_name()
    sandbox_names.append(name)
    assert main(["sandbox", "up", "-f", str(manifests), "--name", name]) == 0
    # Sabotage: replace kubefence's table by one that accepts everything.
    subprocess.run(
        ["ip", "netns", "exec", f"kf-{name}-node", "nft", "-f", "-"],
        input="delete table inet kubefence\n"
        "table inet kubefence { chain forward { type filter hook forward priority 0; }; }\n",
        text=True,
        check=True,
    )
    capfd.readouterr()
    assert main(["sandbox", "verify", "--name", name, "--timeout", "0.3"]) == 1
    out = capfd.readouterr().out
    assert "MISMATCH TCP/80 default/busybox -> test/nginx: predicted denied" in out
    assert "DENIED: default/busybox -> test/nginx on 80/TCP" in out  # explain's own text
    assert "isolated by test/allow-policy" in out


HOST_NETWORK_POD = """
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: default}
spec:
  hostNetwork: true
  containers: [{name: agent, image: busybox, ports: [{containerPort: 80}]}]
"""


def test_s23_host_network_pods_are_reported_unprobed(make_sandbox: SandboxMaker) -> None:
    """A hostNetwork pod does not run in the sandbox: its row and column are '?' with the
    reason, and the other pairs are still probed."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS + HOST_NETWORK_POD))
    shape = sandbox.probe(port=80, timeout=0.3).to_json()
    position = shape["endpoints"].index("default/agent")
    assert set(shape["rows"][position]) == {"?"}
    assert {row[position] for row in shape["rows"]} == {"?"}
    assert all(
        "hostNetwork" in item["reason"]
        for item in shape["unprobed"]
        if "default/agent" in (item["from"], item["to"])
    )
    assert shape["rows"][shape["endpoints"].index("default/busybox")].count("1") == 3


def test_up_twice_is_refused_while_healthy(make_sandbox: SandboxMaker) -> None:
    """A second 'up' of a healthy sandbox is a usage error, not a silent replacement."""
    sandbox = make_sandbox(inventory_of(QUICKSTART_PODS))
    with pytest.raises(Exception, match="already up"):
        Sandbox.up(sandbox.inventory, name=sandbox.name)


@pytest.mark.parametrize("allow_from_node", [True, False])
def test_s24_traffic_from_the_node_follows_the_setting(
    make_sandbox: SandboxMaker, allow_from_node: bool
) -> None:
    """From the node namespace (kubelet probes) every pod is reachable despite deny-all when
    allow_from_node is set; without it the destination's ingress policies apply."""
    sandbox = make_sandbox(
        inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS),
        settings=Settings(allow_from_node=allow_from_node),
    )
    for protocol, port in [(Protocol.TCP, 80), (Protocol.UDP, 53)]:
        results = sandbox.probe_from_node(port=port, protocol=protocol, timeout=0.3)
        assert set(results) == {"default/busybox", "test/client", "test/nginx"}
        for dst, result in results.items():
            expected = decide(
                sandbox.inventory,
                sandbox.node_endpoint,
                dst,
                port=port,
                protocol=protocol,
                settings=sandbox.settings,
            ).allowed
            assert confirmed(sandbox, result, expected) is expected, (dst, protocol, result)
        assert results["test/nginx"].reachable is allow_from_node
        assert results["default/busybox"].reachable is True  # not isolated either way
