"""Access and identity reviews, the virtual kinds behind `kubectl auth can-i` and `whoami`.

SelfSubjectAccessReview asks the authorizer about the requesting user; SubjectAccessReview
about any user (RBAC restricts who may create it); SelfSubjectRulesReview lists the requesting
user's rules in a namespace (`kubectl auth can-i --list`); SelfSubjectReview echoes the
authenticated user. Nothing is stored.
"""

from __future__ import annotations

from typing import Any

from kubefence.control.identity import RequestAttributes, UserInfo
from kubefence.control.rbac import Authorizer
from kubefence.control.registry import ResourceType
from kubefence.control.status import ApiError

__all__ = ["review"]

Obj = dict[str, Any]


def _attributes(user: UserInfo, spec: Obj) -> RequestAttributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        return RequestAttributes(
            user=user,
            verb=str(resource.get("verb", "")),
            namespace=str(resource.get("namespace", "")),
            api_group=str(resource.get("group", "")),
            resource=str(resource.get("resource", "")),
            subresource=str(resource.get("subresource", "")),
            name=str(resource.get("name", "")),
        )
    other = spec.get("nonResourceAttributes")
    if isinstance(other, dict):
        return RequestAttributes(
            user=user, verb=str(other.get("verb", "")), path=str(other.get("path", ""))
        )
    raise ApiError(
        422, "Invalid", "exactly one of nonResourceAttributes or resourceAttributes must be set"
    )


def review(authorizer: Authorizer | None, user: UserInfo, rt: ResourceType, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise ApiError.bad_request("the request body must be an object")
    answer: Obj = {
        "apiVersion": rt.group_version,
        "kind": rt.kind,
        "metadata": {"creationTimestamp": None},
    }
    spec = body.get("spec") or {}
    if rt.kind == "SelfSubjectReview":
        info: Obj = {"username": user.name, "groups": list(user.groups)}
        if user.uid:
            info["uid"] = user.uid
        answer["status"] = {"userInfo": info}
        return answer
    if rt.kind == "SelfSubjectRulesReview":
        answer["spec"] = spec
        answer["status"] = _rules(authorizer, user, str(spec.get("namespace") or ""))
        return answer
    subject = user
    if rt.kind == "SubjectAccessReview":
        subject = UserInfo(
            str(spec.get("user", "")), tuple(spec.get("groups") or ()), str(spec.get("uid", ""))
        )
    attrs = _attributes(subject, spec)
    allowed, reason = (True, "") if authorizer is None else authorizer.authorize(attrs)
    answer["spec"] = spec
    answer["status"] = {"allowed": allowed}
    if reason:
        answer["status"]["reason"] = reason
    return answer


def _rules(authorizer: Authorizer | None, user: UserInfo, namespace: str) -> Obj:
    """SubjectRulesReviewStatus: what RBAC grants the user in ``namespace`` (and cluster-wide).

    Complete (``incomplete: false``): RBAC is the only authorizer, and ``rules_for`` resolves
    aggregated ClusterRoles as authorization does. Without an authorizer everything is allowed.
    """
    if authorizer is None:
        everything: Obj = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
        return {
            "resourceRules": [everything],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    resource, non_resource = authorizer.rules_for(user, namespace)
    return {
        "resourceRules": [rule.to_dict() for rule in resource],
        "nonResourceRules": [rule.to_dict() for rule in non_resource],
        "incomplete": False,
    }
