"""Services and cluster DNS on real packets: a client pod resolves `nginx.test` through the DNS
pod behind 198.19.0.10 and reaches nginx through the ClusterIP DNAT of the node's proxy; a
default-deny egress policy breaks name resolution until DNS is allowed (the guide's warning);
Service traffic is filtered by the destination pod's ingress policy after DNAT (S22).

The API server is `kubefence cluster up`'s; the pods are a sandbox's (`Sandbox.up`); the Services
and EndpointSlices are written through the API as the controllers would write them; the proxy
(`ServiceProxy`) and the DNS server (`DnsServer`) run in this process, as the node component
runs them.
"""

from __future__ import annotations

import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, DNSRecord
from tests.control.conftest import start, state_restored
from tests.netns.conftest import inventory_of, unique_name

from kubefence.client import Kube, Resource, connect
from kubefence.control.cluster import cluster_down
from kubefence.control.services import addon_objects
from kubefence.dataplane.netns import Sandbox, down, entered
from kubefence.node._dns import DnsServer, remove_resolv_conf, write_resolv_conf
from kubefence.node._proxy import ServiceProxy

pytestmark = pytest.mark.netns

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: test, labels: {app: nginx}}
spec: {containers: [{name: nginx, image: nginx, ports: [{name: http, containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: test, labels: {app: client}}
spec: {containers: [{name: client, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: dns, image: kubefence/dns}]}
"""

DENY_EGRESS = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: test}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
"""

ALLOW_DNS = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: test}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""

ALLOW_NGINX_EGRESS = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-nginx, namespace: test}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: nginx}}}]
"""

# Ingress to nginx only on the pod's port 80 from the client: a Service port 8080 -> targetPort
# `http` (80) passes, because the filter sees the packet after DNAT (S22).
NGINX_INGRESS = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: nginx-ingress, namespace: test}
spec:
  podSelector: {matchLabels: {app: nginx}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 80}]
"""

NGINX_INGRESS_OTHER = NGINX_INGRESS.replace("{app: client}", "{app: somebody-else}")

SERVICES = Resource("", "v1", "services")
SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)


def _slice(
    namespace: str, service: str, ports: list[dict[str, Any]], ips: list[str]
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-abcde",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


class World:
    """The sandbox, the API, the proxy and the DNS server of one test module."""

    def __init__(
        self, sandbox: Sandbox, kube: Kube, proxy: ServiceProxy, dns: DnsServer, kubeconfig: Path
    ) -> None:
        self.kubeconfig = kubeconfig
        self.sandbox = sandbox
        self.kube = kube
        self.proxy = proxy
        self.dns = dns

    def netns(self, pod: str) -> str:
        return self.sandbox.slot(pod).netns

    def ip(self, pod: str) -> str:
        return str(self.sandbox.slot(pod).ipv4)

    def curl(self, pod: str, url: str, *, timeout: float = 3.0) -> subprocess.CompletedProcess[str]:
        """curl inside the pod's namespace, with its /etc/netns resolv.conf (`ip netns exec`)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns(pod), "curl", "-sS", "-m", str(timeout), url],
            capture_output=True, text=True, timeout=timeout + 10, check=False,
        )  # fmt: skip

    def apply(self, policies: str) -> None:
        self.sandbox.apply(inventory_of(PODS + policies))

    def query(
        self, pod: str, name: str, *, qtype: str = "A", timeout: float = 1.0
    ) -> DNSRecord | None:
        """One UDP query from the pod to 198.19.0.10 (None on timeout)."""
        request = DNSRecord.question(name, qtype)
        with entered(self.netns(pod)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sock:
            sock.settimeout(timeout)
            sock.sendto(request.pack(), ("198.19.0.10", 53))
            try:
                data, _ = sock.recvfrom(4096)
            except TimeoutError:
                return None
        return DNSRecord.parse(data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    tmp = tmp_path_factory.mktemp("svc")
    name = unique_name()
    started: list[Any] = []
    world: World | None = None
    with state_restored():
        cluster = start(tmp, "svc")
        try:
            sandbox = Sandbox.up(inventory_of(PODS), name=name)
            kube = connect(cluster.kubeconfig)
            for obj in addon_objects():
                if obj["kind"] == "Service":
                    kube.create(SERVICES.path(namespace="kube-system"), obj)
            kube.create(NAMESPACES.path(), {"metadata": {"name": "test"}})
            nginx = {
                "metadata": {"name": "nginx", "namespace": "test"},
                "spec": {
                    "selector": {"app": "nginx"},
                    "ports": [
                        {"name": "web", "port": 80, "targetPort": "http"},
                        {"name": "alt", "port": 8080, "targetPort": "http"},
                    ],
                },
            }
            kube.create(SERVICES.path(namespace="test"), nginx)
            web = [{"name": "web", "port": 80, "protocol": "TCP"},
                   {"name": "alt", "port": 80, "protocol": "TCP"}]  # fmt: skip
            nginx_ip = str(sandbox.slot("test/nginx").ipv4)
            kube.create(SLICES.path(namespace="test"), _slice("test", "nginx", web, [nginx_ip]))
            dns_ports = [{"name": "dns", "port": 53, "protocol": "UDP"},
                         {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]  # fmt: skip
            dns_ip = str(sandbox.slot("kube-system/kube-dns").ipv4)
            kube.create(SLICES.path(namespace="kube-system"),
                        _slice("kube-system", "kube-dns", dns_ports, [dns_ip]))  # fmt: skip
            proxy = ServiceProxy(kube, netns=sandbox.state.node_netns, node="node-1").start()
            started.append(proxy)
            dns = DnsServer(kube, netns=sandbox.slot("kube-system/kube-dns").netns).start()
            started.append(dns)
            assert proxy.wait_synced(10)
            assert dns.wait_synced(10)
            for pod in ("test/client", "test/nginx"):
                write_resolv_conf(sandbox.slot(pod).netns, namespace="test")
            world = World(sandbox, kube, proxy, dns, cluster.kubeconfig)
            yield world
        finally:
            for thing in reversed(started):
                (world.proxy if isinstance(thing, ServiceProxy) and world else thing).stop()
            for index in range(8):
                remove_resolv_conf(f"kf-{name}-{index}")
            down(name)
            cluster_down("svc")
            shutil.rmtree(tmp, ignore_errors=True)
    assert not Path(f"/etc/netns/kf-{name}-0").exists()


def test_client_resolves_and_reaches_nginx_through_the_cluster_ip(world: World) -> None:
    fetched = world.curl("test/client", "http://nginx.test")
    assert fetched.returncode == 0, fetched.stderr
    assert "Welcome to nginx!" in fetched.stdout
    # The second Service port reaches the pod's port 80 through the named targetPort.
    assert "Welcome to nginx!" in world.curl("test/client", "http://nginx.test:8080").stdout
    answer = world.query("test/client", "nginx.test.svc.cluster.local")
    assert answer is not None
    cluster_ip = world.kube.get(SERVICES.path(namespace="test", name="nginx"))["spec"]["clusterIP"]
    assert [str(rr.rdata) for rr in answer.rr] == [cluster_ip]
    assert answer.rr[0].ttl == 5
    missing = world.query("test/client", "nope.test.svc.cluster.local")
    assert missing is not None
    assert missing.header.rcode == RCODE.NXDOMAIN
    srv = world.query("test/client", "_web._tcp.nginx.test.svc.cluster.local", qtype="SRV")
    assert srv is not None
    assert srv.rr[0].rtype == QTYPE.SRV
    assert srv.rr[0].rdata.port == 80


def test_hairpin_a_pod_reaches_itself_through_its_service(world: World) -> None:
    fetched = world.curl("test/nginx", "http://nginx.test")
    assert fetched.returncode == 0, fetched.stderr
    assert "Welcome to nginx!" in fetched.stdout


def test_a_service_without_endpoints_is_refused_at_once(world: World) -> None:
    empty = {"metadata": {"name": "empty"}, "spec": {"ports": [{"port": 80}]}}
    world.kube.create(SERVICES.path(namespace="test"), empty)
    ip = world.kube.get(SERVICES.path(namespace="test", name="empty"))["spec"]["clusterIP"]
    assert world.proxy.wait_for(lambda ports: any(p.cluster_ip == ip for p in ports))
    began = time.monotonic()
    refused = world.curl("test/client", f"http://{ip}/")
    assert time.monotonic() - began < 2.0
    assert refused.returncode == 7, refused.stderr  # couldn't connect
    # A TCP reset (ECONNREFUSED), not an ICMP error, for the Service and for an address of the
    # range that is no Service; UDP gets ICMP port unreachable (ECONNREFUSED on a connected
    # socket's next receive).
    for address in (ip, "198.19.0.99"):
        with entered(world.netns("test/client")):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with tcp, udp:
            tcp.settimeout(2.0)
            with pytest.raises(ConnectionRefusedError):
                tcp.connect((address, 80))
            udp.settimeout(2.0)
            udp.connect((address, 80))
            udp.send(b"x")
            with pytest.raises(ConnectionRefusedError):
                udp.recv(10)


def test_dns_follows_a_deleted_service(world: World) -> None:
    brief = {"metadata": {"name": "brief"}, "spec": {"ports": [{"port": 80}]}}
    world.kube.create(SERVICES.path(namespace="test"), brief)
    name = "brief.test.svc.cluster.local"
    deadline = time.monotonic() + 5
    while (reply := world.query("test/client", name)) is None or not reply.rr:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    world.kube.delete(SERVICES.path(namespace="test", name="brief"))
    while (reply := world.query("test/client", name)) is None or reply.rr:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert reply.header.rcode == RCODE.NXDOMAIN


def test_default_deny_egress_breaks_dns_until_dns_is_allowed(world: World) -> None:
    try:
        world.apply(DENY_EGRESS)
        assert world.query("test/client", "nginx.test.svc.cluster.local") is None
        failed = world.curl("test/client", "http://nginx.test", timeout=2.0)
        assert failed.returncode in (6, 28), failed.stderr  # resolving timed out / failed
        world.apply(DENY_EGRESS + ALLOW_DNS)
        answer = world.query("test/client", "nginx.test.svc.cluster.local")
        assert answer is not None
        assert answer.rr
        blocked = world.curl("test/client", "http://nginx.test", timeout=1.0)
        assert blocked.returncode == 28, blocked.stderr  # resolved, then the connect times out
        world.apply(DENY_EGRESS + ALLOW_DNS + ALLOW_NGINX_EGRESS)
        assert "Welcome to nginx!" in world.curl("test/client", "http://nginx.test").stdout
    finally:
        world.apply("")


def test_s22_service_traffic_is_filtered_by_the_backends_ingress_policy(world: World) -> None:
    try:
        world.apply(NGINX_INGRESS)
        # Service port 8080, pod port 80: the policy's port 80 matches after DNAT.
        assert "Welcome to nginx!" in world.curl("test/client", "http://nginx.test:8080").stdout
        world.apply(NGINX_INGRESS_OTHER)
        denied = world.curl("test/client", "http://nginx.test:8080", timeout=1.0)
        assert denied.returncode == 28, denied.stderr
    finally:
        world.apply("")


def test_dnat_follows_endpoint_changes_quickly(world: World) -> None:
    """Median time from an EndpointSlice write to the new table in the kernel."""
    path = SLICES.path(namespace="test", name="nginx-abcde")
    nginx_ip = world.ip("test/nginx")
    latencies = []
    for round_ in range(20):
        current = world.kube.get(path)
        wanted = [] if round_ % 2 == 0 else [nginx_ip]
        current["endpoints"] = [{"addresses": [ip]} for ip in wanted]
        began = time.monotonic()
        world.kube.replace(path, current)
        assert world.proxy.wait_for(
            lambda ports, wanted=wanted: all(
                [b.address for b in p.backends] == wanted
                for p in ports
                if p.service == "test/nginx"
            )
        )
        latencies.append(time.monotonic() - began)
    median = statistics.median(latencies)
    print(
        f"\nDNAT programming latency: median {median * 1000:.1f} ms over {len(latencies)} changes"
    )
    assert median < 0.1
    assert "Welcome to nginx!" in world.curl("test/client", "http://nginx.test").stdout


def test_dns_query_latency(world: World) -> None:
    with entered(world.netns("test/client")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    request = DNSRecord.question("nginx.test.svc.cluster.local").pack()
    times = []
    with sock:
        sock.settimeout(1.0)
        for _ in range(300):
            began = time.perf_counter()
            sock.sendto(request, ("198.19.0.10", 53))
            sock.recvfrom(4096)
            times.append(time.perf_counter() - began)
    median = statistics.median(times)
    print(f"\nDNS query latency (UDP via ClusterIP): median {median * 1e6:.0f} us, "
          f"p99 {sorted(times)[int(len(times) * 0.99)] * 1e6:.0f} us")  # fmt: skip
    assert median < 0.01


def test_dual_stack_service_is_reached_over_ipv6_and_answers_aaaa(world: World) -> None:
    dual = {
        "metadata": {"name": "web6"},
        "spec": {"ipFamilyPolicy": "RequireDualStack", "selector": {"app": "nginx"},
                 "ports": [{"port": 80, "targetPort": "http"}]},
    }  # fmt: skip
    made = world.kube.create(SERVICES.path(namespace="test"), dual)
    v4, v6 = made["spec"]["clusterIPs"]
    six = _slice("test", "web6", [{"port": 80, "protocol": "TCP"}],
                 [str(world.sandbox.slot("test/nginx").ipv6)])  # fmt: skip
    six["addressType"] = "IPv6"
    world.kube.create(SLICES.path(namespace="test"), six)
    assert world.proxy.wait_for(lambda ports: any(p.cluster_ip == v6 and p.backends for p in ports))
    fetched = world.curl("test/client", f"http://[{v6}]/")
    assert "Welcome to nginx!" in fetched.stdout, fetched.stderr
    hairpin = world.curl("test/nginx", f"http://[{v6}]/")  # SNAT to fe80::1 on the way back
    assert "Welcome to nginx!" in hairpin.stdout, hairpin.stderr
    answer = world.query("test/client", "web6.test.svc.cluster.local", qtype="AAAA")
    assert answer is not None
    assert [str(rr.rdata) for rr in answer.rr] == [v6]
    # No IPv4 endpoints: the IPv4 address of the same Service is refused, not hung.
    refused = world.curl("test/client", f"http://{v4}/")
    assert refused.returncode == 7


def test_dns_over_tcp_and_headless_services(world: World) -> None:
    headless = {"metadata": {"name": "db"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}  # fmt: skip
    world.kube.create(SERVICES.path(namespace="test"), headless)
    nginx_ip = world.ip("test/nginx")
    slice_ = _slice("test", "db", [{"name": "pg", "port": 5432, "protocol": "TCP"}], [nginx_ip])
    slice_["endpoints"][0]["hostname"] = "db-0"
    world.kube.create(SLICES.path(namespace="test"), slice_)
    deadline = time.monotonic() + 5
    answer = None
    while time.monotonic() < deadline:
        answer = world.query("test/client", "db.test.svc.cluster.local")
        if answer is not None and answer.rr:
            break
        time.sleep(0.05)
    assert answer is not None
    assert [str(rr.rdata) for rr in answer.rr] == [nginx_ip]
    pod = world.query("test/client", "db-0.db.test.svc.cluster.local")
    assert pod is not None
    assert [str(rr.rdata) for rr in pod.rr] == [nginx_ip]
    with entered(world.netns("test/client")):
        tcp = socket.create_connection(("198.19.0.10", 53), timeout=2.0)
    with tcp:
        query = DNSRecord.question("nginx.test.svc.cluster.local").pack()
        tcp.sendall(len(query).to_bytes(2, "big") + query)
        size = int.from_bytes(tcp.recv(2), "big")
        data = b""
        while len(data) < size:
            data += tcp.recv(size - len(data))
    assert DNSRecord.parse(data).rr


def test_proxy_restart_keeps_the_rules_and_stop_removes_them(world: World) -> None:
    """A proxy that stops without cleaning (node component restart) leaves DNAT working; its
    successor takes over atomically; a clean stop removes the table and the routes."""
    node = world.sandbox.state.node_netns
    world.proxy.stop(clean=False)
    assert "Welcome to nginx!" in world.curl("test/client", "http://nginx.test").stdout
    successor = ServiceProxy(world.kube, netns=node, node="node-1").start()
    world.proxy = successor
    assert successor.wait_synced(10)
    assert "Welcome to nginx!" in world.curl("test/client", "http://nginx.test").stdout
    successor.stop()
    tables = subprocess.run(["ip", "netns", "exec", node, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "kubefence-svc" not in tables
    routes = subprocess.run(["ip", "netns", "exec", node, "ip", "route", "show", "dev", "lo"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "198.19.0.0/16" not in routes
    world.proxy = ServiceProxy(world.kube, netns=node, node="node-1").start()
    assert world.proxy.wait_synced(10)


def test_the_dns_image_runs_as_a_process_and_stops_on_sigterm(world: World) -> None:
    """`python -m kubefence.node._dns`, as the node component starts the kubefence/dns image:
    API access from the host namespace, sockets in the pod's."""
    netns = world.netns("test/nginx")
    process = subprocess.Popen(
        [sys.executable, "-m", "kubefence.node._dns", "--kubeconfig", str(world.kubeconfig),
         "--netns", netns, "--port", "5353"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        request = DNSRecord.question("kube-dns.kube-system.svc.cluster.local").pack()
        answer = None
        deadline = time.monotonic() + 20
        while answer is None and time.monotonic() < deadline:
            with entered(netns):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock:
                sock.settimeout(0.3)
                sock.sendto(request, ("127.0.0.1", 5353))
                try:
                    reply = DNSRecord.parse(sock.recvfrom(4096)[0])
                except (TimeoutError, ConnectionRefusedError):
                    continue
                if reply.header.rcode != RCODE.SERVFAIL:  # (SERVFAIL until the first list)
                    answer = reply
        assert answer is not None
        assert [str(rr.rdata) for rr in answer.rr] == ["198.19.0.10"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
