"""The Endpoints controller: the legacy ``v1/Endpoints`` object of each Service with a selector.

Why this module exists: EndpointSlices replaced Endpoints, but upstream still keeps both, and
``kubectl get endpoints``/``kubectl get ep``, older tools and tutorials read Endpoints. For each
Service with a selector this loop keeps an Endpoints object of the same name: one subset per
distinct list of resolved ports, ready pods under ``addresses`` and the others under
``notReadyAddresses`` (all under ``addresses`` with ``publishNotReadyAddresses``), each with
``ip``, ``nodeName`` and a ``targetRef``, built from the same pod selection and port resolution
as the slices (``endpointslices.desired_slices``, the Service's primary family only, as
upstream). It is labelled ``endpoints.kubernetes.io/managed-by: endpoint-controller`` and
deleted with its Service; an Endpoints object of a Service without a selector is left to its
author.
"""

from __future__ import annotations

import threading
from typing import Any

from kubefence.client import ApiError, Event, Resource
from kubefence.controllers._objects import PODS, SERVICES, matches_map, meta
from kubefence.controllers._runtime import Controller, Hub
from kubefence.controllers.endpointslices import desired_slices, services_selecting

__all__ = ["EndpointsController", "endpoint_subsets"]

Obj = dict[str, Any]
ENDPOINTS = Resource("", "v1", "endpoints")
MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"


def endpoint_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The ``subsets`` of a Service's Endpoints (primary family only)."""
    families = (service.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    subsets: dict[str, Obj] = {}
    for family, ports, endpoints in desired_slices(service, pods):
        if family != families[0] or not endpoints:
            continue
        key = repr(ports)
        subset = subsets.setdefault(key, {"ports": [dict(p) for p in ports]})
        for endpoint in endpoints:
            address: Obj = {"ip": endpoint["addresses"][0], "targetRef": endpoint["targetRef"]}
            if endpoint.get("nodeName"):
                address["nodeName"] = endpoint["nodeName"]
            bucket = "addresses" if endpoint["conditions"]["ready"] else "notReadyAddresses"
            subset.setdefault(bucket, []).append(address)
    for subset in subsets.values():
        for entry in subset["ports"]:
            if not entry.get("name"):
                entry.pop("name", None)
    return [subsets[k] for k in sorted(subsets)]


class EndpointsController(Controller):
    name = "endpoints"
    workers = 2

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        super().__init__(hub, stop)
        self.services = hub.subscribe(SERVICES, lambda e: self.queue.add(e.key))
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.endpoints = hub.subscribe(ENDPOINTS, self._on_endpoints)

    def _on_pod(self, event: Event) -> None:
        for key in services_selecting(self.services.in_namespace, event):
            self.queue.add(key)

    def _on_endpoints(self, event: Event) -> None:
        if (meta(event.obj).get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME:
            self.queue.add(event.key)

    def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        current = self.endpoints.get(key)
        ours = current is not None and (
            (meta(current).get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME
        )
        selector = ((service or {}).get("spec") or {}).get("selector")
        if service is None or not selector:
            if ours:
                self._delete(namespace, name)
            return None
        pods = [p for p in self.pods.in_namespace(namespace)
                if matches_map(selector, meta(p).get("labels"))]  # fmt: skip
        subsets = endpoint_subsets(service, pods)
        labels = {**(meta(service).get("labels") or {}), MANAGED_BY: CONTROLLER_NAME}
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "subsets": subsets}
        if current is None:
            body["metadata"] = {"name": name, "namespace": namespace, "labels": labels}
            try:
                self.kube.create(ENDPOINTS.path(namespace=namespace), body)
            except ApiError as exc:
                if exc.code != 409:
                    raise
            return None
        same_labels = all((meta(current).get("labels") or {}).get(k) == v
                          for k, v in labels.items())  # fmt: skip
        if (current.get("subsets") or []) == subsets and same_labels:
            return None
        m = meta(current)
        body["metadata"] = {**m, "labels": {**(m.get("labels") or {}), **labels}}
        self.kube.replace(ENDPOINTS.path(namespace=namespace, name=name), body)
        return None

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self.kube.delete(ENDPOINTS.path(namespace=namespace, name=name))
        except ApiError as exc:
            if exc.code != 404:
                raise
