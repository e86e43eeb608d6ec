"""The cluster DNS zone name by name (pure: no namespace, no root) and the resolv.conf files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from kubefence.node._dns import remove_resolv_conf, resolv_conf, write_resolv_conf
from kubefence.node._dns_zone import Zone

SERVICES: list[dict[str, Any]] = [
    {"metadata": {"namespace": "test", "name": "nginx"},
     "spec": {"clusterIP": "198.19.3.4", "clusterIPs": ["198.19.3.4", "fd00:6b66:5e::4"],
              "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]}},
    {"metadata": {"namespace": "test", "name": "db"},
     "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
    {"metadata": {"namespace": "test", "name": "ext"},
     "spec": {"type": "ExternalName", "externalName": "example.org"}},
]  # fmt: skip
SLICES: list[dict[str, Any]] = [
    {"metadata": {"namespace": "test", "name": "db-1",
                  "labels": {"kubernetes.io/service-name": "db"}},
     "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432}],
     "endpoints": [{"addresses": ["198.18.0.7"], "hostname": "db-0"},
                   {"addresses": ["198.18.0.8"]},
                   {"addresses": ["198.18.0.9"], "conditions": {"ready": False}}]},
]  # fmt: skip


def ask(name: str, qtype: str = "A", *, limit: int = 0, zone: Zone | None = None) -> DNSRecord:
    zone = zone or Zone(lambda: (SERVICES, SLICES), domain="cluster.local")
    return DNSRecord.parse(zone.answer(DNSRecord.question(name, qtype).pack(), limit=limit))


def rdata(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr)


def test_service_names_answer_their_cluster_ips_per_family() -> None:
    assert rdata(ask("nginx.test.svc.cluster.local")) == ["198.19.3.4"]
    assert rdata(ask("NGINX.Test.svc.cluster.local.")) == ["198.19.3.4"]
    assert rdata(ask("nginx.test.svc.cluster.local", "AAAA")) == ["fd00:6b66:5e::4"]
    reply = ask("nginx.test.svc.cluster.local", "MX")  # exists, no such data: NOERROR, SOA
    assert reply.header.rcode == RCODE.NOERROR
    assert not reply.rr
    assert reply.auth[0].rtype == QTYPE.SOA
    assert all(rr.ttl == 5 for rr in ask("nginx.test.svc.cluster.local").rr)
    assert ask("nginx.test.svc.cluster.local").header.aa == 1


def test_headless_services_answer_ready_endpoints_and_hostnames() -> None:
    assert rdata(ask("db.test.svc.cluster.local")) == ["198.18.0.7", "198.18.0.8"]
    assert rdata(ask("db-0.db.test.svc.cluster.local")) == ["198.18.0.7"]
    assert rdata(ask("198-18-0-8.db.test.svc.cluster.local")) == ["198.18.0.8"]
    assert ask("db-9.db.test.svc.cluster.local").header.rcode == RCODE.NXDOMAIN


def test_srv_for_named_ports_only() -> None:
    srv = ask("_http._tcp.nginx.test.svc.cluster.local", "SRV")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in srv.rr] == [
        (80, "nginx.test.svc.cluster.local.")
    ]
    headless = ask("_pg._tcp.db.test.svc.cluster.local", "SRV")
    assert sorted(str(rr.rdata.target) for rr in headless.rr) == [
        "198-18-0-8.db.test.svc.cluster.local.",
        "db-0.db.test.svc.cluster.local.",
    ]
    assert ask("_http._udp.nginx.test.svc.cluster.local", "SRV").header.rcode == RCODE.NXDOMAIN


def test_pods_external_names_reverse_and_unknown_names() -> None:
    assert rdata(ask("198-18-0-3.test.pod.cluster.local")) == ["198.18.0.3"]
    assert rdata(ask("fd00-6b66--3.test.pod.cluster.local", "AAAA")) == ["fd00:6b66::3"]
    cname = ask("ext.test.svc.cluster.local")
    assert cname.rr[0].rtype == QTYPE.CNAME
    assert str(cname.rr[0].rdata) == "example.org."
    assert rdata(ask("4.3.19.198.in-addr.arpa", "PTR")) == ["nginx.test.svc.cluster.local."]
    for name in ("nope.test.svc.cluster.local", "nginx.other.svc.cluster.local",
                 "nginx.test", "example.org", "x.y.cluster.local"):  # fmt: skip
        reply = ask(name)
        assert reply.header.rcode == RCODE.NXDOMAIN, name
        assert reply.auth[0].rtype == QTYPE.SOA


def test_long_udp_answers_are_truncated_and_bad_packets_ignored() -> None:
    many = [{**SLICES[0], "endpoints": [{"addresses": [f"198.18.1.{i}"]} for i in range(1, 60)]}]
    zone = Zone(lambda: (SERVICES, many), domain="cluster.local")
    assert ask("db.test.svc.cluster.local", zone=zone, limit=512).header.tc == 1
    assert len(ask("db.test.svc.cluster.local", zone=zone).rr) == 59
    assert Zone(lambda: ([], []), domain="cluster.local").answer(b"\x00\x01garbage") == b""
    early = Zone(lambda: (SERVICES, SLICES), domain="cluster.local").answer(
        DNSRecord.question("nginx.test.svc.cluster.local").pack(), ready=False
    )
    assert DNSRecord.parse(early).header.rcode == RCODE.SERVFAIL


def test_the_zone_follows_invalidation() -> None:
    services: list[dict[str, Any]] = []
    zone = Zone(lambda: (services, []), domain="cluster.local")
    assert ask("nginx.test.svc.cluster.local", zone=zone).header.rcode == RCODE.NXDOMAIN
    services.append(SERVICES[0])
    zone.invalidate()
    assert rdata(ask("nginx.test.svc.cluster.local", zone=zone)) == ["198.19.3.4"]


def test_resolv_conf_is_kubelets_and_is_removed(tmp_path: Path) -> None:
    assert resolv_conf("test") == (
        "search test.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 198.19.0.10\noptions ndots:5\n"
    )
    path = write_resolv_conf("kf-x-1", namespace="test", etc_netns=tmp_path)
    assert path == tmp_path / "kf-x-1" / "resolv.conf"
    assert path.read_text() == resolv_conf("test")
    remove_resolv_conf("kf-x-1", etc_netns=tmp_path)
    assert not (tmp_path / "kf-x-1").exists()
    remove_resolv_conf("kf-x-1", etc_netns=tmp_path)  # twice is fine


def test_a_message_with_a_header_but_no_parse_gets_formerr_or_notimp() -> None:
    """Like a real name server, a datagram with a query header that does not parse is answered
    (FORMERR, or NOTIMP for an unknown opcode) with its id, so probes of port 53 see the
    server; a response or a runt is still ignored."""
    zone = Zone(lambda: ([], []), domain="cluster.local")
    probe = b"kubefence-probe\n"  # what kubefence's UDP probes send
    reply = zone.answer(probe)
    assert reply[:2] == probe[:2]
    assert reply[2] & 0x80  # QR: a response
    assert reply[3] & 0x0F == 4  # NOTIMP: the header's opcode (12) is unknown
    query = bytearray(DNSRecord.question("x.cluster.local").pack())
    reply = zone.answer(bytes(query[:12]) + b"\xff")  # a query header, then nonsense
    assert reply[3] & 0x0F == 1  # FORMERR
    assert zone.answer(bytes([0, 1, 0x80]) + b"\xff" * 13) == b""  # a response: no answer
