"""Reading a live cluster's objects for analysis: read-only, paginated, as manifest dicts.

Why this module exists: ``matrix``, ``explain``, ``audit``, ``diff`` and ``verify`` accept
``--kubeconfig/--context/-A/-n`` so users can point kubefence at their real cluster. The objects
come back as the same dicts a manifest file would give (``apiVersion`` and ``kind`` filled in,
as a list response omits them per item), so everything downstream (validation, the engine)
is unchanged. Kinds the server does not serve (an admin-tier CRD not installed) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubefence.client._kube import ApiError, Kube, Resource

__all__ = ["LIVE_RESOURCES", "read_objects"]

# (resource, kind) read for analysis; namespaced ones honour the namespaces asked for.
LIVE_RESOURCES: tuple[tuple[Resource, str], ...] = (
    (Resource("", "v1", "namespaces", namespaced=False), "Namespace"),
    (Resource("", "v1", "nodes", namespaced=False), "Node"),
    (Resource("", "v1", "pods"), "Pod"),
    (Resource("", "v1", "services"), "Service"),
    (Resource("networking.k8s.io", "v1", "networkpolicies"), "NetworkPolicy"),
    (
        Resource(
            "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", namespaced=False
        ),
        "ClusterNetworkPolicy",
    ),
    (
        Resource("policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", namespaced=False),
        "AdminNetworkPolicy",
    ),
    (
        Resource(
            "policy.networking.k8s.io", "v1alpha1", "baselineadminnetworkpolicies", namespaced=False
        ),
        "BaselineAdminNetworkPolicy",
    ),
)

_SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


def read_objects(
    kube: Kube,
    *,
    namespaces: Iterable[str] | None = None,
    resources: Iterable[tuple[Resource, str]] = LIVE_RESOURCES,
) -> list[dict[str, Any]]:
    """Every object of ``resources`` (all namespaces when ``namespaces`` is None; cluster-scoped
    kinds always in full, since selectors reach across namespaces), as manifest dicts."""
    wanted = None if namespaces is None else sorted(set(namespaces))
    objects: list[dict[str, Any]] = []
    for resource, kind in resources:
        scopes: list[str | None] = (
            [None] if wanted is None or not resource.namespaced else list(wanted)
        )
        for scope in scopes:
            try:
                items, _ = kube.list(resource.path(namespace=scope))
            except ApiError as exc:
                if exc.code == 404 and resource.group:
                    break  # a CRD this cluster does not have
                raise
            for item in items:
                item["apiVersion"] = resource.api_version
                item["kind"] = kind
                metadata = item.get("metadata") or {}
                for name in _SERVER_FIELDS:
                    metadata.pop(name, None)
                objects.append(item)
    return objects
