"""Small facts about API objects that several controllers need: selectors, pod state, owner
references, generated names, template hashes and timestamps.

Why this module exists: the scheduler, the workload controllers and the EndpointSlice
controller must agree exactly on what "a ready pod", "a pod of this ReplicaSet" or "a selector
that matches" means; defining each once keeps them from drifting apart.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from typing import Any

from kubefence.client import Resource

__all__ = [
    "PODS",
    "controller_of",
    "is_active",
    "is_ready",
    "matches_selector",
    "now",
    "owner_reference",
    "random_suffix",
    "semantic",
    "template_hash",
]

Obj = dict[str, Any]

PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
EVENTS = Resource("", "v1", "events")
SERVICES = Resource("", "v1", "services")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
REPLICASETS = Resource("apps", "v1", "replicasets")
STATEFULSETS = Resource("apps", "v1", "statefulsets")
DAEMONSETS = Resource("apps", "v1", "daemonsets")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices")

# Upstream's alphabet for generated names: no vowels (no words), no 0/1/3 (look like letters).
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: Mapping[str, Any]) -> Obj:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_ALPHANUMS) for _ in range(length))


def semantic(value: Any) -> Any:
    """``value`` without what Go's typed objects cannot tell from absent: null, "", {} and [].
    Two templates equal after this are the same template to upstream (a template that went
    through a Go client, as ``kubectl rollout undo`` sends it, gains ``creationTimestamp: null``
    and ``resources: {}``)."""
    if isinstance(value, dict):
        cleaned = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", {}, [])}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def template_hash(template: Any, collisions: int = 0) -> str:
    """A short stable hash of a pod template (FNV-1a 32 over its canonical JSON, ``semantic``
    first), spelled in upstream's safe alphabet like ``pod-template-hash`` values."""
    data = json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in str(value))


def matches_selector(selector: Any, labels: Mapping[str, str] | None) -> bool:
    """A ``LabelSelector`` (matchLabels and matchExpressions) against labels; an empty
    selector matches everything, a missing one (None) nothing."""
    if not isinstance(selector, dict):
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, operator = expr.get("key", ""), expr.get("operator", "")
        values = expr.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def matches_map(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service's plain selector map: every pair present (an empty map matches nothing, as
    a Service with ``selector: {}`` selects no pods)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def condition(obj: Mapping[str, Any], kind: str) -> Obj | None:
    status = obj.get("status") or {}
    for entry in status.get("conditions") or ():
        if isinstance(entry, dict) and entry.get("type") == kind:
            return entry
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    found = condition(pod, "Ready")
    return bool(found and found.get("status") == "True")


def is_active(pod: Mapping[str, Any]) -> bool:
    """Not finished (Succeeded/Failed) and not being deleted: counts towards replicas."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not meta(pod).get("deletionTimestamp")


def node_ready(node: Mapping[str, Any]) -> bool:
    found = condition(node, "Ready")
    return bool(found and found.get("status") == "True")


def controller_of(obj: Mapping[str, Any]) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref = controller_of(obj)
    return bool(ref and ref.get("uid") == meta(owner).get("uid"))


def owner_reference(owner: Mapping[str, Any], *, kind: str, api_version: str) -> Obj:
    m = meta(owner)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": m.get("name"),
        "uid": m.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(
    template: Mapping[str, Any],
    *,
    owner_ref: Obj,
    name: str,
    namespace: str,
    extra_labels: Mapping[str, str] | None = None,
) -> Obj:
    """A pod for a workload: the template's labels, annotations and spec, owned by the workload."""
    tmeta = meta(template)
    metadata: Obj = {
        "name": name,
        "namespace": namespace,
        "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [owner_ref],
    }
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    spec = json.loads(json.dumps(template.get("spec") or {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    """``maxSurge``/``maxUnavailable``: an int, or a percentage of ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        scaled = percent * total
        return -(-scaled // 100) if round_up else scaled // 100
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
