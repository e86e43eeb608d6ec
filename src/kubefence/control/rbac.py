"""RBAC authorization with Kubernetes' semantics, fast enough to ask on every request.

The rules are the ``rbac.authorization.k8s.io/v1`` ones, decided as kube-apiserver's RBAC
authorizer decides them:

- a request is allowed when any rule of a role reachable from a binding whose subjects include
  the user allows it; there are no deny rules;
- ClusterRoleBindings apply everywhere; a RoleBinding applies only in its own namespace, also
  when it refers to a ClusterRole (the ClusterRole's rules are then scoped to that namespace);
- subjects: ``User`` by name, ``Group`` by any of the user's groups, ``ServiceAccount`` as the
  user ``system:serviceaccount:<ns>:<name>`` (a RoleBinding's subject without namespace means the
  binding's namespace);
- a resource rule matches when verbs (or ``*``), apiGroups (or ``*``), resources (``*``, the exact
  ``resource`` or ``resource/subresource``, or ``*/subresource``) and, when given, resourceNames
  all match; ``pods`` does not grant ``pods/status``;
- a non-resource rule (``nonResourceURLs``, ``*`` or a prefix ending in ``*``) counts only for
  non-resource requests and only through ClusterRoleBindings;
- a ClusterRole with an ``aggregationRule`` also has the rules of every ClusterRole whose labels
  match one of its selectors (what the aggregation controller would write into it).

The authorizer reads the stored RBAC objects through a callback and keeps an index (bindings by
subject, roles by name) that it rebuilds only when an object's resourceVersion changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubefence.api import Labels, LabelSelector, Operator, Requirement, selector_matches
from kubefence.control.identity import RequestAttributes, UserInfo
from kubefence.control.rbac_bootstrap import BOOTSTRAP_OBJECTS

__all__ = [
    "BOOTSTRAP_OBJECTS",
    "RBAC_KINDS",
    "Authorizer",
    "Rule",
    "forbidden_message",
]

RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
ListObjects = Callable[[str], Iterable[Mapping[str, Any]]]
_SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, with sets for fast membership tests."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: tuple[str, ...] = ()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            verbs=frozenset(_strings(rule.get("verbs"))),
            api_groups=frozenset(_strings(rule.get("apiGroups"))),
            resources=tuple(_strings(rule.get("resources"))),
            resource_names=frozenset(_strings(rule.get("resourceNames"))),
            non_resource_urls=tuple(_strings(rule.get("nonResourceURLs"))),
        )

    def to_dict(self) -> dict[str, list[str]]:
        """The rule as a PolicyRule JSON object (for SelfSubjectRulesReview)."""
        out: dict[str, list[str]] = {"verbs": sorted(self.verbs)}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
            return out
        out["apiGroups"] = sorted(self.api_groups)
        out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = sorted(self.resource_names)
        return out

    def allows(self, attrs: RequestAttributes) -> bool:
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.is_resource_request:
            return any(_url_matches(pattern, attrs.path) for pattern in self.non_resource_urls)
        if "*" not in self.api_groups and attrs.api_group not in self.api_groups:
            return False
        if not _resource_matches(self.resources, attrs.resource, attrs.subresource):
            return False
        return not self.resource_names or attrs.name in self.resource_names


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _url_matches(pattern: str, path: str) -> bool:
    if pattern == "*" or pattern == path:
        return True
    return pattern.endswith("*") and path.startswith(pattern[:-1])


def _resource_matches(resources: Sequence[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in resources:
        if r in ("*", combined):
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Binding:
    kind: str  # RoleBinding | ClusterRoleBinding
    namespace: str
    name: str
    role_kind: str  # Role | ClusterRole
    role_name: str
    subject: str  # how the subject is described in reasons: 'User "x"'

    def describe(self) -> str:
        """kube-apiserver's wording: a RoleBinding is named "name/namespace"."""
        name = f"{self.name}/{self.namespace}" if self.namespace else self.name
        return (
            f'RBAC: allowed by {self.kind} "{name}" of {self.role_kind} "{self.role_name}"'
            f" to {self.subject}"
        )


@dataclass(slots=True)
class _Index:
    """Bindings keyed by ("user"|"group", name), per namespace ("" = cluster), and role rules."""

    bindings: dict[str, dict[tuple[str, str], list[_Binding]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    cluster_roles: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    roles: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _rules(obj: Mapping[str, Any]) -> tuple[Rule, ...]:
    rules = obj.get("rules")
    return tuple(Rule.from_dict(r) for r in rules if isinstance(r, Mapping)) if rules else ()


def _selector(raw: Mapping[str, Any]) -> LabelSelector:
    labels = _string_map(raw.get("matchLabels"))
    exprs = []
    for e in raw.get("matchExpressions") or ():
        try:
            values = tuple(str(v) for v in e.get("values") or ())
            exprs.append(Requirement(str(e["key"]), Operator(e["operator"]), values))
        except (KeyError, ValueError, TypeError):
            continue
    return LabelSelector(Labels(labels), tuple(exprs))


def _string_map(value: object) -> dict[str, str]:
    """A label map as stored; anything malformed counts as no labels (never an exception)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _aggregated(cluster_roles: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Rule, ...]]:
    """Each ClusterRole's rules plus those aggregated into it, transitively (as the aggregation
    controller converges: admin <- edit <- view)."""
    own = {str(_meta(r).get("name", "")): _rules(r) for r in cluster_roles}
    labels = {
        str(_meta(r).get("name", "")): _string_map(_meta(r).get("labels")) for r in cluster_roles
    }
    selectors: dict[str, list[LabelSelector]] = {}
    for role in cluster_roles:
        agg = role.get("aggregationRule")
        raw = agg.get("clusterRoleSelectors") if isinstance(agg, Mapping) else None
        parsed = [_selector(s) for s in raw or () if isinstance(s, Mapping)]
        if parsed := [s for s in parsed if not s.is_empty]:
            selectors[str(_meta(role).get("name", ""))] = parsed
    sources = {
        name: [o for o, o_labels in labels.items() if o != name and
               any(selector_matches(s, o_labels) for s in sels)]
        for name, sels in selectors.items()
    }  # fmt: skip
    out = dict(own)
    changed = True
    while changed:  # rule sets only grow and are finite, so this ends
        changed = False
        for name, others in sources.items():
            merged = tuple(dict.fromkeys((*own[name], *(r for o in others for r in out[o]))))
            if set(merged) != set(out[name]):
                out[name] = merged
                changed = True
    return out


def _subject_keys(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str] | None:
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == "User":
        return ("user", name)
    if kind == "Group":
        return ("group", name)
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return ("user", f"{_SA_PREFIX}{ns}:{name}") if ns else None
    return None


def _build(list_objects: ListObjects) -> _Index:
    index = _Index()
    index.cluster_roles = _aggregated(list(list_objects("ClusterRole")))
    for role in list_objects("Role"):
        meta = _meta(role)
        index.roles[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = _rules(role)
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        for obj in sorted(list_objects(kind), key=lambda o: str(_meta(o).get("name", ""))):
            meta = _meta(obj)
            namespace = str(meta.get("namespace", "")) if kind == "RoleBinding" else ""
            ref = obj.get("roleRef")
            if not isinstance(ref, Mapping) or ref.get("kind") not in ("Role", "ClusterRole"):
                continue
            if kind == "ClusterRoleBinding" and ref.get("kind") != "ClusterRole":
                continue
            for subject in obj.get("subjects") or ():
                if not isinstance(subject, Mapping):
                    continue
                key = _subject_keys(subject, namespace)
                if key is None:
                    continue
                described = f'{subject.get("kind")} "{key[1]}"'
                binding = _Binding(
                    kind, namespace, str(meta.get("name", "")),
                    str(ref["kind"]), str(ref.get("name", "")), described,
                )  # fmt: skip
                index.bindings[namespace][key].append(binding)
    return index


def _fingerprint(list_objects: ListObjects) -> tuple[tuple[int, int], ...] | None:
    """Per kind, the number of objects and their highest resourceVersion; None if one has none.

    Enough to notice every change because resourceVersions are store-wide and increase: a create
    or update raises the highest, a delete alone lowers the count.
    """
    out: list[tuple[int, int]] = []
    for kind in RBAC_KINDS:
        try:
            versions = [int(o["metadata"]["resourceVersion"]) for o in list_objects(kind)]
        except (KeyError, TypeError, ValueError):
            return None
        out.append((len(versions), max(versions, default=0)))
    return tuple(out)


class Authorizer:
    """Decides ``RequestAttributes`` with RBAC over the objects ``list_objects(kind)`` returns.

    ``list_objects`` receives "Role", "ClusterRole", "RoleBinding" or "ClusterRoleBinding" and
    returns the stored objects of that kind as JSON-like dicts. The index built from them is
    reused while their count and highest resourceVersion are unchanged (resourceVersions are
    store-wide revisions), or, when ``generation`` is given, while it returns an equal value
    (e.g. the revision of the last RBAC write: then nothing is scanned per request; None means
    "unknown", always rebuild); :meth:`invalidate` forces a rebuild.
    """

    def __init__(
        self, list_objects: ListObjects, *, generation: Callable[[], Hashable] | None = None
    ) -> None:
        self._list = list_objects
        self._generation = generation
        self._index: _Index | None = None
        self._fingerprint: Hashable = None

    def invalidate(self) -> None:
        """Forget the index (call after writing an RBAC object, if convenient)."""
        self._index = None

    def _current(self) -> _Index:
        fingerprint = (
            self._generation() if self._generation is not None else _fingerprint(self._list)
        )
        if self._index is None or fingerprint is None or fingerprint != self._fingerprint:
            self._index = _build(self._list)
            self._fingerprint = fingerprint
        return self._index

    def authorize(self, attrs: RequestAttributes) -> tuple[bool, str]:
        """(allowed, reason). The reason names the binding that allowed; on a denial it is ""
        (kube-apiserver's RBAC gives none) unless a binding refers to a role that is missing."""
        attrs = _effective(attrs)
        index = self._current()
        missing: list[str] = []
        scopes = (
            [""] if not attrs.is_resource_request or not attrs.namespace else ["", attrs.namespace]
        )
        for scope in scopes:
            for binding in _bindings_for(index, scope, attrs.user):
                rules = _role_rules(index, binding)
                if rules is None:
                    missing.append(_missing(binding))
                    continue
                if not attrs.is_resource_request and binding.kind != "ClusterRoleBinding":
                    continue
                if any(rule.allows(attrs) for rule in rules):
                    return True, binding.describe()
        return False, "; ".join(dict.fromkeys(missing))

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[Rule]]:
        """(resource rules, non-resource rules) the user has in ``namespace`` (for
        SelfSubjectRulesReview / ``kubectl auth can-i --list``)."""
        index = self._current()
        resource: list[Rule] = []
        non_resource: list[Rule] = []
        for scope in ("", namespace) if namespace else ("",):
            for binding in _bindings_for(index, scope, user):
                for rule in _role_rules(index, binding) or ():
                    if rule.non_resource_urls:
                        if binding.kind == "ClusterRoleBinding":
                            non_resource.append(rule)
                    else:
                        resource.append(rule)
        return list(dict.fromkeys(resource)), list(dict.fromkeys(non_resource))


def _bindings_for(index: _Index, scope: str, user: UserInfo) -> Iterable[_Binding]:
    by_subject = index.bindings.get(scope)
    if not by_subject:
        return
    yield from by_subject.get(("user", user.name), ())
    for group in user.groups:
        yield from by_subject.get(("group", group), ())


def _role_rules(index: _Index, binding: _Binding) -> tuple[Rule, ...] | None:
    if binding.role_kind == "ClusterRole":
        return index.cluster_roles.get(binding.role_name)
    return index.roles.get((binding.namespace, binding.role_name))


def _missing(binding: _Binding) -> str:
    kind = binding.role_kind.lower()
    return f'{kind}.rbac.authorization.k8s.io "{binding.role_name}" not found'


def _effective(attrs: RequestAttributes) -> RequestAttributes:
    """As kube-apiserver's request info: a request on one Namespace object is "in" that
    namespace, so a RoleBinding there can grant ``get namespaces`` on it."""
    if (
        attrs.resource == "namespaces"
        and not attrs.api_group
        and attrs.name
        and not attrs.namespace
    ):
        return replace(attrs, namespace=attrs.name)
    return attrs


def forbidden_message(attrs: RequestAttributes, reason: str = "") -> str:
    """The Status message kube-apiserver sends with a 403, word for word.

    ``pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the
    namespace "ns"``; for a non-resource path: ``forbidden: User "u" cannot get path "/"``.
    """
    attrs = _effective(attrs)
    user = attrs.user.name
    if not attrs.is_resource_request:
        what = f"User {_q(user)} cannot {attrs.verb} path {_q(attrs.path)}"
        prefix = "forbidden"
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        scope = (
            f"in the namespace {_q(attrs.namespace)}" if attrs.namespace else "at the cluster scope"
        )
        what = (
            f"User {_q(user)} cannot {attrs.verb} resource {_q(resource)} in API group "
            f"{_q(attrs.api_group)} {scope}"
        )
        qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
        prefix = (
            f"{qualified} {_q(attrs.name)} is forbidden"
            if attrs.name
            else f"{qualified} is forbidden"
        )
    return f"{prefix}: {what}: {reason}" if reason else f"{prefix}: {what}"


def _q(text: str) -> str:
    """Go's %q for the plain strings that occur here."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
