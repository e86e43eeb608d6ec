"""RBAC: each semantic corner of rules, bindings and subjects, and the bootstrap policy."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from kubefence.control.identity import ANONYMOUS, RequestAttributes, UserInfo
from kubefence.control.rbac import BOOTSTRAP_OBJECTS, Authorizer, forbidden_message

AUTH = "system:authenticated"
ADMIN = UserInfo("kubefence:admin", ("system:masters", AUTH))
DEV = UserInfo("dev", ("team-a", AUTH))
_RV = itertools.count(1000)


class Objects:
    """An in-memory stand-in for the server's store of RBAC objects (with resourceVersions)."""

    def __init__(self, *objs: Mapping[str, Any]) -> None:
        self.items: list[dict[str, Any]] = []
        for obj in (*BOOTSTRAP_OBJECTS, *objs):
            self.add(obj)

    def add(self, obj: Mapping[str, Any]) -> None:
        copied = copy.deepcopy(dict(obj))
        copied["metadata"]["resourceVersion"] = str(next(_RV))
        self.items.append(copied)

    def __call__(self, kind: str) -> Iterable[Mapping[str, Any]]:
        return [o for o in self.items if o["kind"] == kind]


def role(name: str, ns: str, *rules: dict[str, Any], kind: str = "Role") -> dict[str, Any]:
    meta = {"name": name, "namespace": ns} if kind == "Role" else {"name": name}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "rules": list(rules)}  # fmt: skip


def binding(
    name: str, ns: str, role_kind: str, role_name: str, *subjects: dict[str, Any]
) -> dict[str, Any]:
    kind = "RoleBinding" if ns else "ClusterRoleBinding"
    meta = {"name": name, "namespace": ns} if ns else {"name": name}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role_name},
            "subjects": list(subjects)}  # fmt: skip


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def rule(groups: list[str], resources: list[str], verbs: list[str], **extra: Any) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs, **extra}


def req(who: UserInfo, verb: str, resource: str = "", ns: str = "", **kw: str) -> RequestAttributes:
    return RequestAttributes(who, verb, namespace=ns, resource=resource, **kw)


def allowed(authz: Authorizer, attrs: RequestAttributes) -> bool:
    return authz.authorize(attrs)[0]


# -- bootstrap ----------------------------------------------------------------------------------


def test_masters_may_do_anything() -> None:
    authz = Authorizer(Objects())
    ok, reason = authz.authorize(req(ADMIN, "delete", "nodes", name="n1"))
    assert ok
    assert reason == (
        'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
        'to Group "system:masters"'
    )
    assert allowed(authz, req(ADMIN, "get", path="/"))
    assert allowed(authz, req(ADMIN, "patch", "pods", "test", subresource="status"))


def test_anonymous_get_root_is_forbidden_with_upstream_message() -> None:
    authz = Authorizer(Objects())
    attrs = req(ANONYMOUS, "get", path="/")
    ok, reason = authz.authorize(attrs)
    assert not ok
    assert reason == ""
    assert forbidden_message(attrs, reason) == (
        'forbidden: User "system:anonymous" cannot get path "/"'
    )


def test_anonymous_may_probe_health_but_not_discover_or_list() -> None:
    authz = Authorizer(Objects())
    assert allowed(authz, req(ANONYMOUS, "get", path="/healthz"))
    assert allowed(authz, req(ANONYMOUS, "get", path="/version"))
    assert not allowed(authz, req(ANONYMOUS, "get", path="/api"))
    assert not allowed(authz, req(ANONYMOUS, "list", "pods", "default"))
    assert not allowed(authz, req(ANONYMOUS, "post", path="/healthz"))


def test_authenticated_user_gets_discovery_and_self_reviews_only() -> None:
    authz = Authorizer(Objects())
    assert allowed(authz, req(DEV, "get", path="/api"))
    assert allowed(authz, req(DEV, "get", path="/apis/networking.k8s.io/v1"))
    assert allowed(authz, req(DEV, "get", path="/openapi/v3/apis/apps/v1"))
    assert not allowed(authz, req(DEV, "get", path="/"))
    assert not allowed(authz, req(DEV, "get", path="/apisx"))
    ssar = req(DEV, "create", "selfsubjectaccessreviews", api_group="authorization.k8s.io")
    assert allowed(authz, ssar)
    whoami = req(DEV, "create", "selfsubjectreviews", api_group="authentication.k8s.io")
    assert allowed(authz, whoami)
    assert not allowed(authz, req(DEV, "list", "pods", "default"))


def test_node_and_agent_roles() -> None:
    authz = Authorizer(Objects())
    node = UserInfo("system:node:n1", ("system:nodes", AUTH))
    assert allowed(authz, req(node, "update", "pods", "test", subresource="status", name="p"))
    assert allowed(authz, req(node, "watch", "networkpolicies", api_group="networking.k8s.io"))
    assert not allowed(authz, req(node, "create", "networkpolicies", "test",
                                  api_group="networking.k8s.io"))  # fmt: skip
    agent = UserInfo("kubefence:agent", (AUTH,))
    assert allowed(authz, req(agent, "watch", "networkpolicies", api_group="networking.k8s.io"))
    assert allowed(authz, req(agent, "list", "pods"))
    assert not allowed(authz, req(agent, "create", "pods", "test"))
    assert not allowed(authz, req(agent, "get", "secrets", "test"))


def test_bootstrap_objects_are_well_formed() -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in BOOTSTRAP_OBJECTS}
    for must in ("cluster-admin", "admin", "edit", "view", "system:node", "kubefence:agent",
                 "system:basic-user", "system:discovery", "system:public-info-viewer"):  # fmt: skip
        assert ("ClusterRole", must) in names
    for obj in BOOTSTRAP_OBJECTS:
        assert obj["apiVersion"] == "rbac.authorization.k8s.io/v1"
        if obj["kind"] == "ClusterRoleBinding":
            assert ("ClusterRole", obj["roleRef"]["name"]) in names
    by_name = {o["metadata"]["name"]: o for o in BOOTSTRAP_OBJECTS}
    assert by_name["admin"]["rules"][-1] == by_name["view"]["rules"][-1]
    assert by_name["admin"]["rules"][-1] is not by_name["view"]["rules"][-1]  # no shared dicts


# -- rules --------------------------------------------------------------------------------------

NETPOL = "networking.k8s.io"


def _dev_with(*rules: dict[str, Any], ns: str = "test") -> Authorizer:
    return Authorizer(Objects(role("r", ns, *rules), binding("b", ns, "Role", "r", user("dev"))))


def test_role_is_scoped_to_its_namespace() -> None:
    authz = _dev_with(rule([""], ["pods"], ["get", "list"]))
    assert allowed(authz, req(DEV, "list", "pods", "test"))
    assert not allowed(authz, req(DEV, "list", "pods", "other"))
    assert not allowed(authz, req(DEV, "list", "pods"))  # all namespaces = cluster scope
    assert not allowed(authz, req(DEV, "delete", "pods", "test", name="x"))


def test_resource_does_not_grant_its_subresources() -> None:
    authz = _dev_with(rule([""], ["pods"], ["*"]))
    assert allowed(authz, req(DEV, "update", "pods", "test", name="p"))
    assert not allowed(authz, req(DEV, "update", "pods", "test", name="p", subresource="status"))


def test_subresource_rules() -> None:
    authz = _dev_with(rule([""], ["pods/status"], ["update"]), rule([""], ["*/scale"], ["get"]))
    assert allowed(authz, req(DEV, "update", "pods", "test", subresource="status"))
    assert not allowed(authz, req(DEV, "update", "pods", "test"))
    assert allowed(authz, req(DEV, "get", "replicationcontrollers", "test", subresource="scale"))
    assert not allowed(authz, req(DEV, "get", "replicationcontrollers", "test"))


def test_star_resource_grants_subresources_too() -> None:
    authz = _dev_with(rule([""], ["*"], ["get"]))
    assert allowed(authz, req(DEV, "get", "pods", "test", subresource="log"))
    assert allowed(authz, req(DEV, "get", "services", "test"))
    assert not allowed(authz, req(DEV, "get", "networkpolicies", "test", api_group=NETPOL))


def test_api_group_must_match() -> None:
    authz = _dev_with(rule([NETPOL], ["networkpolicies"], ["create"]))
    assert allowed(authz, req(DEV, "create", "networkpolicies", "test", api_group=NETPOL))
    assert not allowed(authz, req(DEV, "create", "networkpolicies", "test"))
    authz = _dev_with(rule(["*"], ["networkpolicies"], ["create"]))
    assert allowed(authz, req(DEV, "create", "networkpolicies", "test", api_group=NETPOL))


def test_resource_names() -> None:
    authz = _dev_with(rule([""], ["configmaps"], ["get", "update", "list"], resourceNames=["cfg"]))
    assert allowed(authz, req(DEV, "get", "configmaps", "test", name="cfg"))
    assert not allowed(authz, req(DEV, "get", "configmaps", "test", name="other"))
    assert not allowed(authz, req(DEV, "list", "configmaps", "test"))


def test_non_resource_urls_only_through_cluster_role_bindings() -> None:
    urls = {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}
    via_rb = Objects(role("metrics", "", urls, kind="ClusterRole"),
                     binding("b", "test", "ClusterRole", "metrics", user("dev")))  # fmt: skip
    assert not allowed(Authorizer(via_rb), req(DEV, "get", path="/metrics"))
    via_crb = Objects(role("metrics", "", urls, kind="ClusterRole"),
                      binding("b", "", "ClusterRole", "metrics", user("dev")))  # fmt: skip
    authz = Authorizer(via_crb)
    assert allowed(authz, req(DEV, "get", path="/metrics"))
    assert allowed(authz, req(DEV, "get", path="/logs/kube.log"))
    assert not allowed(authz, req(DEV, "get", path="/metrics/extra"))
    assert not allowed(authz, req(DEV, "get", path="/logs"))
    assert not allowed(authz, req(DEV, "put", path="/metrics"))


def test_resource_rule_does_not_match_a_path_and_back() -> None:
    authz = Authorizer(
        Objects(
            role("c", "", rule(["*"], ["*"], ["get"]), kind="ClusterRole"),
            binding("b", "", "ClusterRole", "c", user("dev")),
        )
    )
    assert allowed(authz, req(DEV, "get", "pods", "x"))
    assert not allowed(authz, req(DEV, "get", path="/healthz/etcd"))


# -- bindings and subjects ----------------------------------------------------------------------


def test_rolebinding_to_clusterrole_is_scoped_to_the_binding_namespace() -> None:
    authz = Authorizer(Objects(binding("view-test", "test", "ClusterRole", "view", user("dev"))))
    assert allowed(authz, req(DEV, "list", "pods", "test"))
    ok, reason = authz.authorize(req(DEV, "get", "networkpolicies", "test", api_group=NETPOL))
    assert ok
    assert reason == (
        'RBAC: allowed by RoleBinding "view-test/test" of ClusterRole "view" to User "dev"'
    )
    assert not allowed(authz, req(DEV, "list", "pods", "other"))
    assert not allowed(authz, req(DEV, "list", "pods"))
    assert not allowed(authz, req(DEV, "create", "pods", "test"))


def test_clusterrolebinding_to_a_role_is_ignored() -> None:
    authz = Authorizer(
        Objects(
            role("r", "test", rule([""], ["pods"], ["get"])),
            binding("b", "", "Role", "r", user("dev")),
        )
    )
    assert not allowed(authz, req(DEV, "get", "pods", "test"))


def test_group_subject() -> None:
    authz = Authorizer(Objects(binding("b", "test", "ClusterRole", "edit", group("team-a"))))
    assert allowed(authz, req(DEV, "create", "networkpolicies", "test", api_group=NETPOL))
    assert not allowed(authz, req(UserInfo("eve", (AUTH,)), "create", "pods", "test"))


def test_service_account_subjects() -> None:
    sa = UserInfo("system:serviceaccount:test:builder",
                  ("system:serviceaccounts", "system:serviceaccounts:test", AUTH))  # fmt: skip
    explicit = {"kind": "ServiceAccount", "name": "builder", "namespace": "test"}
    implicit = {"kind": "ServiceAccount", "name": "builder"}
    authz = Authorizer(Objects(
        role("r1", "test", rule([""], ["pods"], ["get"])),
        binding("b1", "test", "Role", "r1", implicit),
        role("c", "", rule([""], ["nodes"], ["list"]), kind="ClusterRole"),
        binding("b2", "", "ClusterRole", "c", explicit),
    ))  # fmt: skip
    assert allowed(authz, req(sa, "get", "pods", "test"))
    assert allowed(authz, req(sa, "list", "nodes"))
    other = UserInfo("system:serviceaccount:other:builder", (AUTH,))
    assert not allowed(authz, req(other, "list", "nodes"))
    sa_group = Authorizer(Objects(binding("b", "test", "ClusterRole", "view",
                                          group("system:serviceaccounts:test"))))  # fmt: skip
    assert allowed(sa_group, req(sa, "list", "pods", "test"))


def test_user_subject_is_by_exact_name() -> None:
    authz = Authorizer(Objects(binding("b", "", "ClusterRole", "view", user("Dev"))))
    assert not allowed(authz, req(DEV, "list", "pods"))


def test_missing_role_is_named_in_the_reason() -> None:
    authz = Authorizer(Objects(binding("b", "test", "Role", "ghost", user("dev"))))
    ok, reason = authz.authorize(req(DEV, "get", "pods", "test"))
    assert not ok
    assert reason == 'role.rbac.authorization.k8s.io "ghost" not found'


def test_builtin_roles_ladder() -> None:
    authz = Authorizer(Objects(
        binding("v", "ns-v", "ClusterRole", "view", user("dev")),
        binding("e", "ns-e", "ClusterRole", "edit", user("dev")),
        binding("a", "ns-a", "ClusterRole", "admin", user("dev")),
    ))  # fmt: skip
    create_np = {"api_group": NETPOL}
    assert not allowed(authz, req(DEV, "create", "networkpolicies", "ns-v", **create_np))
    assert allowed(authz, req(DEV, "create", "networkpolicies", "ns-e", **create_np))
    assert allowed(authz, req(DEV, "create", "networkpolicies", "ns-a", **create_np))
    rbac = {"api_group": "rbac.authorization.k8s.io"}
    assert not allowed(authz, req(DEV, "create", "rolebindings", "ns-e", **rbac))
    assert allowed(authz, req(DEV, "create", "rolebindings", "ns-a", **rbac))
    assert not allowed(authz, req(DEV, "get", "secrets", "ns-v"))
    assert allowed(authz, req(DEV, "get", "secrets", "ns-e"))


def test_aggregation_adds_labelled_roles_transitively() -> None:
    extra = role("crd-viewer", "", rule(["example.com"], ["widgets"], ["get"]), kind="ClusterRole")
    extra["metadata"]["labels"] = {"rbac.authorization.k8s.io/aggregate-to-view": "true"}
    authz = Authorizer(Objects(extra, binding("a", "test", "ClusterRole", "admin", user("dev"))))
    assert allowed(authz, req(DEV, "get", "widgets", "test", api_group="example.com"))


# -- index freshness ----------------------------------------------------------------------------


def test_new_binding_is_seen_on_the_next_request() -> None:
    objects = Objects()
    authz = Authorizer(objects)
    assert not allowed(authz, req(DEV, "list", "pods", "test"))
    objects.add(binding("b", "test", "ClusterRole", "view", user("dev")))
    assert allowed(authz, req(DEV, "list", "pods", "test"))
    objects.items = [o for o in objects.items if o["metadata"]["name"] != "b"]
    assert not allowed(authz, req(DEV, "list", "pods", "test"))


def test_changed_resource_version_rebuilds_the_index() -> None:
    objects = Objects(role("r", "test", rule([""], ["pods"], ["get"])),
                      binding("b", "test", "Role", "r", user("dev")))  # fmt: skip
    authz = Authorizer(objects)
    assert not allowed(authz, req(DEV, "list", "pods", "test"))
    r = next(o for o in objects.items if o["kind"] == "Role")
    r["rules"][0]["verbs"].append("list")
    r["metadata"]["resourceVersion"] = str(next(_RV))
    assert allowed(authz, req(DEV, "list", "pods", "test"))


def test_rules_for_lists_what_a_user_may_do() -> None:
    authz = Authorizer(Objects(binding("b", "test", "ClusterRole", "view", user("dev"))))
    resource, non_resource = authz.rules_for(DEV, "test")
    assert any("pods" in r.resources and "list" in r.verbs for r in resource)
    assert any("/api" in r.non_resource_urls for r in non_resource)
    resource_elsewhere, _ = authz.rules_for(DEV, "other")
    assert not any("pods" in r.resources for r in resource_elsewhere)


# -- messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (req(DEV, "get", "pods", "test", name="nginx"),
         'pods "nginx" is forbidden: User "dev" cannot get resource "pods" in API group "" '
         'in the namespace "test"'),
        (req(DEV, "list", "networkpolicies", api_group=NETPOL),
         'networkpolicies.networking.k8s.io is forbidden: User "dev" cannot list resource '
         '"networkpolicies" in API group "networking.k8s.io" at the cluster scope'),
        (req(DEV, "update", "pods", "test", name="p", subresource="status"),
         'pods "p" is forbidden: User "dev" cannot update resource "pods/status" in API group '
         '"" in the namespace "test"'),
    ],
)  # fmt: skip
def test_forbidden_messages(attrs: RequestAttributes, message: str) -> None:
    assert forbidden_message(attrs) == message


def test_generation_hook_controls_rebuilds() -> None:
    objects = Objects()
    generation = [1]
    authz = Authorizer(objects, generation=lambda: generation[0])
    assert not allowed(authz, req(DEV, "list", "pods", "test"))
    objects.add(binding("b", "test", "ClusterRole", "view", user("dev")))
    assert not allowed(authz, req(DEV, "list", "pods", "test"))  # same generation: cached
    generation[0] = 2
    assert allowed(authz, req(DEV, "list", "pods", "test"))
    objects.items.pop()
    authz.invalidate()
    assert not allowed(authz, req(DEV, "list", "pods", "test"))


def test_a_namespace_object_is_in_its_own_namespace() -> None:
    """As upstream's request info: GET /api/v1/namespaces/test is "in the namespace test"."""
    authz = Authorizer(Objects(binding("v", "test", "ClusterRole", "view", user("dev"))))
    assert allowed(authz, req(DEV, "get", "namespaces", name="test"))
    assert not allowed(authz, req(DEV, "get", "namespaces", name="other"))
    assert not allowed(authz, req(DEV, "list", "namespaces"))
    assert forbidden_message(req(DEV, "delete", "namespaces", name="test")) == (
        'namespaces "test" is forbidden: User "dev" cannot delete resource "namespaces" in API '
        'group "" in the namespace "test"'
    )


def test_malformed_stored_objects_never_raise() -> None:
    junk: list[dict[str, Any]] = [
        {"kind": "ClusterRole", "metadata": {"name": "odd", "labels": ["x"]}, "rules": {"a": 1},
         "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": "x"},
                                                      {"matchExpressions": [{"key": "k"}]}]}},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "b1"}, "roleRef": "odd",
         "subjects": {"kind": "User"}},
        {"kind": "RoleBinding", "metadata": {"name": "b2", "namespace": "t"},
         "roleRef": {"kind": "Role", "name": "x"}, "subjects": [{"kind": "User"}, "dev", None]},
        {"kind": "Role", "metadata": {"name": "x", "namespace": "t"},
         "rules": [{"verbs": "get", "resources": ["pods"]}, None]},
    ]  # fmt: skip
    authz = Authorizer(Objects(*junk))
    assert not allowed(authz, req(DEV, "get", "pods", "t"))
    assert allowed(authz, req(ADMIN, "get", "pods", "t"))
