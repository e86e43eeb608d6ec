"""What the server checks and fills in on each served kind: names, validation, defaulting.

Why a module of its own: `kinds.py` is the table of kinds (names, scopes, subresources,
columns); the rules an object must pass on the way in are a separate concern that the table only
points at. Namespace, Pod, Service and NetworkPolicy are validated by kubefence's own validator
(`kubefence.api.build_inventory`), so the server rejects exactly what `kubefence validate`
rejects, with the same field paths. The other kinds get structural checks (names, required
fields). Defaulting follows the API server where clients look (policyTypes, the namespace name
label, Service clusterIP and ports, Pod phase and the container defaults `describe` prints).
"""

from __future__ import annotations

import re
from typing import Any

from kubefence.api import METADATA_NAME_LABEL, Document, build_inventory
from kubefence.errors import FieldError, ValidationError

__all__ = [
    "by_kubefence",
    "default_admin_ports",
    "default_deployment",
    "default_namespace",
    "default_pod",
    "default_policy",
    "default_service",
    "get_path",
    "name_problems",
    "required",
    "validate_binding",
    "validate_deployment",
    "validate_event",
    "validate_rules",
]

Obj = dict[str, Any]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def name_problems(name: str, *, style: str = "subdomain") -> list[FieldError]:
    """metadata.name problems: `subdomain` (most kinds), `label`, or `segment` (RBAC kinds)."""
    path = "metadata.name"
    if not name:
        return [FieldError("Required value: name or generateName is required", path)]
    if style == "segment":
        bad = name in (".", "..") or "/" in name or "%" in name
        return [FieldError(f"Invalid value: {name!r}: may not contain '/' or '%'", path)] * bad
    pattern, limit = (_LABEL, 63) if style == "label" else (_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.match(name):
        what = "RFC 1123 label" if style == "label" else "RFC 1123 subdomain"
        return [
            FieldError(
                f"Invalid value: {name!r}: a lowercase {what} must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
                path,
            )
        ]
    return []


def by_kubefence(obj: Obj) -> list[FieldError]:
    """kubefence's own validator on one object (server-set metadata removed first)."""
    metadata = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k in ("name", "namespace", "labels", "annotations", "generateName")
    }
    clean = {**obj, "metadata": metadata}
    clean.pop("status", None)
    try:
        build_inventory([Document(clean, "<request>", None, 0)])
    except ValidationError as error:
        return list(error.problems)
    return []


def get_path(obj: Obj, *path: str) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def required(obj: Obj, *paths: str) -> list[FieldError]:
    return [
        FieldError("Required value", path)
        for path in paths
        if get_path(obj, *path.split(".")) in (None, "", [], {})
    ]


# -- defaulting --------------------------------------------------------------------------------


def default_namespace(obj: Obj) -> None:
    metadata = obj.setdefault("metadata", {})
    labels = metadata.get("labels") or {}
    labels[METADATA_NAME_LABEL] = metadata.get("name", "")
    metadata["labels"] = labels
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def default_policy(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("podSelector", {})
    if not spec.get("policyTypes"):
        # S02, as kubefence.api defaults it: Ingress, plus Egress iff there is an egress rule.
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def default_admin_ports(obj: Obj) -> None:
    """The v1alpha1 CRDs' one default: a ``portNumber``/``portRange`` protocol is TCP."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for direction in ("ingress", "egress"):
        rules = spec.get(direction)
        for rule in rules if isinstance(rules, list) else []:
            ports = rule.get("ports") if isinstance(rule, dict) else None
            for port in ports if isinstance(ports, list) else []:
                for key in ("portNumber", "portRange"):
                    entry = port.get(key) if isinstance(port, dict) else None
                    if isinstance(entry, dict):
                        entry.setdefault("protocol", "TCP")


def default_pod(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", "BestEffort")


def default_service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("ipFamilies", ["IPv4"])
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def default_deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    )


def default_statefulset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})


def default_daemonset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault(
        "updateStrategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
    )


# -- structural validation of the other kinds -------------------------------------------------


def validate_rules(obj: Obj) -> list[FieldError]:
    problems = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not isinstance(rule, dict) or not rule.get("verbs"):
            problems.append(
                FieldError(
                    "Required value: verbs must contain at least one value", f"rules[{i}].verbs"
                )
            )
    return problems


def validate_binding(obj: Obj) -> list[FieldError]:
    problems = required(obj, "roleRef.kind", "roleRef.name")
    kind = get_path(obj, "roleRef", "kind")
    if kind not in (None, "", "Role", "ClusterRole"):
        problems.append(
            FieldError(
                f'Unsupported value: "{kind}": supported values: "Role", "ClusterRole"',
                "roleRef.kind",
            )
        )
    for i, subject in enumerate(obj.get("subjects") or []):
        if not isinstance(subject, dict) or not subject.get("name"):
            problems.append(FieldError("Required value", f"subjects[{i}].name"))
        elif subject.get("kind") not in ("User", "Group", "ServiceAccount"):
            problems.append(
                FieldError(
                    f"Unsupported value: {subject.get('kind')!r}: supported values: "
                    '"ServiceAccount", "User", "Group"',
                    f"subjects[{i}].kind",
                )
            )
    return problems


def validate_deployment(obj: Obj) -> list[FieldError]:
    problems = required(obj, "spec.selector", "spec.template.spec.containers")
    selector = get_path(obj, "spec", "selector", "matchLabels") or {}
    labels = get_path(obj, "spec", "template", "metadata", "labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        problems.append(
            FieldError(
                "Invalid value: `selector` does not match template `labels`",
                "spec.template.metadata.labels",
            )
        )
    return problems


def validate_event(obj: Obj) -> list[FieldError]:
    return required(obj, "involvedObject")
