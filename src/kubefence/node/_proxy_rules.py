"""Service DNAT as data and as nftables text: Services + EndpointSlices -> one ``inet`` table.

Why this module exists: the node's kube-proxy-lite (``_proxy``) must turn what the API says
(Services, and the EndpointSlices the controller keeps) into kernel rules, and that translation
is the part worth testing without root: it is pure (no I/O) so unit tests can read the table.

What the table does, in the node's network namespace (where every pod's traffic is routed):

* ``nat`` hooks ``prerouting`` (pods' traffic) and ``output`` (the node's own, hostNetwork pods)
  look ``daddr . l4proto . dport`` up in one verdict map per family and jump to the Service
  port's chain, whose one rule DNATs to a ready endpoint's address and port picked by
  ``numgen random mod N`` from a map (one chain per Service port, none per endpoint: the
  table stays small). The port comes from the EndpointSlice port of the same name,
  where the EndpointSlice controller resolved a named ``targetPort`` against each pod's
  container ports, so the policies of the ``inet kubefence`` filter table (forward hook, after
  prerouting) see the backend pod's address and container port (S22).
* A Service port without ready endpoints is rejected as kube-proxy does: TCP with a reset, other
  protocols with ICMP port unreachable, from ``filter`` chains on ``forward``/``output`` (NAT
  chains may not reject). Any other packet to an unused address or port of the service range
  is rejected the same way, so no connection to a ClusterIP hangs.
* Hairpin (a pod reaching itself through its Service): ``postrouting`` SNATs a DNATed packet
  whose source and destination are the same endpoint (a set of ``addr . addr`` pairs) to the
  node's gateway address, so the pod's reply returns through the node (and its conntrack entry)
  instead of going straight to itself, which would break the connection. The pod then sees
  the gateway as the client; an ingress policy that isolates it must admit that address.

Not done (documented in docs/services.md): NodePort, LoadBalancer, externalIPs,
sessionAffinity ClientIP and topology-aware routing; ``internalTrafficPolicy: Local`` is.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TABLE",
    "Backend",
    "ServicePort",
    "render_table",
    "render_update",
    "service_ports",
]

Obj = Mapping[str, Any]
TABLE = "kubefence-svc"
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
        return 6 if ":" in self.cluster_ip else 4

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.cluster_ip, self.protocol, self.port)

    @property
    def element(self) -> str:
        """The key of the lookup maps: ``daddr . l4proto . dport``."""
        return f"{self.cluster_ip} . {_PROTOCOLS[self.protocol]} . {self.port}"

    @property
    def chain(self) -> str:
        """A stable chain name per Service port, so an update can replace just that chain."""
        address = self.cluster_ip.replace(".", "_").replace(":", "_")
        return f"svc_{address}_{self.protocol.lower()}_{self.port}"


@functools.lru_cache(maxsize=65536)
def _canonical(text: str) -> tuple[int, str] | None:
    """(version, canonical text) of an address, None when it is none (parsing is the hot path
    of a table of thousands of endpoints, and the same addresses come back on every change)."""
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return None
    return parsed.version, str(parsed)


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
            canonical = _canonical(str(cluster_ip))
            if canonical is None:
                continue  # "None": headless
            family, cluster_ip = canonical
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
                        cluster_ip=cluster_ip,
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
                canonical = _canonical(str(address))
                if canonical is not None and canonical[0] == family:
                    found.add(Backend(canonical[1], target))
    return tuple(sorted(found))


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
    for sp in ports:
        if not sp.backends:
            empty[sp.family].append(sp.element)
            continue
        lookup[sp.family].append(f"{sp.element} : goto {sp.chain}")
        chains += [
            f"  chain {sp.chain} {{",
            f'    comment "{_label(sp)}"',
            f"    {_rule(sp)}",
            "  }",
        ]
    hairpin = _hairpin(ports)
    for family, kind, name in ((4, "ipv4_addr", "services4"), (6, "ipv6_addr", "services6")):
        lines += _map(name, kind, lookup[family])
    for family, kind, name in ((4, "ipv4_addr", "noendpoints4"), (6, "ipv6_addr", "noendpoints6")):
        lines += _map(name, kind, [f"{key} : goto refuse" for key in empty[family]])
    for family, kind, name in ((4, "ipv4_addr", "hairpin4"), (6, "ipv6_addr", "hairpin6")):
        lines += [f"  set {name} {{", f"    type {kind} . {kind}"]
        pairs = sorted(f"{a} . {a}" for a in hairpin if (":" in a) == (family == 6))
        if pairs:
            lines.append(f"    elements = {{ {', '.join(pairs)} }}")
        lines.append("  }")
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
        f"    ct status dnat ip saddr . ip daddr @hairpin4 snat ip to {hairpin_v4}",
        f"    ct status dnat ip6 saddr . ip6 daddr @hairpin6 snat ip6 to {hairpin_v6}",
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


def _label(sp: ServicePort) -> str:
    return f"{sp.service}:{sp.port_name or sp.port}/{sp.protocol}"


def _rule(sp: ServicePort) -> str:
    """The one rule of a Service port's chain: DNAT to an endpoint picked at random."""
    ip = "ip" if sp.family == 4 else "ip6"
    targets = ", ".join(f"{i} : {b.address} . {b.port}" for i, b in enumerate(sp.backends))
    return (
        f"meta l4proto {_PROTOCOLS[sp.protocol]} dnat {ip} to numgen random mod "
        f"{len(sp.backends)} map {{ {targets} }}"
    )


def _hairpin(ports: Iterable[ServicePort]) -> set[str]:
    return {b.address for sp in ports for b in sp.backends}


def render_update(old: Sequence[ServicePort], new: Sequence[ServicePort]) -> str:
    """One ``nft -f`` transaction that turns the table rendered for ``old`` into the table for
    ``new`` (``render_table`` with the same ranges), touching only the Service ports that
    changed: constant cost per change however many Services there are. "" when nothing did.
    """
    before = {sp.key: sp for sp in old}
    after = {sp.key: sp for sp in new}
    out: list[str] = []
    added: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        was: ServicePort | None = before.get(key)
        now = after.get(key)
        if was == now:
            continue
        if (
            was is not None
            and now is not None
            and was.backends
            and now.backends
            and _label(was) == _label(now)
        ):  # only the endpoints changed: the map still points at the chain, replace its rule
            added += [f"flush chain inet {TABLE} {now.chain}",
                      f"add rule inet {TABLE} {now.chain} {_rule(now)}"]  # fmt: skip
            continue
        if was is not None:
            lookup = "services" if was.backends else "noendpoints"
            out.append(f"delete element inet {TABLE} {lookup}{was.family} {{ {was.element} }}")
            if was.backends:
                out.append(f"delete chain inet {TABLE} {was.chain}")
        if now is None:
            continue
        if now.backends:
            added += [
                f'add chain inet {TABLE} {now.chain} {{ comment "{_label(now)}" ; }}',
                f"add rule inet {TABLE} {now.chain} {_rule(now)}",
                f"add element inet {TABLE} services{now.family} "
                f"{{ {now.element} : goto {now.chain} }}",
            ]
        else:
            refuse = f"{{ {now.element} : goto refuse }}"
            added.append(f"add element inet {TABLE} noendpoints{now.family} {refuse}")
    was_pins, now_pins = _hairpin(old), _hairpin(new)
    for address in sorted(was_pins - now_pins):
        family = 6 if ":" in address else 4
        out.append(f"delete element inet {TABLE} hairpin{family} {{ {address} . {address} }}")
    for address in sorted(now_pins - was_pins):
        family = 6 if ":" in address else 4
        added.append(f"add element inet {TABLE} hairpin{family} {{ {address} . {address} }}")
    if not out and not added:
        return ""
    return "\n".join(out + added) + "\n"
