"""What an endpoint written by a user means: a pod, a hostNetwork pod, a node, a Service, an IP.

Why this module exists: ``decide`` takes endpoints as text (``ns/pod``, an IPv4/IPv6 address,
``node:NAME``, ``svc:ns/name``), and the same text must mean the same thing in the CLI, the
Python API and the tests. The rules, in order:

| written             | means                                                                 |
|---------------------|-----------------------------------------------------------------------|
| ``node:NAME``       | the node; its IPs are those of hostNetwork pods on it (S23, S24)      |
| ``svc:NS/NAME``     | the Service; as a destination it is translated to its backends (S22)  |
| an address of a pod | that pod, reached at that address (not hostNetwork pods: see below)   |
| a Service ClusterIP | that Service                                                          |
| a node's address    | that node (known from hostNetwork pods, whose IPs are their node's)   |
| any other address   | external: only the other side's policies apply (S05)                  |
| ``NS/POD``          | that pod; a hostNetwork pod acts as its node's IP (S23)               |

Anything else (an unknown pod, a bare word) is an ``InputError`` naming what was expected.

Address families: when either endpoint is given as an address, a pod on the other side is
reached at its first IP of that family (``align_families``). A ``SideQuery`` is one side of a
resolved connection, as the NetworkPolicy side and the admin tiers both take it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from kubefence.api import ContainerPort, IPAddress, Pod, Protocol, Service
from kubefence.errors import InputError
from kubefence.semantics._algebra import Direction
from kubefence.semantics._decision import Endpoint, EndpointKind
from kubefence.semantics._index import PolicyIndex
from kubefence.semantics._settings import Settings

__all__ = [
    "ResolvedEndpoint",
    "SideQuery",
    "align_families",
    "parse_address",
    "pod_endpoint",
    "resolve_endpoint",
    "with_family",
]

_NODE_PREFIX = "node:"
_SERVICE_PREFIX = "svc:"


@dataclass(frozen=True, slots=True)
class ResolvedEndpoint:
    """An endpoint with the objects behind it; ``addresses`` are the IPs ipBlocks are tested
    against (a pod's explicit address, a node's known IPs, an external address)."""

    public: Endpoint
    pod: Pod | None = None
    service: Service | None = None
    addresses: tuple[IPAddress, ...] = ()

    @property
    def kind(self) -> EndpointKind:
        return self.public.kind


class SideQuery(NamedTuple):
    """One side of a connection on a resolved port number: egress of ``subject`` towards
    ``other``, or ingress of ``subject`` from ``other``. ``destination_ports`` are the ports
    named policy ports resolve against (only a selectable pod destination's; S21, S23).

    A NamedTuple, not a frozen dataclass: two are built per decision, and a frozen dataclass's
    field-by-field ``object.__setattr__`` made ``decide`` measurably slower."""

    direction: Direction
    subject: ResolvedEndpoint
    other: ResolvedEndpoint
    port: int
    protocol: Protocol
    destination_ports: Sequence[ContainerPort] | None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IPv4/IPv6 address (``[v6]`` accepted), or None when it is not one."""
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def pod_endpoint(pod: Pod, address: IPAddress | None, settings: Settings) -> ResolvedEndpoint:
    """``pod`` (reached at ``address`` when given); a hostNetwork pod acts as its node (S23)."""
    kind = (
        EndpointKind.HOST_NETWORK_POD
        if pod.host_network and not settings.host_network_selectable
        else EndpointKind.POD
    )
    public = Endpoint(kind=kind, name=pod.key, address=address, node=pod.node)
    return ResolvedEndpoint(public=public, pod=pod, addresses=(address,) if address else ())


def _unknown_pod(index: PolicyIndex, key: str) -> InputError:
    namespace = key.partition("/")[0]
    known = sorted(k for k in index.pod_by_key if k.startswith(f"{namespace}/"))
    if known:
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        return InputError(f"unknown pod {key!r}; pods in namespace {namespace}: {shown}")
    return InputError(f"unknown pod {key!r}; namespace {namespace!r} has no pods in the input")


def resolve_endpoint(index: PolicyIndex, text: str, *, settings: Settings) -> ResolvedEndpoint:
    """Resolve one endpoint as described in the module docstring; raises ``InputError``."""
    text = text.strip()
    if text.startswith(_NODE_PREFIX):
        node = text[len(_NODE_PREFIX) :]
        if not node:
            raise InputError("empty node name in 'node:NAME'")
        public = Endpoint(kind=EndpointKind.NODE, name=text, node=node)
        return ResolvedEndpoint(public=public, addresses=index.node_ips.get(node, ()))
    if text.startswith(_SERVICE_PREFIX):
        key = text[len(_SERVICE_PREFIX) :]
        service = index.service_by_key.get(key)
        if service is None:
            raise InputError(f"unknown service {key!r} (expected svc:NAMESPACE/NAME)")
        public = Endpoint(kind=EndpointKind.SERVICE, name=service.key)
        return ResolvedEndpoint(public=public, service=service)
    address = parse_address(text)
    if address is not None:
        pod = index.pod_by_ip.get(address)
        if pod is not None:
            return pod_endpoint(pod, address, settings)
        service = index.service_by_ip.get(address)
        if service is not None:
            public = Endpoint(kind=EndpointKind.SERVICE, name=service.key, address=address)
            return ResolvedEndpoint(public=public, service=service)
        node_name = index.node_by_ip.get(address)
        if node_name is not None:
            public = Endpoint(
                kind=EndpointKind.NODE,
                name=f"{_NODE_PREFIX}{node_name}",
                address=address,
                node=node_name,
            )
            return ResolvedEndpoint(public=public, addresses=(address,))
        public = Endpoint(kind=EndpointKind.EXTERNAL, name=str(address), address=address)
        return ResolvedEndpoint(public=public, addresses=(address,))
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise InputError(
            f"cannot understand endpoint {text!r}: expected NAMESPACE/POD, an IP address, "
            "node:NAME or svc:NAMESPACE/NAME"
        )
    pod = index.pod_by_key.get(text)
    if pod is None:
        raise _unknown_pod(index, text)
    return pod_endpoint(pod, None, settings)


def align_families(
    source: ResolvedEndpoint, destination: ResolvedEndpoint
) -> tuple[ResolvedEndpoint, ResolvedEndpoint]:
    """Both endpoints in the family of the address given on either side (see the module docs);
    ``InputError`` when the two addresses are of different families."""
    families = {e.public.address.version for e in (source, destination) if e.public.address}
    if len(families) > 1:
        raise InputError("source and destination addresses are of different IP families")
    if not families:
        return source, destination
    (family,) = families
    return with_family(source, family), with_family(destination, family)


def with_family(endpoint: ResolvedEndpoint, family: int) -> ResolvedEndpoint:
    """A pod named without an address, reached at its first IP of ``family`` (if it has one)."""
    if endpoint.pod is None or endpoint.public.address is not None:
        return endpoint
    address = next((ip for ip in endpoint.pod.ips if ip.version == family), None)
    if address is None:
        return endpoint
    public = dataclasses.replace(endpoint.public, address=address)
    return dataclasses.replace(endpoint, public=public, addresses=(address,))
