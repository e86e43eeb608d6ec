"""Parsing a ``v1`` Service: selector, ports and target ports, cluster IPs, type.

Why this module exists: Services are not policed by NetworkPolicy, but connections are often
written to them (``curl http://nginx.test``); kubefence resolves a Service to its backend pods
and a service port to the pods' target port. The ports are validated as the API server does,
so a named ``targetPort`` or a headless ``clusterIP: None`` is read as a cluster reads it.
Defaulting: a missing ``protocol`` is TCP (S18); a missing ``targetPort`` is ``port``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubefence.api._models import IPAddress, Origin, Protocol, Service, ServicePort
from kubefence.api._parse_fields import ObjectReader, show
from kubefence.api._tree import member_line
from kubefence.api._validate import dns1123_label_problems, port_number_problems, port_problems

__all__ = ["service"]

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
# Strict field validation: a misspelt ``targetPort`` would silently change the backend port.
_SERVICE_PORT_FIELDS = frozenset(
    {"name", "protocol", "appProtocol", "port", "targetPort", "nodePort"}
)


def service(
    obj: ObjectReader, raw: Mapping[Any, Any], *, namespace: str, name: str, origin: Origin
) -> Service:
    """``Service``: selector, ports (targetPort defaults to port), cluster IPs, type."""
    spec = obj.mapping(raw, "spec", "spec") or {}
    selector = (
        obj.labels(spec, "selector", "spec.selector") if spec.get("selector") is not None else None
    )
    raw_ports = obj.sequence(spec, "ports", "spec.ports") or []
    ports: list[ServicePort] = []
    names: set[str] = set()
    for p_path, entry, line in obj.entries(raw_ports, "spec.ports", Mapping, "an object (a port)"):
        obj.unknown_fields(entry, _SERVICE_PORT_FIELDS, p_path)
        port_name = obj.string(entry, "name", f"{p_path}.name")
        if port_name:
            problems = dns1123_label_problems(port_name)
            obj.unique_name(entry, f"{p_path}.name", port_name, problems, names)
        elif len(raw_ports) > 1:
            obj.fail(f"{p_path}.name", "is required when a service has more than one port", line)
        number = obj.integer(entry, "port", f"{p_path}.port")
        if number is None:
            if entry.get("port") is None:
                obj.fail(f"{p_path}.port", "is required (1-65535)", line)
            continue
        bad = port_number_problems(number)
        obj.invalid(f"{p_path}.port", number, bad, member_line(entry, "port"))
        target: int | str | None = obj.get(
            entry, "targetPort", f"{p_path}.targetPort", (int, str), "a port number or a port name"
        )
        if target is not None:
            t_line = member_line(entry, "targetPort")
            obj.invalid(f"{p_path}.targetPort", target, port_problems(target), t_line)
        protocol = obj.protocol(entry, p_path) or Protocol.TCP
        if not bad:
            ports.append(
                ServicePort(
                    port=number,
                    target_port=target if target is not None else number,
                    protocol=protocol,
                    name=port_name or None,
                )
            )
    service_type = obj.string(spec, "type", "spec.type") or "ClusterIP"
    if service_type not in _SERVICE_TYPES:
        obj.fail(
            "spec.type",
            f"unsupported value {show(service_type)}: supported values: "
            + ", ".join(f'"{t}"' for t in _SERVICE_TYPES),
            member_line(spec, "type"),
        )
    return Service(
        namespace=namespace,
        name=name,
        selector=selector,
        ports=tuple(ports),
        cluster_ips=_cluster_ips(obj, spec),
        type=service_type,
        origin=origin,
    )


def _cluster_ips(obj: ObjectReader, spec: Mapping[Any, Any]) -> tuple[IPAddress, ...]:
    texts: list[tuple[str, str, int | None]] = []
    single = obj.string(spec, "clusterIP", "spec.clusterIP")
    if single:
        texts.append((single, "spec.clusterIP", member_line(spec, "clusterIP")))
    many = obj.sequence(spec, "clusterIPs", "spec.clusterIPs") or []
    for at, text, line in obj.entries(many, "spec.clusterIPs", str, "a string"):
        if text:
            texts.append((text, at, line))
    headless = [entry for entry in texts if entry[0] != "None"]
    return obj.addresses(headless, alternative=" or None")
