"""The served kinds: one table of what the server serves, and how `kubectl get` prints each.

Each entry names a kind's group, version, plural, scope, verbs, subresources and Table columns,
and points at its defaulting and validation in `kind_checks` (the rules an object must pass on
the way in live there). Adding a kind means adding an entry here.

Longer than 400 lines on purpose: it is the one table of kinds, and the formatter spreads each
entry over a line per field; splitting the table itself would scatter what "adding a kind"
touches.
"""

from __future__ import annotations

from typing import Any

from kubefence.control.kind_checks import (
    by_kubefence,
    default_admin_ports,
    default_daemonset,
    default_deployment,
    default_namespace,
    default_pod,
    default_policy,
    default_service,
    default_statefulset,
    required,
    validate_binding,
    validate_deployment,
    validate_event,
    validate_rules,
)
from kubefence.control.kind_checks import (
    get_path as _get,
)
from kubefence.control.registry import Column, Registry, ResourceType
from kubefence.control.tables import age

__all__ = ["NAME_STYLE", "REGISTRY"]

Obj = dict[str, Any]

# -- printing -----------------------------------------------------------------------------------


def _replicas_ready(obj: Obj) -> str:
    """READY of Deployments and StatefulSets: ready replicas / desired replicas."""
    return f"{_get(obj, 'status', 'readyReplicas') or 0}/{_get(obj, 'spec', 'replicas') or 0}"


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
POLICY = "policy.networking.k8s.io"
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
        validate=by_kubefence,
        default=default_namespace,
        has_spec=False,
    ),
    ResourceType(
        CORE,
        "v1",
        "Pod",
        "pods",
        short_names=("po",),
        categories=("all",),
        subresources=("status", "binding"),
        validate=by_kubefence,
        default=default_pod,
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
        validate=by_kubefence,
        default=default_service,
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
        validate=by_kubefence,
        default=default_policy,
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
    # Admin tiers (issue 15): cluster-scoped, validated by kubefence.api's CNP parser (field
    # paths as kubefence validate), printer columns as the upstream CRDs'.
    ResourceType(
        POLICY,
        "v1alpha2",
        "ClusterNetworkPolicy",
        "clusternetworkpolicies",
        namespaced=False,
        short_names=("cnp",),
        validate=by_kubefence,
        columns=(
            Column("Tier", "string", _s("spec", "tier")),
            Column("Priority", "string", _s("spec", "priority")),
        ),
    ),
    ResourceType(
        POLICY,
        "v1alpha1",
        "AdminNetworkPolicy",
        "adminnetworkpolicies",
        namespaced=False,
        short_names=("anp",),
        validate=by_kubefence,
        default=default_admin_ports,
        columns=(Column("Priority", "string", _s("spec", "priority")),),
    ),
    ResourceType(
        POLICY,
        "v1alpha1",
        "BaselineAdminNetworkPolicy",
        "baselineadminnetworkpolicies",
        namespaced=False,
        short_names=("banp",),
        validate=by_kubefence,
        default=default_admin_ports,
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
        validate=lambda o: required(o, "addressType"),
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
        validate=validate_event,
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
    ResourceType(RBAC, "v1", "Role", "roles", validate=validate_rules, has_spec=False),
    ResourceType(
        RBAC,
        "v1",
        "ClusterRole",
        "clusterroles",
        namespaced=False,
        validate=validate_rules,
        has_spec=False,
    ),
    ResourceType(
        RBAC,
        "v1",
        "RoleBinding",
        "rolebindings",
        validate=validate_binding,
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
        validate=validate_binding,
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
        validate=validate_deployment,
        default=default_deployment,
        columns=(
            Column("Ready", "string", _replicas_ready),
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
        validate=validate_deployment,
        columns=(
            Column("Desired", "integer", lambda o: _get(o, "spec", "replicas") or 0),
            Column("Current", "integer", lambda o: _get(o, "status", "replicas") or 0),
            Column("Ready", "integer", lambda o: _get(o, "status", "readyReplicas") or 0),
        ),
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
        validate=validate_deployment,
        default=default_statefulset,
        columns=(Column("Ready", "string", _replicas_ready),),
    ),
    ResourceType(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
        validate=validate_deployment,
        default=default_daemonset,
        columns=(
            Column(
                "Desired", "integer", lambda o: _get(o, "status", "desiredNumberScheduled") or 0
            ),
            Column(
                "Current", "integer", lambda o: _get(o, "status", "currentNumberScheduled") or 0
            ),
            Column("Ready", "integer", lambda o: _get(o, "status", "numberReady") or 0),
            Column(
                "Up-to-date", "integer", lambda o: _get(o, "status", "updatedNumberScheduled") or 0
            ),
            Column("Available", "integer", lambda o: _get(o, "status", "numberAvailable") or 0),
            Column(
                "Node Selector",
                "string",
                lambda o: _selector_text(_get(o, "spec", "template", "spec", "nodeSelector")),
            ),
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
