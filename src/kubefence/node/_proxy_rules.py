"""Service DNAT as data and as nftables text: Services + EndpointSlices -> one ``inet`` table.

Why this module exists: the node's kube-proxy-lite (``_proxy``) must turn what the API says
(Services, and the EndpointSlices the controller keeps) into kernel rules, and that translation
is the part worth testing without root: it is pure (no I/O) so unit tests can read the table.

What the table does, in the node's network namespace (where every pod's traffic is routed):

* ``nat`` hooks ``prerouting`` (pods' traffic) and ``output`` (the node's own, hostNetwork pods)
  look ``daddr . l4proto . dport`` up in one verdict map per family and jump to the Service
  port's chain, which picks a ready endpoint with ``numgen random mod N`` and DNATs to the
  endpoint's address and port. The port comes from the EndpointSlice port of the same name,
  where the EndpointSlice controller resolved a named ``targetPort`` against each pod's
  container ports, so the policies of the ``inet kubefence`` filter table (forward hook, after
  prerouting) see the backend pod's address and container port (S22).
* A Service port without ready endpoints is rejected as kube-proxy does: TCP with a reset, other
  protocols with ICMP port unreachable, from ``filter`` chains on ``forward``/``output`` (NAT
  chains may not reject). Any other packet to an unused address or port of the service range
  is rejected the same way, so no connection to a ClusterIP hangs.
* Hairpin (a pod reaching itself through its Service): the endpoint chain marks the connection
  (conntrack mark: the policy table resets packet marks) when its source is the endpoint
  itself, and ``postrouting`` SNATs marked connections to the node's
  gateway address, so the pod's reply returns through the node (and its conntrack entry)
  instead of going straight to itself, which would break the connection. The pod then sees
  the gateway as the client; an ingress policy that isolates it must admit that address.

Not done (documented in docs/services.md): NodePort, LoadBalancer, externalIPs,
sessionAffinity ClientIP and topology-aware routing; ``internalTrafficPolicy: Local`` is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TABLE",
    "Backend",
    "ServicePort",
    "render_table",
    "service_ports",
]

Obj = Mapping[str, Any]
TABLE = "kubefence-svc"
HAIRPIN_MARK = 0x4000
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True, slots=True, order=True)
class Backend:
    """One ready endpoint of a Service port: the pod's address and the port to DNAT to."""

    address: str
    port: int


@dataclass(frozen=True, slots=True, order=True)
class ServicePort:
    """One (ClusterIP, protocol, port) of a Service with the endpoints it balances over."""

    cluster_ip: str
    protocol: str  # TCP | UDP | SCTP
    port: int
    service: str  # namespace/name
    port_name: str
    backends: tuple[Backend, ...]

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.cluster_ip).version


def _ready(endpoint: Obj) -> bool:
    """Ready, as kube-proxy reads it: ``conditions.ready`` true or absent (nil means ready)."""
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False


def service_ports(
    services: Iterable[Obj], slices: Iterable[Obj], *, node: str = ""
) -> list[ServicePort]:
    """Every ClusterIP port of ``services`` with its ready endpoints from ``slices``.

    Headless Services (``clusterIP: None``), ExternalName Services and Services without a
    ClusterIP yet are skipped: there is nothing to DNAT. Endpoints are matched by the Service
    port's name (``""`` for an unnamed port) and protocol, and by address family. A Service
    with ``internalTrafficPolicy: Local`` uses only the endpoints on ``node`` (when given).
    """
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for item in slices:
        meta = item.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((str(meta.get("namespace", "")), str(owner)), []).append(item)
    out: list[ServicePort] = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        cluster_ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip]
        for cluster_ip in cluster_ips:
            try:
                family = ipaddress.ip_address(cluster_ip).version
            except ValueError:
                continue  # "None": headless
            for port in spec.get("ports") or []:
                protocol = str(port.get("protocol") or "TCP")
                if protocol not in _PROTOCOLS or not isinstance(port.get("port"), int):
                    continue
                port_name = str(port.get("name") or "")
                local = node if spec.get("internalTrafficPolicy") == "Local" else ""
                backends = _backends(
                    by_service.get((namespace, name), []), port_name, protocol, family, local
                )
                out.append(
                    ServicePort(
                        cluster_ip=str(ipaddress.ip_address(cluster_ip)),
                        protocol=protocol,
                        port=int(port["port"]),
                        service=f"{namespace}/{name}",
                        port_name=port_name,
                        backends=backends,
                    )
                )
    out.sort()
    return out


def _backends(
    slices: Sequence[Obj], port_name: str, protocol: str, family: int, node: str
) -> tuple[Backend, ...]:
    found: set[Backend] = set()
    address_type = "IPv4" if family == 4 else "IPv6"
    for item in slices:
        if item.get("addressType", address_type) != address_type:
            continue
        target = None
        for port in item.get("ports") or []:
            if (
                str(port.get("name") or "") == port_name
                and str(port.get("protocol") or "TCP") == protocol
                and isinstance(port.get("port"), int)
            ):
                target = int(port["port"])
        if target is None:
            continue
        for endpoint in item.get("endpoints") or []:
            if not _ready(endpoint) or (node and endpoint.get("nodeName") != node):
                continue
            for address in endpoint.get("addresses") or []:
                try:
                    parsed = ipaddress.ip_address(address)
                except ValueError:
                    continue
                if parsed.version == family:
                    found.add(Backend(str(parsed), target))
    return tuple(sorted(found))


def _dest(backend: Backend) -> str:
    parsed = ipaddress.ip_address(backend.address)
    return f"{parsed}:{backend.port}" if parsed.version == 4 else f"[{parsed}]:{backend.port}"


def render_table(
    ports: Sequence[ServicePort],
    *,
    service_ranges: Sequence[str] = ("198.19.0.0/16", "fd00:6b66:5e::/112"),
    keep_ranges: Sequence[str] = ("198.19.255.0/24",),
    hairpin_v4: str = "169.254.1.1",
    hairpin_v6: str = "fe80::1",
) -> str:
    """The whole ``inet kubefence-svc`` table, as one ``nft -f`` transaction that replaces the
    previous one atomically (``table`` + ``delete table`` + the new table).

    ``keep_ranges`` are parts of a service range that are not Services (the node underlay):
    never rejected. ``hairpin_v4``/``v6`` are the node addresses a pod reaches itself from.
    """
    lines = [
        "# Generated by kubefence (node kube-proxy-lite): Service ClusterIP -> endpoint DNAT.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
    ]
    lookup: dict[int, list[str]] = {4: [], 6: []}
    empty: dict[int, list[str]] = {4: [], 6: []}
    chains: list[str] = []
    for index, sp in enumerate(ports):
        proto = _PROTOCOLS[sp.protocol]
        key = f"{sp.cluster_ip} . {proto} . {sp.port}"
        if not sp.backends:
            empty[sp.family].append(key)
            continue
        chain = f"svc{index}"
        lookup[sp.family].append(f"{key} : goto {chain}")
        label = f"{sp.service}:{sp.port_name or sp.port}/{sp.protocol}"
        ip = "ip" if sp.family == 4 else "ip6"
        targets = [f"{i} : goto {chain}ep{i}" for i in range(len(sp.backends))]
        chains += [
            f"  chain {chain} {{",
            f'    comment "{label}"',
            f"    numgen random mod {len(sp.backends)} vmap {{ {', '.join(targets)} }}",
            "  }",
        ]
        for i, backend in enumerate(sp.backends):
            chains += [
                f"  chain {chain}ep{i} {{",
                f"    {ip} saddr {backend.address} ct mark set ct mark | {HAIRPIN_MARK:#x}",
                f"    meta l4proto {proto} dnat {ip} to {_dest(backend)}",
                "  }",
            ]
    for family, kind, name in ((4, "ipv4_addr", "services4"), (6, "ipv6_addr", "services6")):
        lines += _map(name, kind, lookup[family])
    for family, kind, name in ((4, "ipv4_addr", "noendpoints4"), (6, "ipv6_addr", "noendpoints6")):
        lines += _map(name, kind, [f"{key} : goto refuse" for key in empty[family]])
    v4 = [r for r in service_ranges if ipaddress.ip_network(r).version == 4]
    v6 = [r for r in service_ranges if ipaddress.ip_network(r).version == 6]
    keep4 = [r for r in keep_ranges if ipaddress.ip_network(r).version == 4]
    keep6 = [r for r in keep_ranges if ipaddress.ip_network(r).version == 6]
    lines += [
        "  chain services {",
        "    ip daddr . meta l4proto . th dport vmap @services4",
        "    ip6 daddr . meta l4proto . th dport vmap @services6",
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    jump services",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    jump services",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f"    ct mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} meta nfproto ipv4 snat ip to "
        f"{hairpin_v4}",
        f"    ct mark & {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} meta nfproto ipv6 snat ip6 to "
        f"{hairpin_v6}",
        "  }",
        "  chain refuse {",
        "    meta l4proto tcp reject with tcp reset",
        "    reject",
        "  }",
        "  chain unserved {",
        "    ip daddr . meta l4proto . th dport vmap @noendpoints4",
        "    ip6 daddr . meta l4proto . th dport vmap @noendpoints6",
    ]
    for keep in keep4:
        lines.append(f"    ip daddr {keep} return")
    for keep in keep6:
        lines.append(f"    ip6 daddr {keep} return")
    for ranged in v4:
        lines.append(f"    ip daddr {ranged} goto refuse")
    for ranged in v6:
        lines.append(f"    ip6 daddr {ranged} goto refuse")
    lines += ["  }"]
    for hook in ("forward", "output"):
        lines += [
            f"  chain filter-{hook} {{",
            f"    type filter hook {hook} priority filter - 10; policy accept;",
            "    ct state new jump unserved",
            "  }",
        ]
    lines += chains
    lines += ["}", ""]
    return "\n".join(lines)


def _map(name: str, key_type: str, elements: Sequence[str]) -> list[str]:
    out = [
        f"  map {name} {{",
        f"    type {key_type} . inet_proto . inet_service : verdict",
    ]
    if elements:
        out.append(f"    elements = {{ {', '.join(elements)} }}")
    out.append("  }")
    return out
