"""A pod as the API server stores it, read into the model the agent needs, ten times faster.

Why this module exists: the first list of a node's agent in a cluster of ten thousand pods
spent most of its full sync validating pods the API server had already validated. The agent
reads a pod's name, namespace, labels, container ports, placement, phase and addresses, so
``pod_record`` reads those (and the container names and images, which the model carries)
and checks them as ``kubefence.sources.objects`` would; the result is the model that parse
gives. Anything it does not expect (a field of the wrong type, a value that would be a
problem, a field of ``metadata`` kubefence does not know) makes it answer ``None``, and the
caller parses the object the full way, with its problems reported. Fields the agent never
reads (annotations' values, init containers' contents) are the API server's to validate.
Policies are always parsed the full way: they are few and decide what is allowed.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from kubefence.api import ContainerPort, IPAddress, Labels, Origin, Pod, Protocol

# The same checks the full parse makes (they are not part of ``kubefence.api``'s interface).
from kubefence.api._parse_fields import METADATA_FIELDS
from kubefence.api._validate import (
    dns1123_label_problems,
    dns1123_subdomain_problems,
    label_value_problems,
    port_name_problems,
    qualified_name_problems,
)

__all__ = ["GONE", "pod_record"]

ORIGIN = Origin("<objects>", 0, 0)  # what one parse of one object says
GONE = "gone"  # a finished pod: the full parse leaves it out too
_FINISHED = frozenset({"Succeeded", "Failed"})
_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_PORT_FIELDS = frozenset({"name", "hostPort", "containerPort", "protocol", "hostIP"})


@lru_cache(maxsize=1 << 14)
def _labels(items: tuple[tuple[str, str], ...]) -> Labels | None:
    """One shared ``Labels`` per label set (None: a key or value the full parse refuses)."""
    for key, value in items:
        if key.__class__ is not str or value.__class__ is not str:
            return None
        if qualified_name_problems(key) or label_value_problems(value):
            return None
    return Labels(dict(items))


@lru_cache(maxsize=1 << 14)
def _port(number: int, protocol: Protocol, name: str | None) -> ContainerPort:
    return ContainerPort(port=number, protocol=protocol, name=name)


@lru_cache(maxsize=1 << 14)
def _namespace_ok(name: str) -> bool:
    return not dns1123_label_problems(name)


@lru_cache(maxsize=1 << 12)
def _container_name_ok(name: str) -> bool:
    return not dns1123_label_problems(name)


def _subdomain_ok(name: str) -> bool:
    return not dns1123_subdomain_problems(name)


def _address(text: object) -> IPAddress | None:
    """An IP address as ``ipaddress.ip_address`` reads it, parsed by the C library."""
    if text.__class__ is not str:
        return None
    assert isinstance(text, str)
    try:
        if ":" in text:
            if "%" in text or "." in text:
                return None  # zones, embedded IPv4: left to the full parse
            return IPv6Address(socket.inet_pton(socket.AF_INET6, text))
        return IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        return None


def _ports(container: Mapping[str, Any]) -> list[ContainerPort] | None:
    raw = container.get("ports")
    if raw is None:
        return []
    if raw.__class__ is not list:
        return None
    found: list[ContainerPort] = []
    names: set[str] = set()
    for entry in raw:
        if entry.__class__ is not dict or not entry.keys() <= _PORT_FIELDS:
            return None
        number = entry.get("containerPort")
        if number.__class__ is not int or not 1 <= number <= 65535:
            return None
        host_port = entry.get("hostPort")
        if host_port is not None and (
            host_port.__class__ is not int or not 0 <= host_port <= 65535
        ):
            return None
        name = entry.get("name")
        if name is not None:
            if name.__class__ is not str:
                return None
            if name:
                if port_name_problems(name) or name in names:
                    return None
                names.add(name)
        given = entry.get("protocol")
        if given is not None and given.__class__ is not str:
            return None
        protocol = _PROTOCOLS.get(given or "TCP")
        if protocol is None:
            return None
        found.append(_port(number, protocol, name or None))
    return found


def pod_record(obj: Mapping[str, Any]) -> Pod | str | None:
    """The ``Pod`` the full parse of ``obj`` gives, ``GONE`` for a finished pod, or None when
    ``obj`` has anything this reader does not check (parse it the full way)."""
    metadata = obj.get("metadata")
    spec = obj.get("spec")
    status = obj.get("status", {})
    if metadata.__class__ is not dict or spec.__class__ is not dict:
        return None
    if status.__class__ is not dict or not metadata.keys() <= METADATA_FIELDS:
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if name.__class__ is not str or namespace.__class__ is not str or not name or not namespace:
        return None
    if not _namespace_ok(namespace) or not _subdomain_ok(name):
        return None
    labels = metadata.get("labels")
    annotations = metadata.get("annotations")
    labels = {} if labels is None else labels
    annotations = {} if annotations is None else annotations
    if labels.__class__ is not dict or annotations.__class__ is not dict:
        return None
    try:
        shared = _labels(tuple(labels.items()))
    except TypeError:  # an unhashable key or value
        return None
    if shared is None:
        return None
    if any(v.__class__ is not str or k.__class__ is not str for k, v in annotations.items()):
        return None
    containers = spec.get("containers")
    if containers.__class__ is not list or not containers:
        return None
    ports: list[ContainerPort] = []
    images: list[str] = []
    seen: set[str] = set()
    for container in containers:
        if container.__class__ is not dict:
            return None
        container_name, image = container.get("name"), container.get("image")
        if container_name.__class__ is not str or image.__class__ is not str or not image:
            return None
        if container_name in seen or not _container_name_ok(container_name):
            return None
        seen.add(container_name)
        images.append(image)
        found = _ports(container)
        if found is None:
            return None
        ports.extend(found)
    for kind in ("initContainers", "ephemeralContainers"):
        extra = spec.get(kind)
        if extra is not None and (
            extra.__class__ is not list or any(c.__class__ is not dict for c in extra)
        ):
            return None
    host_network = spec.get("hostNetwork", False)
    node = spec.get("nodeName")
    if host_network.__class__ is not bool:
        return None
    if node is not None and (node.__class__ is not str or (node and not _subdomain_ok(node))):
        return None
    phase = status.get("phase")
    if phase is not None and phase.__class__ is not str:
        return None
    texts: list[object] = []
    pod_ip = status.get("podIP")
    if pod_ip is not None and pod_ip.__class__ is not str:
        return None
    if pod_ip:
        texts.append(pod_ip)
    pod_ips = status.get("podIPs")
    if pod_ips is not None:
        if pod_ips.__class__ is not list:
            return None
        for entry in pod_ips:
            if entry.__class__ is not dict:
                return None
            if entry.get("ip") is not None:
                texts.append(entry["ip"])
    ips: list[IPAddress] = []
    for index, text in enumerate(texts):
        if index and text in texts[:index]:
            continue  # podIP is podIPs[0]: parsed once
        address = _address(text)
        if address is None:
            return None
        if address not in ips:
            ips.append(address)
    if phase in _FINISHED:
        return GONE
    return Pod(
        namespace=namespace,
        name=name,
        labels=shared,
        ports=tuple(ports),
        ips=tuple(ips),
        host_network=host_network,
        phase=phase,
        node=node or None,
        images=tuple(images),
        origin=ORIGIN,
    )
