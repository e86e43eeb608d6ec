"""The test suite's one set of builders for namespaces, pods and policies.

Why this module exists: tests state their clusters in a few readable lines. Before, each test
module carried its own ``pod``/``policy``/``namespace`` helpers, copies that drifted apart
(different defaults, different argument shapes). Two families live here, each defined once:

- **manifests** (``namespace``, ``pod``, ``policy``, ``policy_of``, ``inventory``): dicts as
  ``kubectl`` would read them, loaded through the real loader, so defaulting and validation are
  the API server's. Use these unless the layer under test takes models.
- **models** (``namespace_model``, ``pod_model``, ``policy_model``, ``selector``): the frozen
  ``kubefence.api`` objects built directly, for layers tested below the loader (the nftables
  plan, the sandbox planner) or with fields no manifest sets.

Random clusters for hypothesis are in ``tests/property/strategies.py``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from kubefence.api import (
    METADATA_NAME_LABEL,
    ContainerPort,
    Inventory,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyType,
    Rule,
)
from kubefence.sources.objects import inventory_from_objects

__all__ = [
    "inventory",
    "namespace",
    "namespace_model",
    "pod",
    "pod_model",
    "policy",
    "policy_model",
    "policy_of",
    "selector",
]

# --- manifests, through the real loader --------------------------------------------------------


def inventory(*documents: str | Mapping[str, Any]) -> Inventory:
    """Load YAML texts (each may hold several documents) and dicts as one validated cluster."""
    objects: list[Mapping[str, Any]] = []
    for doc in documents:
        if isinstance(doc, str):
            objects.extend(d for d in yaml.safe_load_all(doc) if d is not None)
        else:
            objects.append(doc)
    return inventory_from_objects(objects)


def namespace(name: str, **labels: str) -> dict[str, Any]:
    """A Namespace manifest with ``labels`` (the loader adds ``kubernetes.io/metadata.name``)."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    key: str,
    *,
    ip: str | None = None,
    ips: tuple[str, ...] = (),
    ports: Sequence[Mapping[str, Any]] = (),
    host_network: bool = False,
    node: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """A Pod manifest ``ns/name`` with labels, container ports (manifest dicts such as
    ``{"containerPort": 80, "name": "http"}``), addresses (``ip`` or dual-stack ``ips``) and
    placement (``node``, ``host_network``)."""
    ns, name = key.split("/")
    container = {"name": "c", "image": "img", "ports": [dict(p) for p in ports]}
    spec: dict[str, Any] = {"containers": [container]}
    if host_network:
        spec["hostNetwork"] = True
    if node is not None:
        spec["nodeName"] = node
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec,
    }
    addresses = list(ips) or ([ip] if ip else [])
    if addresses:
        obj["status"] = {"podIP": addresses[0], "podIPs": [{"ip": a} for a in addresses]}
    return obj


def policy_of(
    spec: str | Mapping[str, Any], *, name: str = "p", namespace: str = "test"
) -> dict[str, Any]:
    """A NetworkPolicy manifest around ``spec``: YAML text, or a mapping (a dict is used as
    given, so a test may still edit it)."""
    if isinstance(spec, str):
        body: dict[str, Any] = yaml.safe_load(spec)
    else:
        body = spec if isinstance(spec, dict) else dict(spec)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def policy(key: str, spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy manifest ``ns/name`` whose spec is YAML text or a dict."""
    ns, name = key.split("/")
    return policy_of(spec, name=name, namespace=ns)


# --- models, built directly --------------------------------------------------------------------


def selector(**labels: str) -> LabelSelector:
    """A matchLabels selector; ``selector()`` is ``{}``, which selects everything in scope."""
    return LabelSelector(match_labels=Labels(labels))


def namespace_model(name: str, **labels: str) -> Namespace:
    """A Namespace with ``labels`` and its ``kubernetes.io/metadata.name`` label (S16)."""
    return Namespace(name=name, labels=Labels({**labels, METADATA_NAME_LABEL: name}))


def pod_model(
    key: str,
    *ips: str,
    labels: Mapping[str, str] | None = None,
    ports: Sequence[ContainerPort] = (),
    host_network: bool = False,
    node: str | None = None,
) -> Pod:
    """A Pod ``ns/name`` with its addresses, labels, container ports and placement."""
    ns, name = key.split("/")
    return Pod(
        namespace=ns,
        name=name,
        labels=Labels(labels or {}),
        ports=tuple(ports),
        ips=tuple(ipaddress.ip_address(ip) for ip in ips),
        host_network=host_network,
        node=node,
    )


def policy_model(
    key: str,
    pod_selector: LabelSelector,
    types: tuple[PolicyType, ...],
    *,
    ingress: Sequence[Rule] = (),
    egress: Sequence[Rule] = (),
) -> NetworkPolicy:
    """A NetworkPolicy ``ns/name`` as the API server stores it (``types`` already defaulted)."""
    ns, name = key.split("/")
    return NetworkPolicy(
        namespace=ns,
        name=name,
        pod_selector=pod_selector,
        policy_types=types,
        ingress=tuple(ingress),
        egress=tuple(egress),
    )
