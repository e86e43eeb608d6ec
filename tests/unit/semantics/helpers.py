"""Small builders for semantics unit tests: manifests as YAML text, pods and policies in one line.

Why this module exists: each S-rule test states its cluster in a few readable lines of YAML
(through the real loader, so defaulting is the API server's), instead of repeating dicts.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubefence.api import Inventory
from kubefence.sources.objects import inventory_from_objects

__all__ = ["inventory", "namespace", "pod", "policy"]


def inventory(*documents: str | dict[str, Any]) -> Inventory:
    """Load YAML texts (each may hold several documents) and dicts as one cluster."""
    objects: list[dict[str, Any]] = []
    for doc in documents:
        if isinstance(doc, str):
            objects.extend(d for d in yaml.safe_load_all(doc) if d is not None)
        else:
            objects.append(doc)
    return inventory_from_objects(objects)


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    key: str,
    *,
    ip: str | None = None,
    ips: tuple[str, ...] = (),
    ports: tuple[dict[str, Any], ...] = (),
    host_network: bool = False,
    node: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """A pod ``ns/name`` with labels, container ports, addresses and placement."""
    ns, name = key.split("/")
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "img", "ports": list(ports)}]}
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


def policy(key: str, spec: str | dict[str, Any]) -> dict[str, Any]:
    """A NetworkPolicy ``ns/name`` whose spec is given as YAML text or a dict."""
    ns, name = key.split("/")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml.safe_load(spec) if isinstance(spec, str) else spec,
    }
