"""The RBAC objects a new cluster starts with, as kube-apiserver's bootstrap policy writes them.

Separate from ``rbac`` because it is data, not logic. Names, labels and the split of admin/edit/
view into aggregated ``system:aggregate-to-*`` roles follow upstream's bootstrap policy (the
rules are trimmed to the kinds kubefence serves plus the common ones kubectl asks about); on top
come ``system:node`` bound to the group ``system:nodes`` (kubefence has no Node authorizer) and
``kubefence:agent`` for the policy agent and ``system:kube-controller-manager`` for the scheduler
and controllers. ``system:public-info-viewer`` is bound to both
``system:authenticated`` and ``system:unauthenticated`` as upstream does, so anonymous health
probes work while anonymous ``GET /`` stays forbidden.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kubefence.control.identity import (
    AGENT_USER,
    AUTHENTICATED_GROUP,
    CONTROLLER_MANAGER_USER,
    MASTERS_GROUP,
    NODES_GROUP,
)

__all__ = ["BOOTSTRAP_OBJECTS"]

_GROUP = "rbac.authorization.k8s.io"
_API_VERSION = f"{_GROUP}/v1"
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_ALL = [*_READ, *_WRITE]
_DEFAULT_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
_AGG_KEY = "rbac.authorization.k8s.io/aggregate-to-"
# The admin tiers' kinds (issue 15): cluster-wide policy written by cluster admins (who hold
# everything); ``view`` and the policy agent read them.
_ADMIN_TIERS = ["clusternetworkpolicies", "adminnetworkpolicies", "baselineadminnetworkpolicies"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _urls(urls: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"nonResourceURLs": urls, "verbs": verbs}


def _cluster_role(
    name: str,
    rules: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: Sequence[str] = (),
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": _API_VERSION,
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**_DEFAULT_LABELS, **(labels or {})},
            "annotations": dict(_AUTOUPDATE),
        },
        "rules": rules,
    }
    if aggregate_from:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [
                {"matchLabels": {f"{_AGG_KEY}{target}": "true"}} for target in aggregate_from
            ]
        }
    return role


def _binding(name: str, role: str, subjects: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": _API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": dict(_DEFAULT_LABELS),
            "annotations": dict(_AUTOUPDATE),
        },
        "roleRef": {"apiGroup": _GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": _GROUP, "kind": kind, "name": who} for kind, who in subjects],
    }


_VIEW_RULES = [
    _rule([""], ["configmaps", "endpoints", "persistentvolumeclaims",
                 "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                 "replicationcontrollers/scale",
                 "serviceaccounts", "services", "services/status"], _READ),
    _rule([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
                 "pods/status", "replicationcontrollers/status", "resourcequotas",
                 "resourcequotas/status"], _READ),
    _rule([""], ["namespaces"], _READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                     "deployments/scale", "deployments/status", "replicasets",
                     "replicasets/scale", "replicasets/status", "statefulsets",
                     "statefulsets/scale", "statefulsets/status"], _READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"], _READ),
    _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], _READ),
    _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], _READ),
    _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], _READ),
    _rule(["policy.networking.k8s.io"], _ADMIN_TIERS, _READ),
]  # fmt: skip

_EDIT_RULES = [
    _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                 "services/proxy"], _READ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], _WRITE),
    _rule([""], ["pods/eviction"], ["create"]),
    _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                 "services/proxy"], _WRITE),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                     "replicasets", "replicasets/scale", "statefulsets",
                     "statefulsets/scale"], _WRITE),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], _WRITE),
    _rule(["batch"], ["cronjobs", "jobs"], _WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], _WRITE),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], _WRITE),
    _rule(["coordination.k8s.io"], ["leases"], _ALL),
]  # fmt: skip

_ADMIN_RULES = [
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule([_GROUP], ["rolebindings", "roles"], _ALL),
]

_NODE_RULES = [
    _rule([""], ["nodes"], [*_READ, "create", "patch", "update"]),
    _rule([""], ["nodes/status"], ["patch", "update"]),
    _rule([""], ["pods"], [*_READ, "create", "delete"]),
    _rule([""], ["pods/status"], ["patch", "update"]),
    _rule([""], ["pods/eviction"], ["create"]),
    _rule([""], ["services", "endpoints", "configmaps", "secrets", "namespaces"], _READ),
    _rule([""], ["events"], ["create", "patch", "update"]),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["networking.k8s.io"], ["networkpolicies"], _READ),
    _rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update", "patch", "delete"]),
    _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
    _rule(["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"],
          ["create"]),
]  # fmt: skip

# The rights deploy/rbac.yaml grants the agent's ServiceAccount, no more (a test compares them):
# what the sandbox's agents run with is what a real cluster's agents get. (The Lease rule is a
# Role in kubefence-system there; here the agent's Lease namespace is the sandbox's own.)
_AGENT_RULES = [
    _rule([""], ["namespaces", "pods", "nodes"], _READ),
    _rule(["networking.k8s.io"], ["networkpolicies"], _READ),
    _rule(["policy.networking.k8s.io"], _ADMIN_TIERS, _READ),
    _rule([""], ["events"], ["create", "patch"]),
    _rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"]),
]

# The scheduler and the controllers run as one process with one identity (upstream splits them
# into system:kube-scheduler and per-controller service accounts; the rules are their union).
_CONTROLLER_RULES = [
    _rule([""], ["pods"], [*_READ, "create", "delete", "patch", "update"]),
    _rule([""], ["pods/status", "nodes/status"], ["patch", "update"]),
    _rule([""], ["pods/binding", "bindings"], ["create"]),
    _rule([""], ["nodes", "namespaces", "services", "endpoints"], _READ),
    _rule([""], ["endpoints"], ["create", "delete", "patch", "update"]),
    _rule([""], ["events"], ["create", "patch", "update"]),
    _rule(["events.k8s.io"], ["events"], ["create", "patch", "update"]),
    _rule(["apps"], ["deployments", "replicasets", "statefulsets", "daemonsets",
                     "controllerrevisions"], _ALL),
    _rule(["apps"], ["deployments/status", "replicasets/status", "statefulsets/status",
                     "daemonsets/status"], ["get", "patch", "update"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], _ALL),
    _rule(["coordination.k8s.io"], ["leases"], ["get", "list", "watch", "create", "update"]),
]  # fmt: skip

_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                   "/openapi/*", "/readyz", "/version", "/version/"]  # fmt: skip
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

_OBJECTS: tuple[dict[str, Any], ...] = (
    _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]),
    _cluster_role("system:discovery", [_urls(_DISCOVERY_URLS, ["get"])]),
    _cluster_role("system:public-info-viewer", [_urls(_PUBLIC_URLS, ["get"])]),
    _cluster_role(
        "system:basic-user",
        [
            _rule(
                ["authorization.k8s.io"],
                ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ["create"],
            ),
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
        ],
    ),
    _cluster_role(
        "admin",
        [*_ADMIN_RULES, *_EDIT_RULES, *_VIEW_RULES],
        aggregate_from=["admin"],
    ),
    _cluster_role(
        "edit",
        [*_EDIT_RULES, *_VIEW_RULES],
        labels={f"{_AGG_KEY}admin": "true"},
        aggregate_from=["edit"],
    ),
    _cluster_role(
        "view",
        list(_VIEW_RULES),
        labels={f"{_AGG_KEY}edit": "true"},
        aggregate_from=["view"],
    ),
    _cluster_role("system:aggregate-to-admin", _ADMIN_RULES, labels={f"{_AGG_KEY}admin": "true"}),
    _cluster_role("system:aggregate-to-edit", _EDIT_RULES, labels={f"{_AGG_KEY}edit": "true"}),
    _cluster_role("system:aggregate-to-view", _VIEW_RULES, labels={f"{_AGG_KEY}view": "true"}),
    _cluster_role("system:node", _NODE_RULES),
    _cluster_role(AGENT_USER, _AGENT_RULES),
    _binding("cluster-admin", "cluster-admin", [("Group", MASTERS_GROUP)]),
    _binding("system:discovery", "system:discovery", [("Group", AUTHENTICATED_GROUP)]),
    _binding("system:basic-user", "system:basic-user", [("Group", AUTHENTICATED_GROUP)]),
    _binding(
        "system:public-info-viewer",
        "system:public-info-viewer",
        [("Group", AUTHENTICATED_GROUP), ("Group", "system:unauthenticated")],
    ),
    _binding("system:node", "system:node", [("Group", NODES_GROUP)]),
    _binding(AGENT_USER, AGENT_USER, [("User", AGENT_USER)]),
    _cluster_role(CONTROLLER_MANAGER_USER, _CONTROLLER_RULES),
    _binding(CONTROLLER_MANAGER_USER, CONTROLLER_MANAGER_USER, [("User", CONTROLLER_MANAGER_USER)]),
)

# Each object its own deep copy, so a caller that mutates one cannot change another.
BOOTSTRAP_OBJECTS: tuple[dict[str, Any], ...] = tuple(json.loads(json.dumps(o)) for o in _OBJECTS)
