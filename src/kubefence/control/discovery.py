"""Discovery documents: what groups, versions and resources the server has.

Clients (kubectl's RESTMapper, client-go) read these before anything else. Both forms are
served: the legacy per-group-version `APIResourceList`s, and aggregated discovery
(`apidiscovery.k8s.io/v2 APIGroupDiscoveryList`, one request for everything) when the client's
Accept header asks for it, which kubectl since 1.30 does first.
"""

from __future__ import annotations

from typing import Any

from kubefence.control.registry import Registry, ResourceType

__all__ = [
    "AGGREGATED_TYPE",
    "SERVER_VERSION",
    "aggregated",
    "api_group_list",
    "api_versions",
    "resource_list",
    "version_info",
    "wants_aggregated",
]

SERVER_VERSION = ("1", "37", "v1.37.0+kubefence")
AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

Obj = dict[str, Any]


def wants_aggregated(accept: str) -> bool:
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def version_info() -> Obj:
    major, minor, git = SERVER_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list(registry: Registry) -> Obj:
    groups = []
    for group, versions in registry.group_versions().items():
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": listed, "preferredVersion": listed[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


#: subresources whose objects are of another kind: (group, version, kind)
_SUB_KINDS = {
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "scale": ("autoscaling", "v1", "Scale"),
}


def _sub_verbs(subresource: str) -> list[str]:
    return ["create"] if subresource == "token" else ["get", "patch", "update"]


def _sub_kind(rt: ResourceType, subresource: str) -> tuple[str, str, str]:
    return _SUB_KINDS.get(subresource, (rt.group, rt.version, rt.kind))


def resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[Obj] = []
    for rt in types:
        entry: Obj = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            group, version, kind = _sub_kind(rt, sub)
            sub_entry: Obj = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": _sub_verbs(sub),
            }
            if sub in _SUB_KINDS:
                sub_entry["group"], sub_entry["version"] = group, version
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": types[0].group_version,
        "resources": resources,
    }


def _aggregated_resource(rt: ResourceType) -> Obj:
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    entry: Obj = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.subresources:
        entry["subresources"] = [
            {
                "subresource": sub,
                "responseKind": dict(
                    zip(("group", "version", "kind"), _sub_kind(rt, sub), strict=True)
                ),
                "verbs": _sub_verbs(sub),
            }
            for sub in rt.subresources
        ]
    return entry


def aggregated(registry: Registry, *, core: bool) -> Obj:
    """The aggregated discovery document of `/api` (core=True) or `/apis`."""
    if core:
        groups: dict[str, tuple[str, ...]] = {"": ("v1",)}
    else:
        groups = dict(registry.group_versions())
    items = []
    for group, versions in groups.items():
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            _aggregated_resource(rt)
                            for rt in registry.in_group_version(group, version)
                        ],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
