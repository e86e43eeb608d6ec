"""OpenAPI v3 documents for the served kinds, as kubectl reads them.

kubectl 1.27+ uses OpenAPI v3: `explain` walks the schema of a kind (found by its
`x-kubernetes-group-version-kind`), `apply` takes list merge keys from it, and validation checks
that the PATCH operation accepts `fieldValidation` (then the server validates, strictly). The
index `/openapi/v3` names one document per group-version. NetworkPolicy is described field by
field (our descriptions); other kinds have their top-level fields and free-form spec/status.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubefence.control.registry import Registry, ResourceType

__all__ = ["document", "index"]

Obj = dict[str, Any]
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
NET = "io.k8s.api.networking.v1"


def _ref(name: str, description: str) -> Obj:
    return {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "description": description}


def _str(description: str) -> Obj:
    return {"type": "string", "description": description}


def _array(items: Obj, description: str, **extra: Any) -> Obj:
    return {"type": "array", "items": items, "description": description, **extra}


def _map(description: str) -> Obj:
    return {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": description,
    }


_SHARED: dict[str, Obj] = {
    f"{META}.ObjectMeta": {
        "type": "object",
        "description": (
            "Standard object metadata: name, namespace, labels and what the server sets."
        ),
        "properties": {
            "name": _str("Name of the object, unique within its namespace and kind."),
            "generateName": _str("Prefix for a server-generated name when name is empty."),
            "namespace": _str("Namespace the object lives in (namespaced kinds only)."),
            "labels": _map("Key/value labels that selectors match."),
            "annotations": _map("Unstructured key/value data for tools."),
            "uid": _str("Unique id, set by the server."),
            "resourceVersion": _str("Version of the object (the store revision of its write)."),
            "generation": {"type": "integer", "format": "int64", "description": "Spec version."},
            "creationTimestamp": _str("When the object was created (RFC 3339)."),
            "managedFields": _array({"type": "object"}, "Which manager owns which fields."),
        },
    },
    f"{META}.LabelSelector": {
        "type": "object",
        "description": "A label query; both parts are ANDed, and an empty selector matches all.",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchLabels": _map("Labels that must all be present with these values."),
            "matchExpressions": _array(
                {"$ref": f"#/components/schemas/{META}.LabelSelectorRequirement"},
                "Set-based requirements, all of which must hold.",
            ),
        },
    },
    f"{META}.LabelSelectorRequirement": {
        "type": "object",
        "required": ["key", "operator"],
        "description": "One requirement: key, operator (In, NotIn, Exists, DoesNotExist), values.",
        "properties": {
            "key": _str("The label key."),
            "operator": _str("In, NotIn, Exists or DoesNotExist."),
            "values": _array({"type": "string"}, "Values for In and NotIn; empty otherwise."),
        },
    },
    f"{NET}.NetworkPolicySpec": {
        "type": "object",
        "description": "Which pods the policy selects and which traffic it allows them.",
        "properties": {
            "podSelector": _ref(
                f"{META}.LabelSelector",
                "Pods in the policy's namespace that the policy applies to; empty selects all.",
            ),
            "policyTypes": _array(
                {"type": "string"},
                "Ingress, Egress or both: the directions the policy isolates. Defaults to "
                "Ingress, plus Egress when egress rules are given.",
            ),
            "ingress": _array(
                {"$ref": f"#/components/schemas/{NET}.NetworkPolicyIngressRule"},
                "Allowed incoming traffic; traffic matching any rule is allowed.",
            ),
            "egress": _array(
                {"$ref": f"#/components/schemas/{NET}.NetworkPolicyEgressRule"},
                "Allowed outgoing traffic; traffic matching any rule is allowed.",
            ),
        },
    },
    f"{NET}.NetworkPolicyIngressRule": {
        "type": "object",
        "description": "Traffic allowed in: from any of the peers, to any of the ports.",
        "properties": {
            "from": _array(
                {"$ref": f"#/components/schemas/{NET}.NetworkPolicyPeer"},
                "Sources; empty or missing means every source.",
            ),
            "ports": _array(
                {"$ref": f"#/components/schemas/{NET}.NetworkPolicyPort"},
                "Destination ports; empty or missing means every port.",
            ),
        },
    },
    f"{NET}.NetworkPolicyEgressRule": {
        "type": "object",
        "description": "Traffic allowed out: to any of the peers, on any of the ports.",
        "properties": {
            "to": _array(
                {"$ref": f"#/components/schemas/{NET}.NetworkPolicyPeer"},
                "Destinations; empty or missing means every destination.",
            ),
            "ports": _array(
                {"$ref": f"#/components/schemas/{NET}.NetworkPolicyPort"},
                "Destination ports; empty or missing means every port.",
            ),
        },
    },
    f"{NET}.NetworkPolicyPeer": {
        "type": "object",
        "description": "Pods by namespace and/or pod labels, or an IP block.",
        "properties": {
            "podSelector": _ref(f"{META}.LabelSelector", "Pods by label."),
            "namespaceSelector": _ref(f"{META}.LabelSelector", "Namespaces by label."),
            "ipBlock": _ref(f"{NET}.IPBlock", "A CIDR with optional exceptions."),
        },
    },
    f"{NET}.NetworkPolicyPort": {
        "type": "object",
        "description": "A port (number or named) and protocol, optionally a range to endPort.",
        "properties": {
            "protocol": _str("TCP (default), UDP or SCTP."),
            "port": {
                "x-kubernetes-int-or-string": True,
                "description": "Port number or name on the pod; missing means all ports.",
            },
            "endPort": {"type": "integer", "format": "int32", "description": "Range end."},
        },
    },
    f"{NET}.IPBlock": {
        "type": "object",
        "required": ["cidr"],
        "description": "A CIDR range, minus the except ranges inside it.",
        "properties": {
            "cidr": _str("The range, e.g. 198.18.0.0/16."),
            "except": _array({"type": "string"}, "Sub-ranges excluded from cidr."),
        },
    },
}

_SPEC_SCHEMA = {"NetworkPolicy": f"{NET}.NetworkPolicySpec"}


def _schema_name(rt: ResourceType) -> str:
    group = rt.group.split(".")[0] if rt.group else "core"
    if rt.group == "rbac.authorization.k8s.io":
        group = "rbac"
    return f"io.k8s.api.{group}.{rt.version}.{rt.kind}"


def _kind_schema(rt: ResourceType) -> Obj:
    properties: Obj = {
        "apiVersion": _str(f"The versioned schema of this object: {rt.group_version}."),
        "kind": _str(f"The kind of this object: {rt.kind}."),
        "metadata": _ref(f"{META}.ObjectMeta", "Standard object metadata."),
    }
    if rt.kind in _SPEC_SCHEMA:
        properties["spec"] = _ref(_SPEC_SCHEMA[rt.kind], f"What the {rt.kind} specifies.")
    elif rt.has_spec:
        properties["spec"] = {"type": "object", "description": f"The {rt.kind}'s specification."}
    if "status" in rt.subresources:
        properties["status"] = {"type": "object", "description": f"Observed {rt.kind} state."}
    return {
        "type": "object",
        "description": f"{rt.kind} ({rt.group_version}), served by kubefence.",
        "properties": properties,
        "x-kubernetes-preserve-unknown-fields": rt.kind not in _SPEC_SCHEMA,
        "x-kubernetes-group-version-kind": [
            {"group": rt.group, "version": rt.version, "kind": rt.kind}
        ],
    }


_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for n in ("dryRun", "fieldManager", "fieldValidation")
] + [{"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}}]


def _operation(rt: ResourceType, action: str, ref: str) -> Obj:
    body = {"content": {"application/json": {"schema": {"$ref": ref}}}}
    return {
        "parameters": _PARAMS,
        "requestBody": body,
        "responses": {"200": {"description": "OK", **body}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
    }


def _paths(rt: ResourceType) -> Obj:
    base = f"/apis/{rt.group_version}" if rt.group else f"/api/{rt.version}"
    scope = "/namespaces/{namespace}" if rt.namespaced else ""
    ref = f"#/components/schemas/{_schema_name(rt)}"
    collection = f"{base}{scope}/{rt.plural}"
    return {
        collection: {"post": _operation(rt, "post", ref)},
        f"{collection}/{{name}}": {
            "put": _operation(rt, "put", ref),
            "patch": _operation(rt, "patch", ref),
        },
    }


def document(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    schemas: Obj = dict(_SHARED)
    paths: Obj = {}
    for rt in types:
        schemas[_schema_name(rt)] = _kind_schema(rt)
        if rt.stored:
            paths.update(_paths(rt))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def index(registry: Registry) -> Obj:
    """`/openapi/v3`: group-version -> the URL of its document (with a content hash)."""
    entries = {"api/v1": ("", "v1")}
    for group, versions in registry.group_versions().items():
        for v in versions:
            entries[f"apis/{group}/{v}"] = (group, v)
    paths = {}
    for path, (group, version) in entries.items():
        doc = json.dumps(document(registry, group, version), sort_keys=True).encode()
        digest = hashlib.sha512(doc).hexdigest()[:64].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}
