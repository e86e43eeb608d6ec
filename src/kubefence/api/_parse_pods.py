"""Parsing pods and workloads: pod specs, container ports, pod IPs, and the workload kinds whose
templates become pods.

Why this module exists: kubefence decides connections between pods, and pods come either as Pod
objects or from a workload's pod template. Both are read by one ``PodSpec`` parser, so a named
container port or an image is understood the same way whichever kind carried it.

Defaulting applied here (see docs/semantics.md):

- S18: a missing container port ``protocol`` is TCP.
- Workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
  ReplicationController) become pods ``<workload>-<i>`` from their template, ``replicas``
  (default 1) of them; DaemonSet, Job and CronJob give one. Pods in phase Succeeded or Failed
  are left out (their IPs may already belong to other pods), with a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubefence.api._models import ContainerPort, IPAddress, Labels, LabelSelector, Origin, Pod
from kubefence.api._parse_fields import METADATA_FIELDS, ObjectReader
from kubefence.api._parse_selector import label_selector
from kubefence.api._selectors import selector_matches
from kubefence.api._tree import member_line
from kubefence.api._validate import (
    dns1123_label_problems,
    dns1123_subdomain_problems,
    port_name_problems,
    port_number_problems,
)

__all__ = ["pod", "workload_pods"]

MAX_REPLICAS = 100_000  # each replica becomes a pod in memory; a typo must not exhaust it
_ONE_POD_KINDS = frozenset({"DaemonSet", "Job", "CronJob"})
_SELECTOR_REQUIRED = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

# Strict field validation, limited to structs whose typos would silently change an answer.
_TEMPLATE_FIELDS = frozenset({"metadata", "spec"})
_CONTAINER_PORT_FIELDS = frozenset({"name", "hostPort", "containerPort", "protocol", "hostIP"})


def pod(
    obj: ObjectReader,
    raw: Mapping[Any, Any],
    *,
    namespace: str,
    name: str,
    labels: Labels,
    origin: Origin,
    notes: list[str],
) -> Pod | None:
    """A ``Pod`` object; None, with a note, for a pod that has finished (Succeeded, Failed)."""
    spec = _pod_spec(obj, raw, "spec", "spec")
    ips = _pod_ips(obj, raw)
    status = raw.get("status")
    phase = obj.string(status, "phase", "status.phase") if isinstance(status, Mapping) else None
    if phase in _FINISHED_PHASES:
        notes.append(f"pod {namespace}/{name} left out: phase {phase}")
        return None
    return Pod(
        namespace=namespace,
        name=name,
        labels=labels,
        ports=spec.ports,
        ips=ips,
        host_network=spec.host_network,
        phase=phase,
        node=spec.node,
        images=spec.images,
        origin=origin,
    )


@dataclass(frozen=True, slots=True)
class _PodSpec:
    """What a pod takes from its ``PodSpec`` (or a workload's template)."""

    ports: tuple[ContainerPort, ...] = ()
    host_network: bool = False
    node: str | None = None
    images: tuple[str, ...] = ()


def _pod_spec(obj: ObjectReader, parent: Mapping[Any, Any], key: str, path: str) -> _PodSpec:
    """``PodSpec``: containers (names, images, ports), hostNetwork, nodeName."""
    spec = obj.mapping(parent, key, path)
    if spec is None:
        if parent.get(key) is None:
            obj.fail(path, "is required (with at least one container)", member_line(parent, key))
        return _PodSpec()
    containers = obj.sequence(spec, "containers", f"{path}.containers")
    if not containers:
        if spec.get("containers") is None or containers is not None:
            obj.fail(
                f"{path}.containers",
                "is required: at least one container",
                member_line(spec, "containers"),
            )
        containers = []
    ports: list[ContainerPort] = []
    images: list[str] = []
    names: set[str] = set()
    for c_path, container, line in obj.entries(
        containers, f"{path}.containers", Mapping, "an object (a container)"
    ):
        name = obj.string(container, "name", f"{c_path}.name")
        if name is None:
            if container.get("name") is None:
                obj.fail(f"{c_path}.name", "is required", line)
        else:
            problems = dns1123_label_problems(name)
            obj.unique_name(container, f"{c_path}.name", name, problems, names)
        image = obj.string(container, "image", f"{c_path}.image")
        if not image:
            if image is not None or container.get("image") is None:
                obj.fail(f"{c_path}.image", "is required", line)
        else:
            images.append(image)
        ports.extend(_container_ports(obj, container, f"{c_path}.ports"))
    for kind in ("initContainers", "ephemeralContainers"):
        extra = obj.sequence(spec, kind, f"{path}.{kind}") or []
        for _ in obj.entries(extra, f"{path}.{kind}", Mapping, "an object (a container)"):
            pass  # only their type is checked: kubefence reads no field of them
    host_network = bool(obj.boolean(spec, "hostNetwork", f"{path}.hostNetwork"))
    node = obj.string(spec, "nodeName", f"{path}.nodeName")
    if node:
        obj.invalid(
            f"{path}.nodeName",
            node,
            dns1123_subdomain_problems(node),
            member_line(spec, "nodeName"),
        )
    return _PodSpec(
        ports=tuple(ports), host_network=host_network, node=node or None, images=tuple(images)
    )


def _container_ports(
    obj: ObjectReader, container: Mapping[Any, Any], path: str
) -> list[ContainerPort]:
    """``ContainerPort`` list of one container, as ``validateContainerPorts`` checks it."""
    raw = obj.sequence(container, "ports", path) or []
    result: list[ContainerPort] = []
    names: set[str] = set()
    for p_path, entry, line in obj.entries(raw, path, Mapping, "an object (a port)"):
        obj.unknown_fields(entry, _CONTAINER_PORT_FIELDS, p_path)
        name = obj.string(entry, "name", f"{p_path}.name")
        if name:
            problems = port_name_problems(name)
            obj.unique_name(
                entry, f"{p_path}.name", name, problems, names, duplicate_if_invalid=False
            )
        number = obj.integer(entry, "containerPort", f"{p_path}.containerPort")
        if number is None or number == 0:
            if number == 0 or entry.get("containerPort") is None:
                obj.fail(f"{p_path}.containerPort", "is required (1-65535)", line)
        else:
            obj.invalid(
                f"{p_path}.containerPort",
                number,
                port_number_problems(number),
                member_line(entry, "containerPort"),
            )
        host_port = obj.integer(entry, "hostPort", f"{p_path}.hostPort")
        if host_port:
            obj.invalid(
                f"{p_path}.hostPort",
                host_port,
                port_number_problems(host_port),
                member_line(entry, "hostPort"),
            )
        protocol = obj.protocol(entry, p_path)
        if protocol is None:
            continue
        if number is not None and 1 <= number <= 65535:
            result.append(ContainerPort(port=number, protocol=protocol, name=name or None))
    return result


def _pod_ips(obj: ObjectReader, raw: Mapping[Any, Any]) -> tuple[IPAddress, ...]:
    """``status.podIPs`` (or ``status.podIP``), IPv4 and IPv6, in order, without repeats."""
    status = obj.mapping(raw, "status", "status")
    if status is None:
        return ()
    texts: list[tuple[str, str, int | None]] = []
    pod_ips = obj.sequence(status, "podIPs", "status.podIPs") or []
    for at, entry, _ in obj.entries(pod_ips, "status.podIPs", Mapping, "an object ({ip: ...})"):
        ip = obj.string(entry, "ip", f"{at}.ip")
        if ip is not None:
            texts.append((ip, f"{at}.ip", member_line(entry, "ip")))
    pod_ip = obj.string(status, "podIP", "status.podIP")
    if pod_ip:
        texts.insert(0, (pod_ip, "status.podIP", member_line(status, "podIP")))
    return obj.addresses(texts)


def _replicas(obj: ObjectReader, spec: Mapping[Any, Any], kind: str) -> int:
    if kind in _ONE_POD_KINDS:
        return 1
    replicas = obj.integer(spec, "replicas", "spec.replicas")
    if replicas is None:
        return 1
    if replicas < 0:
        obj.fail(
            "spec.replicas",
            f"invalid value {replicas}: must be greater than or equal to 0",
            member_line(spec, "replicas"),
        )
        return 0
    if replicas > MAX_REPLICAS:
        obj.fail(
            "spec.replicas",
            f"invalid value {replicas}: kubefence expands at most {MAX_REPLICAS} pods per workload",
            member_line(spec, "replicas"),
        )
        return 0
    return replicas


def workload_pods(
    obj: ObjectReader,
    raw: Mapping[Any, Any],
    *,
    kind: str,
    namespace: str,
    name: str,
    origin: Origin,
) -> list[Pod]:
    """Pods ``<name>-<i>`` from a workload's template (``spec.jobTemplate.spec.template`` for a
    CronJob), after checking that the selector matches the template's labels."""
    spec = obj.mapping(raw, "spec", "spec")
    if spec is None:
        obj.fail("spec", "is required (with a pod template)", member_line(raw, "spec"))
        return []
    replicas = _replicas(obj, spec, kind)
    holder, prefix = spec, "spec"
    if kind == "CronJob":
        schedule = obj.string(spec, "schedule", "spec.schedule")
        if not schedule:
            obj.fail(
                "spec.schedule", "is required (a cron expression)", member_line(spec, "schedule")
            )
        job = obj.mapping(spec, "jobTemplate", "spec.jobTemplate")
        job_spec = obj.mapping(job, "spec", "spec.jobTemplate.spec") if job is not None else None
        if job_spec is None:
            obj.fail(
                "spec.jobTemplate.spec",
                "is required (with a pod template)",
                member_line(spec, "jobTemplate"),
            )
            return []
        holder, prefix = job_spec, "spec.jobTemplate.spec"
    template = obj.mapping(holder, "template", f"{prefix}.template")
    if template is None:
        obj.fail(
            f"{prefix}.template", "is required (the pod template)", member_line(holder, "template")
        )
        return []
    t_path = f"{prefix}.template"
    obj.unknown_fields(template, _TEMPLATE_FIELDS, t_path)
    metadata = obj.mapping(template, "metadata", f"{t_path}.metadata") or {}
    obj.unknown_fields(metadata, METADATA_FIELDS, f"{t_path}.metadata")
    labels = obj.labels(metadata, "labels", f"{t_path}.metadata.labels")
    pod_spec = _pod_spec(obj, template, "spec", f"{t_path}.spec")
    _check_workload_selector(obj, spec, kind=kind, labels=labels, t_path=t_path, metadata=metadata)
    owner = f"{kind}/{name}"
    return [
        Pod(
            namespace=namespace,
            name=f"{name}-{i}",
            labels=labels,
            ports=pod_spec.ports,
            host_network=pod_spec.host_network,
            node=pod_spec.node,
            images=pod_spec.images,
            owner=owner,
            origin=origin,
        )
        for i in range(replicas)
    ]


def _check_workload_selector(
    obj: ObjectReader,
    spec: Mapping[Any, Any],
    *,
    kind: str,
    labels: Labels,
    t_path: str,
    metadata: Mapping[Any, Any],
) -> None:
    labels_line = member_line(metadata, "labels")
    if kind == "ReplicationController":
        selector_map = obj.labels(spec, "selector", "spec.selector")
        if selector_map and not selector_matches(LabelSelector(match_labels=selector_map), labels):
            obj.fail(
                f"{t_path}.metadata.labels",
                "`selector` does not match template `labels`",
                labels_line,
            )
        return
    if kind not in _SELECTOR_REQUIRED:
        return
    if spec.get("selector") is None:
        obj.fail(
            "spec.selector",
            "is required (a label selector matching the template labels)",
            member_line(spec, "selector"),
        )
        return
    before = len(obj.problems)
    selector = label_selector(obj, spec, "selector", "spec.selector", strict=False)
    if selector is None or len(obj.problems) != before:
        return
    if selector.is_empty:
        obj.fail(
            "spec.selector",
            f"empty selector is invalid for {kind.lower()}",
            member_line(spec, "selector"),
        )
    elif not selector_matches(selector, labels):
        obj.fail(
            f"{t_path}.metadata.labels", "`selector` does not match template `labels`", labels_line
        )
