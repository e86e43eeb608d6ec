"""The EndpointSlice controller: for each Service with a selector, the pods behind it.

Why this module exists: kube-proxy-lite (ClusterIP -> pod DNAT), cluster DNS and ``kubectl
describe svc`` learn a Service's backends from ``discovery.k8s.io/v1`` EndpointSlices. For each
Service with a selector this loop keeps slices labelled ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``, owned by the
Service (so they go when it goes), holding one endpoint per matching pod that has an address of
the slice's family: ``addresses`` the pod IP, ``conditions.ready``/``serving`` the pod's Ready
condition (always true with ``publishNotReadyAddresses``), ``terminating`` while it is being
deleted, ``nodeName`` and a ``targetRef`` to the pod. Finished pods (Succeeded/Failed) are left
out. Ports are resolved per pod: a named ``targetPort`` is looked up in that pod's container
ports, so pods that number a name differently land in different slices (each slice has one
port list, as the API requires); a port a pod does not declare is left out for that pod. At
most 100 endpoints go in one slice. Slices are rewritten only when their content changes, and
a Service that loses its selector loses its managed slices.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubefence.client import ApiError, Event
from kubefence.controllers._objects import (
    ENDPOINTSLICES,
    PODS,
    SERVICES,
    is_ready,
    matches_map,
    meta,
    owner_reference,
)
from kubefence.controllers._runtime import Controller, Hub

__all__ = ["EndpointSliceController", "desired_slices", "resolve_ports", "services_selecting"]

Obj = dict[str, Any]
SERVICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS = 100


def resolve_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[Obj, ...]:
    """The Service's ports as this pod serves them (named targetPorts looked up in the pod)."""
    named: dict[tuple[str, str], int] = {}
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name"):
                named[(str(port["name"]), str(port.get("protocol") or "TCP"))] = int(
                    port["containerPort"]
                )
    resolved = []
    for port in (service.get("spec") or {}).get("ports") or ():
        protocol = str(port.get("protocol") or "TCP")
        target = port.get("targetPort", port.get("port"))
        number: int | None
        if isinstance(target, int):
            number = target
        elif isinstance(target, str) and target.isdigit():
            number = int(target)
        else:
            number = named.get((str(target), protocol))
        if number is None:
            continue
        entry: Obj = {"name": str(port.get("name") or ""), "port": number, "protocol": protocol}
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        resolved.append(entry)
    return tuple(resolved)


def _family(address: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    except ValueError:
        return ""


def _pod_addresses(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    found = [str(entry.get("ip")) for entry in status.get("podIPs") or () if entry.get("ip")]
    if status.get("podIP") and status["podIP"] not in found:
        found.insert(0, str(status["podIP"]))
    return found


def desired_slices(
    service: Mapping[str, Any], pods: list[Obj]
) -> list[tuple[str, tuple[Obj, ...], list[Obj]]]:
    """(addressType, ports, endpoints) for each slice the Service should have, in a stable
    order (by family, then ports, endpoints by pod name, at most 100 per slice)."""
    spec = service.get("spec") or {}
    families = [str(f) for f in spec.get("ipFamilies") or ["IPv4"]]
    publish = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[str, str], tuple[str, tuple[Obj, ...], list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: str(meta(p).get("name"))):
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        ports = resolve_ports(service, pod)
        m = meta(pod)
        ready = publish or is_ready(pod)
        terminating = bool(m.get("deletionTimestamp"))
        for address in _pod_addresses(pod):
            family = _family(address)
            if family not in families:
                continue
            endpoint: Obj = {
                "addresses": [address],
                "conditions": {"ready": ready and not terminating, "serving": ready,
                               "terminating": terminating},
                "targetRef": {"kind": "Pod", "namespace": m.get("namespace"),
                              "name": m.get("name"), "uid": m.get("uid")},
            }  # fmt: skip
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                endpoint["nodeName"] = node
            group_key = (family, repr(ports))
            groups.setdefault(group_key, (family, ports, []))[2].append(endpoint)
    result = []
    for group_key in sorted(groups):
        family, ports, endpoints = groups[group_key]
        for start in range(0, len(endpoints), MAX_ENDPOINTS):
            result.append((family, ports, endpoints[start : start + MAX_ENDPOINTS]))
    if not result:
        # An empty slice says "no endpoints" (rather than "not yet handled"), as upstream.
        result.append((families[0] if families else "IPv4", resolve_ports(service, {}), []))
    return result


def services_selecting(in_namespace: Callable[[str], list[Obj]], event: Event) -> list[str]:
    """The keys of the Services whose selector matches the pod of ``event`` before or after
    the change: the Services whose backends it may have changed."""
    namespace = str(meta(event.obj).get("namespace"))
    labels = [meta(event.obj).get("labels") or {}]
    if event.old is not None:
        labels.append(meta(event.old).get("labels") or {})
    return [
        f"{namespace}/{meta(service).get('name')}"
        for service in in_namespace(namespace)
        if any(matches_map((service.get("spec") or {}).get("selector"), found) for found in labels)
    ]


class EndpointSliceController(Controller):
    name = "endpointslice"
    workers = 2

    def __init__(self, hub: Hub, stop: threading.Event) -> None:
        super().__init__(hub, stop)
        self.services = hub.subscribe(SERVICES, lambda e: self.queue.add(e.key))
        self.pods = hub.subscribe(PODS, self._on_pod)
        self.slices = hub.subscribe(ENDPOINTSLICES, self._on_slice)
        self._created: dict[str, tuple[set[str], float]] = {}  # service -> names not yet seen

    def _on_pod(self, event: Event) -> None:
        for key in services_selecting(self.services.in_namespace, event):
            self.queue.add(key)

    def _on_slice(self, event: Event) -> None:
        labels = meta(event.obj).get("labels") or {}
        if labels.get(MANAGED_BY) == CONTROLLER_NAME and labels.get(SERVICE_LABEL):
            self.queue.add(f"{meta(event.obj).get('namespace')}/{labels[SERVICE_LABEL]}")

    def _managed(self, namespace: str, name: str) -> list[Obj]:
        return [
            s for s in self.slices.in_namespace(namespace)
            if (meta(s).get("labels") or {}).get(SERVICE_LABEL) == name
            and (meta(s).get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME
        ]  # fmt: skip

    def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        existing = sorted(self._managed(namespace, name), key=lambda s: str(meta(s).get("name")))
        made, when = self._created.get(key, (set(), 0.0))
        if made - {str(meta(s).get("name")) for s in existing} and time.monotonic() - when < 10:
            return 0.1  # a slice we created is not in the cache yet: look again shortly
        self._created.pop(key, None)
        selector = (service or {}).get("spec", {}).get("selector")
        if service is None or not selector:
            if service is not None:  # selector removed: our slices go (GC handles deletion)
                for stale in existing:
                    self._delete(stale)
            return None
        pods = [p for p in self.pods.in_namespace(namespace)
                if matches_map(selector, meta(p).get("labels"))]  # fmt: skip
        wanted = desired_slices(service, pods)
        labels = {SERVICE_LABEL: name, MANAGED_BY: CONTROLLER_NAME}
        owner = owner_reference(service, kind="Service", api_version="v1")
        unused = list(existing)
        for family, ports, endpoints in wanted:
            body: Obj = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "addressType": family,
                "ports": list(ports),
                "endpoints": endpoints,
            }
            match = next((s for s in unused if s.get("addressType") == family
                          and (s.get("ports") or []) == list(ports)), None)  # fmt: skip
            match = match or next((s for s in unused if s.get("addressType") == family), None)
            if match is None:
                body["metadata"] = {"generateName": f"{name}-", "namespace": namespace,
                                    "labels": labels, "ownerReferences": [owner]}  # fmt: skip
                created = self.kube.create(ENDPOINTSLICES.path(namespace=namespace), body)
                names, _ = self._created.setdefault(key, (set(), time.monotonic()))
                names.add(str(meta(created).get("name")))
                continue
            unused.remove(match)
            same = (
                (match.get("endpoints") or []) == endpoints
                and (match.get("ports") or []) == list(ports)
                and all((meta(match).get("labels") or {}).get(k) == v for k, v in labels.items())
            )
            if same:
                continue
            m = meta(match)
            body["metadata"] = {**m, "labels": {**(m.get("labels") or {}), **labels},
                                "ownerReferences": [owner]}  # fmt: skip
            self.kube.replace(ENDPOINTSLICES.path(namespace=namespace, name=m.get("name")), body)
        for stale in unused:
            self._delete(stale)
        return None

    def _delete(self, obj: Obj) -> None:
        m = meta(obj)
        try:
            self.kube.delete(ENDPOINTSLICES.path(namespace=m.get("namespace"), name=m.get("name")))
        except ApiError as exc:
            if exc.code != 404:
                raise
