"""The cluster DNS zone: which names exist and what they answer, from Services and slices.

Why this module exists: the DNS server (``_dns``) is sockets and informers; what a query means
is here, pure, so it can be tested name by name without a network namespace. It follows the
Kubernetes DNS specification (the one CoreDNS's ``kubernetes`` plugin implements), with TTL 5:

* ``<svc>.<ns>.svc.cluster.local``: A/AAAA of the ClusterIPs; a headless Service answers its
  ready endpoints' addresses; an ExternalName Service a CNAME;
* ``<hostname>.<svc>.<ns>.svc.cluster.local``: an endpoint with a hostname (StatefulSet pods);
* ``_<port>._<proto>.<svc>.<ns>.svc.cluster.local``: SRV for named ports;
* ``<a-b-c-d>.<ns>.pod.cluster.local``: the address spelled in the name (kube-dns's "pods
  insecure" mode: not checked against pods);
* PTR for ClusterIPs; NXDOMAIN (with the zone's SOA, for negative caching) for any other name
  of the zone and for names outside it (the sandbox has no upstream resolver); NOERROR with no
  answer when the name exists but not with that type.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord

__all__ = ["TTL", "Zone", "ZoneIndex", "build_index"]

Obj = Mapping[str, Any]
TTL = 5
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class Named:
    """One Service as DNS sees it."""

    cluster_ips: tuple[str, ...]  # empty for headless and ExternalName
    external: str  # ExternalName target, or ""
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port) of named ports
    endpoints: tuple[tuple[str, str], ...]  # (address, hostname) of ready endpoints (headless)


@dataclass(frozen=True, slots=True)
class ZoneIndex:
    services: dict[tuple[str, str], Named] = field(default_factory=dict)
    reverse: dict[str, str] = field(default_factory=dict)  # ClusterIP -> fqdn


def build_index(services: Iterable[Obj], slices: Iterable[Obj], *, domain: str) -> ZoneIndex:
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for item in slices:
        meta = item.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((str(meta.get("namespace", "")), str(owner)), []).append(item)
    index = ZoneIndex()
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        ips = tuple(
            str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if _is_ip(ip)
        )
        external = str(spec.get("externalName") or "") if spec.get("type") == "ExternalName" else ""
        ports = tuple(
            (str(p["name"]), str(p.get("protocol") or "TCP"), int(p["port"]))
            for p in spec.get("ports") or []
            if p.get("name") and isinstance(p.get("port"), int)
        )
        endpoints: list[tuple[str, str]] = []
        if not ips and not external:
            for item in by_service.get(key, []):
                for endpoint in item.get("endpoints") or []:
                    if (endpoint.get("conditions") or {}).get("ready") is False:
                        continue
                    for address in endpoint.get("addresses") or []:
                        if _is_ip(address):
                            endpoints.append((str(address), str(endpoint.get("hostname") or "")))
        index.services[key] = Named(ips, external, ports, tuple(sorted(set(endpoints))))
        for ip in ips:
            index.reverse[str(ipaddress.ip_address(ip))] = f"{key[1]}.{key[0]}.svc.{domain}."
    return index


def _is_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return False
    return True


class Zone:
    """Answers queries from an index rebuilt (lazily) after ``invalidate()``."""

    def __init__(
        self, source: Callable[[], tuple[Iterable[Obj], Iterable[Obj]]], *, domain: str
    ) -> None:
        self.domain = domain.strip(".").lower()
        self._source = source
        self._lock = threading.Lock()
        self._index: ZoneIndex | None = None

    def invalidate(self) -> None:
        self._index = None

    def index(self) -> ZoneIndex:
        index = self._index
        if index is None:
            with self._lock:
                services, slices = self._source()
                index = self._index = build_index(services, slices, domain=self.domain)
        return index

    def answer(self, data: bytes, *, limit: int = 0, ready: bool = True) -> bytes:
        """The reply to one query message; ``limit`` (UDP) truncates a longer reply (TC).
        Before the first list (``ready`` False) every query gets SERVFAIL, which resolvers
        retry, rather than an NXDOMAIN they would cache."""
        try:
            query = DNSRecord.parse(data)
        except Exception:  # dnslib raises its own error types on malformed input
            return _malformed_reply(data)
        reply = query.reply(ra=1, aa=1)
        if query.header.opcode != 0 or len(query.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if query.header.opcode else RCODE.FORMERR
            return bytes(reply.pack())
        if not ready:
            reply.header.rcode = RCODE.SERVFAIL
            return bytes(reply.pack())
        question = query.questions[0]
        name = str(question.qname).rstrip(".").lower()
        qtype = QTYPE[question.qtype]
        records, exists = self._resolve(name, qtype)
        for record in records:
            reply.add_answer(record)
        if not records:
            if not exists:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa())
        packed = bytes(reply.pack())
        if limit and len(packed) > limit:
            packed = bytes(reply.truncate().pack())
        return packed

    def _soa(self) -> RR:
        zone = f"{self.domain}."
        times = (1, 7200, 1800, 86400, TTL)  # serial refresh retry expire minimum (negative TTL)
        return RR(
            zone, QTYPE.SOA, rdata=SOA(f"ns.dns.{zone}", f"hostmaster.{zone}", times), ttl=TTL
        )

    def _resolve(self, name: str, qtype: str) -> tuple[list[RR], bool]:
        """(answers, whether the name exists)."""
        if name.endswith((".in-addr.arpa", ".ip6.arpa")):
            return self._reverse(name, qtype)
        suffix = f".{self.domain}"
        if name == self.domain:
            return ([self._soa()] if qtype == "SOA" else []), True
        if not name.endswith(suffix):
            return [], False
        labels = name[: -len(suffix)].split(".")
        if len(labels) == 3 and labels[2] == "pod":
            return _pod(name, labels[0], qtype)
        if len(labels) >= 3 and labels[-1] == "svc":
            return self._service(name, labels[:-1], qtype)
        return [], False

    def _service(self, name: str, labels: list[str], qtype: str) -> tuple[list[RR], bool]:
        index = self.index()
        if len(labels) == 2:
            named = index.services.get((labels[1], labels[0]))
            if named is None:
                return [], False
            if named.external:
                return [RR(name, QTYPE.CNAME, rdata=CNAME(named.external + "."), ttl=TTL)], True
            addresses = named.cluster_ips or tuple(a for a, _ in named.endpoints)
            return _addresses(name, addresses, qtype), True
        if len(labels) == 3:
            named = index.services.get((labels[2], labels[1]))
            if named is None:
                return [], False
            if labels[0].startswith("_"):
                return [], False  # `_port._proto` has four labels; `_x.svc.ns` is no name
            hits = [a for a, host in named.endpoints if host == labels[0]]
            hits += [a for a, _ in named.endpoints if _dashed(a) == labels[0]]
            return (_addresses(name, hits, qtype), True) if hits else ([], False)
        if len(labels) == 4 and labels[0].startswith("_") and labels[1].startswith("_"):
            named = index.services.get((labels[3], labels[2]))
            if named is None:
                return [], False
            port_name, protocol = labels[0][1:], labels[1][1:].upper()
            ports = [p for n, proto, p in named.ports if n == port_name and proto == protocol]
            if not ports:
                return [], False
            if qtype not in ("SRV", "ANY"):
                return [], True
            base = f"{labels[2]}.{labels[3]}.svc.{self.domain}."
            targets = [base] if named.cluster_ips else [
                f"{host or _dashed(address)}.{base}" for address, host in named.endpoints
            ]  # fmt: skip
            weight = 100 // max(len(targets), 1)
            return [
                RR(name, QTYPE.SRV, rdata=SRV(0, weight, ports[0], target), ttl=TTL)
                for target in targets
            ], True
        return [], False

    def _reverse(self, name: str, qtype: str) -> tuple[list[RR], bool]:
        try:
            if name.endswith(".in-addr.arpa"):
                address = ".".join(reversed(name[: -len(".in-addr.arpa")].split(".")))
            else:
                nibbles = "".join(reversed(name[: -len(".ip6.arpa")].split(".")))
                address = ":".join(nibbles[i : i + 4] for i in range(0, 32, 4))
            key = str(ipaddress.ip_address(address))
        except ValueError:
            return [], False
        target = self.index().reverse.get(key)
        if target is None:
            return [], False
        if qtype not in ("PTR", "ANY"):
            return [], True
        return [RR(name, QTYPE.PTR, rdata=PTR(target), ttl=TTL)], True


def _malformed_reply(data: bytes) -> bytes:
    """The answer to a message that does not parse: FORMERR (NOTIMP for an unknown opcode)
    with the query's id and no records, as name servers answer (RFC 1035 4.1.1), when at least
    a query header came; nothing otherwise. Probes that send non-DNS datagrams to port 53 thus
    see the server, as they would see a real cluster DNS."""
    if len(data) < 12 or data[2] & 0x80:  # too short for a header, or itself a response
        return b""
    opcode = (data[2] >> 3) & 0x0F
    rcode = RCODE.NOTIMP if opcode else RCODE.FORMERR
    flags = 0x8000 | (opcode << 11) | int(rcode)
    return struct.pack("!HHHHHH", int.from_bytes(data[:2], "big"), flags, 0, 0, 0, 0)


def _dashed(address: str) -> str:
    return address.replace(".", "-").replace(":", "-")


def _pod(name: str, dashed: str, qtype: str) -> tuple[list[RR], bool]:
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(
            dashed.replace("-", ".")
        )
    except ValueError:
        try:
            address = ipaddress.IPv6Address(dashed.replace("-", ":"))
        except ValueError:
            return [], False
    return _addresses(name, [str(address)], qtype), True


def _addresses(name: str, addresses: Iterable[str], qtype: str) -> list[RR]:
    out: list[RR] = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        if address.version == 4 and qtype in ("A", "ANY"):
            out.append(RR(name, QTYPE.A, rdata=A(str(address)), ttl=TTL))
        elif address.version == 6 and qtype in ("AAAA", "ANY"):
            out.append(RR(name, QTYPE.AAAA, rdata=AAAA(str(address)), ttl=TTL))
    return out
