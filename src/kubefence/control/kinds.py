"""The served kinds: their table entries, validation and defaulting, as the real API server does.

Namespace, Pod, Service and NetworkPolicy are validated by kubefence's own validator
(`kubefence.api.build_inventory`), so the server rejects exactly what `kubefence validate`
rejects, with the same field paths. The other kinds get structural checks (names, required
fields). Defaulting follows the API server where clients look (policyTypes, the namespace name
label, Service clusterIP and ports, Pod phase and the container defaults `describe` prints).

Longer than 400 lines on purpose: it is the one table of kinds, and the formatter spreads each
entry over a line per field; splitting it would scatter what "adding a kind" touches.
"""

from __future__ import annotations

import re
from typing import Any

from kubefence.api import METADATA_NAME_LABEL, Document, build_inventory
from kubefence.control.registry import Column, Registry, ResourceType
from kubefence.control.tables import age
from kubefence.errors import FieldError, ValidationError

__all__ = ["REGISTRY", "name_problems"]

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


def _by_kubefence(obj: Obj) -> list[FieldError]:
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


def _get(obj: Obj, *path: str) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _required(obj: Obj, *paths: str) -> list[FieldError]:
    return [
        FieldError("Required value", path)
        for path in paths
        if _get(obj, *path.split(".")) in (None, "", [], {})
    ]


# -- defaulting --------------------------------------------------------------------------------


def _default_namespace(obj: Obj) -> None:
    metadata = obj.setdefault("metadata", {})
    labels = metadata.get("labels") or {}
    labels[METADATA_NAME_LABEL] = metadata.get("name", "")
    metadata["labels"] = labels
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _default_policy(obj: Obj) -> None:
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


def _default_pod(obj: Obj) -> None:
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


def _default_service(obj: Obj) -> None:
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


def _default_deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
    )


# -- structural validation of the other kinds -------------------------------------------------


def _validate_rules(obj: Obj) -> list[FieldError]:
    problems = []
    for i, rule in enumerate(obj.get("rules") or []):
        if not isinstance(rule, dict) or not rule.get("verbs"):
            problems.append(
                FieldError(
                    "Required value: verbs must contain at least one value", f"rules[{i}].verbs"
                )
            )
    return problems


def _validate_binding(obj: Obj) -> list[FieldError]:
    problems = _required(obj, "roleRef.kind", "roleRef.name")
    kind = _get(obj, "roleRef", "kind")
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


def _validate_deployment(obj: Obj) -> list[FieldError]:
    problems = _required(obj, "spec.selector", "spec.template.spec.containers")
    selector = _get(obj, "spec", "selector", "matchLabels") or {}
    labels = _get(obj, "spec", "template", "metadata", "labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        problems.append(
            FieldError(
                "Invalid value: `selector` does not match template `labels`",
                "spec.template.metadata.labels",
            )
        )
    return problems


def _validate_event(obj: Obj) -> list[FieldError]:
    return _required(obj, "involvedObject")


# -- printing -----------------------------------------------------------------------------------


def _pod_ready(obj: Obj) -> str:
    containers = _get(obj, "spec", "containers") or []
    statuses = _get(obj, "status", "containerStatuses") or []
    ready = sum(1 for s in statuses if isinstance(s, dict) and s.get("ready"))
    return f"{ready}/{len(containers)}"


def _pod_restarts(obj: Obj) -> int:
    statuses = _get(obj, "status", "containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses if isinstance(s, dict))


def _service_ports(obj: Obj) -> str:
    ports = _get(obj, "spec", "ports") or []
    parts = []
    for port in ports:
        if not isinstance(port, dict):
            continue
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _selector_text(selector: Any) -> str:
    if not isinstance(selector, dict):
        return "<none>"
    structured = "matchLabels" in selector or "matchExpressions" in selector
    labels = selector.get("matchLabels") if structured else selector
    exprs = selector.get("matchExpressions") or [] if structured else []
    parts = [f"{k}={v}" for k, v in sorted((labels or {}).items()) if isinstance(v, str)]
    for e in exprs:
        if isinstance(e, dict):
            values = ",".join(e.get("values") or [])
            parts.append(f"{e.get('key')} {str(e.get('operator', '')).lower()} ({values})")
    return ",".join(parts) or "<none>"


def _endpoints_text(obj: Obj) -> str:
    found = []
    for subset in obj.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for address in subset.get("addresses") or []:
            for port in ports:
                found.append(f"{address.get('ip')}:{port}" if port else str(address.get("ip")))
    return ",".join(found[:3]) + (f" + {len(found) - 3} more..." if len(found) > 3 else "") or (
        "<none>"
    )


def _node_status(obj: Obj) -> str:
    for condition in _get(obj, "status", "conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return "Ready" if condition.get("status") == "True" else "NotReady"
    return "Unknown"


def _node_roles(obj: Obj) -> str:
    labels = _get(obj, "metadata", "labels") or {}
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _event_age(obj: Obj) -> str:
    when = obj.get("lastTimestamp") or obj.get("eventTime")
    return age(when or _get(obj, "metadata", "creationTimestamp"))


def _s(*path: str, none: str = "<none>") -> Any:
    def cell(obj: Obj) -> Any:
        value = _get(obj, *path)
        return none if value in (None, "") else value

    return cell


CORE = ""
NET = "networking.k8s.io"
RBAC = "rbac.authorization.k8s.io"

_TYPES = (
    ResourceType(
        CORE,
        "v1",
        "Namespace",
        "namespaces",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
        columns=(Column("Status", "string", _s("status", "phase")),),
        validate=_by_kubefence,
        default=_default_namespace,
        has_spec=False,
    ),
    ResourceType(
        CORE,
        "v1",
        "Pod",
        "pods",
        short_names=("po",),
        categories=("all",),
        subresources=("status",),
        validate=_by_kubefence,
        default=_default_pod,
        columns=(
            Column("Ready", "string", _pod_ready),
            Column("Status", "string", _s("status", "phase", none="Pending")),
            Column("Restarts", "string", _pod_restarts),
            Column("IP", "string", _s("status", "podIP"), priority=1),
            Column("Node", "string", _s("spec", "nodeName"), priority=1),
            Column("Nominated Node", "string", _s("status", "nominatedNodeName"), priority=1),
            Column("Readiness Gates", "string", lambda o: "<none>", priority=1),
        ),
    ),
    ResourceType(
        CORE,
        "v1",
        "Service",
        "services",
        short_names=("svc",),
        categories=("all",),
        subresources=("status",),
        validate=_by_kubefence,
        default=_default_service,
        columns=(
            Column("Type", "string", _s("spec", "type")),
            Column("Cluster-IP", "string", _s("spec", "clusterIP")),
            Column("External-IP", "string", lambda o: "<none>"),
            Column("Port(s)", "string", _service_ports),
            Column(
                "Selector",
                "string",
                lambda o: _selector_text(_get(o, "spec", "selector")),
                priority=1,
            ),
        ),
    ),
    ResourceType(
        NET,
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        short_names=("netpol",),
        validate=_by_kubefence,
        default=_default_policy,
        columns=(
            Column(
                "Pod-Selector",
                "string",
                lambda o: _selector_text(_get(o, "spec", "podSelector")).replace(
                    "<none>", "<none>"
                ),
            ),
        ),
    ),
    ResourceType(
        CORE,
        "v1",
        "Endpoints",
        "endpoints",
        short_names=("ep",),
        has_spec=False,
        columns=(Column("Endpoints", "string", _endpoints_text),),
    ),
    ResourceType(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        has_spec=False,
        validate=lambda o: _required(o, "addressType"),
        columns=(
            Column("AddressType", "string", _s("addressType")),
            Column(
                "Ports",
                "string",
                lambda o: (
                    ",".join(
                        str(p.get("port")) for p in o.get("ports") or [] if isinstance(p, dict)
                    )
                    or "<unset>"
                ),
            ),
            Column(
                "Endpoints",
                "string",
                lambda o: (
                    ",".join(a for e in o.get("endpoints") or [] for a in e.get("addresses") or [])
                    or "<unset>"
                ),
            ),
        ),
    ),
    ResourceType(
        CORE,
        "v1",
        "Node",
        "nodes",
        namespaced=False,
        short_names=("no",),
        subresources=("status",),
        columns=(
            Column("Status", "string", _node_status),
            Column("Roles", "string", _node_roles),
            Column("Version", "string", _s("status", "nodeInfo", "kubeletVersion", none="")),
            Column(
                "Internal-IP",
                "string",
                lambda o: next(
                    (
                        a.get("address")
                        for a in _get(o, "status", "addresses") or []
                        if a.get("type") == "InternalIP"
                    ),
                    "<none>",
                ),
                priority=1,
            ),
        ),
    ),
    ResourceType(
        CORE,
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        short_names=("sa",),
        subresources=("token",),
        has_spec=False,
        columns=(Column("Secrets", "integer", lambda o: len(o.get("secrets") or [])),),
    ),
    ResourceType(
        CORE,
        "v1",
        "ConfigMap",
        "configmaps",
        short_names=("cm",),
        has_spec=False,
        columns=(
            Column(
                "Data",
                "integer",
                lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            ),
        ),
    ),
    ResourceType(
        CORE,
        "v1",
        "Event",
        "events",
        short_names=("ev",),
        has_spec=False,
        validate=_validate_event,
        age_column=False,
        name_column=False,
        columns=(
            Column("Last Seen", "string", _event_age),
            Column("Type", "string", _s("type")),
            Column("Reason", "string", _s("reason")),
            Column(
                "Object",
                "string",
                lambda o: (
                    f"{str(_get(o, 'involvedObject', 'kind') or '').lower()}/"
                    f"{_get(o, 'involvedObject', 'name') or ''}"
                ),
            ),
            Column("Message", "string", _s("message", none="")),
        ),
    ),
    ResourceType(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        columns=(Column("Holder", "string", _s("spec", "holderIdentity", none="")),),
    ),
    ResourceType(RBAC, "v1", "Role", "roles", validate=_validate_rules, has_spec=False),
    ResourceType(
        RBAC,
        "v1",
        "ClusterRole",
        "clusterroles",
        namespaced=False,
        validate=_validate_rules,
        has_spec=False,
    ),
    ResourceType(
        RBAC,
        "v1",
        "RoleBinding",
        "rolebindings",
        validate=_validate_binding,
        has_spec=False,
        columns=(
            Column(
                "Role",
                "string",
                lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}",
            ),
        ),
    ),
    ResourceType(
        RBAC,
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        namespaced=False,
        validate=_validate_binding,
        has_spec=False,
        columns=(
            Column(
                "Role",
                "string",
                lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}",
            ),
        ),
    ),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
        validate=_validate_deployment,
        default=_default_deployment,
        columns=(
            Column(
                "Ready",
                "string",
                lambda o: (
                    f"{_get(o, 'status', 'readyReplicas') or 0}/{_get(o, 'spec', 'replicas') or 0}"
                ),
            ),
            Column("Up-to-date", "integer", lambda o: _get(o, "status", "updatedReplicas") or 0),
            Column("Available", "integer", lambda o: _get(o, "status", "availableReplicas") or 0),
        ),
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
        validate=_validate_deployment,
        columns=(
            Column("Desired", "integer", lambda o: _get(o, "spec", "replicas") or 0),
            Column("Current", "integer", lambda o: _get(o, "status", "replicas") or 0),
            Column("Ready", "integer", lambda o: _get(o, "status", "readyReplicas") or 0),
        ),
    ),
    # Virtual kinds: created and answered, never stored.
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        namespaced=False,
        verbs=("create",),
        stored=False,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        namespaced=False,
        verbs=("create",),
        stored=False,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        namespaced=False,
        verbs=("create",),
        stored=False,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        namespaced=False,
        verbs=("create",),
        stored=False,
    ),
)

#: Names whose metadata.name follows another rule than a DNS subdomain.
NAME_STYLE = {
    "Namespace": "label",
    "Service": "label",
    "Role": "segment",
    "ClusterRole": "segment",
    "RoleBinding": "segment",
    "ClusterRoleBinding": "segment",
}

REGISTRY = Registry(_TYPES)
