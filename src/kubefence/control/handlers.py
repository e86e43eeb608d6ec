"""Resource requests: `/api/v1/...` and `/apis/<group>/<version>/...` to object operations.

It parses the URL (namespace, resource, name, subresource), derives the verb, authorizes, decodes
the body (JSON, YAML, protobuf; at most 3 MiB) and calls `objects.Objects`; lists are answered as
a `<Kind>List` (spliced from stored bytes when unfiltered) or a Table; watches stream.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from kubefence.control.cascade import propagation_policy
from kubefence.control.context import (
    MAX_BODY,
    ServerConfig,
    authorize,
    json_response,
)
from kubefence.control.identity import RequestAttributes
from kubefence.control.node_restriction import restrict_node
from kubefence.control.objects import WriteOptions
from kubefence.control.patch import apply_json_patch, merge_patch
from kubefence.control.protobuf import decode_body
from kubefence.control.registry import ResourceType
from kubefence.control.reviews import review
from kubefence.control.selectors import parse_field_selector, parse_label_selector
from kubefence.control.status import ApiError
from kubefence.control.tables import table, wants_table
from kubefence.control.tokens import token_request
from kubefence.control.watching import watch_response
from kubefence.errors import FieldError

__all__ = ["resource_request"]

Obj = dict[str, Any]

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


# -- bodies ---------------------------------------------------------------------------------


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
    if content_type == "application/vnd.kubernetes.protobuf":
        return decode_body(raw)
    if "protobuf" in content_type or "cbor" in content_type:
        raise ApiError(415, "UnsupportedMediaType", f"unsupported media type {content_type!r}")
    try:
        if content_type.endswith("yaml"):
            return yaml.safe_load(raw.decode()) if raw.strip() else None
        return json.loads(raw) if raw.strip() else None
    except (ValueError, yaml.YAMLError) as error:
        kind = "YAML" if content_type.endswith("yaml") else "JSON"
        raise ApiError.bad_request(f"error decoding {kind}: {str(error).splitlines()[0]}") from None


async def _token(config: ServerConfig, target: _Target, body: Any) -> Obj:
    """TokenRequest (`kubectl create token`): a service-account JWT signed by the cluster."""
    account = await config.objects.get(target.rt, target.namespace, target.name)
    if config.authenticator is None:
        raise ApiError(503, "ServiceUnavailable", "this server issues no tokens")
    answer, problems = token_request(
        config.authenticator.tokens,
        namespace=target.namespace,
        service_account=target.name,
        uid=str(account["metadata"].get("uid", "")),
        body=body if isinstance(body, dict) else None,
    )
    if answer is None:
        found = [FieldError(message, path) for path, message in problems]
        raise ApiError.invalid("TokenRequest", target.name, found, group="authentication.k8s.io")
    return answer


def _as_scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = selector.get("matchLabels") or {} if isinstance(selector, dict) else {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas") or 0)},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas") or 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


async def _scale(config: ServerConfig, request: web.Request, target: _Target, verb: str) -> Obj:
    """The scale subresource (`kubectl scale`): an autoscaling/v1 Scale view of spec.replicas."""
    objects = config.objects
    current = await objects.get(target.rt, target.namespace, target.name)
    if verb == "get":
        return _as_scale(current)
    body = await _body(request)
    if verb == "patch":
        kind = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch_type = _PATCH_TYPES.get(kind)
        if patch_type is None:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {kind!r}")
        if patch_type == "json":
            body = apply_json_patch(_as_scale(current), body)
        else:
            body = merge_patch(_as_scale(current), body)
    replicas = ((body or {}).get("spec") or {}).get("replicas") if isinstance(body, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        invalid = FieldError("must be greater than or equal to 0", "spec.replicas")
        raise ApiError.invalid("Scale", target.name, [invalid], group="autoscaling")
    updated = {**current, "spec": {**(current.get("spec") or {}), "replicas": replicas}}
    options = _write_options(request, "")
    saved = await objects.update(target.rt, target.namespace, target.name, updated, options)
    return _as_scale(saved)


async def _bind(config: ServerConfig, target: _Target, body: Any) -> Obj:
    """``pods/binding`` (the scheduler's write): set ``spec.nodeName`` and the PodScheduled
    condition in one compare-and-swap; 409 when the pod is already bound, as upstream."""
    node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
    kind = ((body or {}).get("target") or {}).get("kind", "Node") if isinstance(body, dict) else ""
    if not isinstance(node, str) or not node or kind not in ("", "Node"):
        invalid = FieldError("Required value: a Node name is required", "target.name")
        raise ApiError.invalid("Binding", target.name, [invalid])
    for _ in range(8):
        current = await config.objects.get(target.rt, target.namespace, target.name)
        bound = (current.get("spec") or {}).get("nodeName")
        if bound or current["metadata"].get("deletionTimestamp"):
            why = (
                f'pod {target.name} is already assigned to node "{bound}"'
                if bound
                else (f"pod {target.name} is being deleted, cannot be assigned to a host")
            )
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on pods/binding "{target.name}": {why}',
                           kind="pods/binding", name=target.name)  # fmt: skip
        status = dict(current.get("status") or {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        now = _now()
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now})  # fmt: skip
        status["conditions"] = conditions
        updated = {**current, "spec": {**current["spec"], "nodeName": node}, "status": status}
        try:
            await config.objects.update(
                target.rt, target.namespace, target.name, updated,
                WriteOptions(manager="kube-scheduler", subresource="binding"),
            )  # fmt: skip
        except ApiError as error:
            if error.reason == "Conflict":
                continue
            raise
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "code": 201}  # fmt: skip
    raise ApiError.conflict("pods", target.name)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_param(text: str, name: str) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        raise ApiError.bad_request(f"invalid {name}: {text!r}") from None


def _write_options(request: web.Request, subresource: str) -> WriteOptions:
    query = request.query
    dry_run = query.getall("dryRun", [])
    if any(v != "All" for v in dry_run):
        raise ApiError.bad_request(f"unsupported dryRun value {dry_run!r}")
    validation = query.get("fieldValidation", "Strict")
    manager = query.get("fieldManager") or request.headers.get("User-Agent", "").split("/")[0]
    return WriteOptions(
        dry_run=bool(dry_run),
        manager=manager,
        strict=validation == "Strict",
        subresource=subresource,
    )


# -- resource routing -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    rt: ResourceType
    namespace: str
    name: str
    subresource: str


def _target(config: ServerConfig, group: str, version: str, rest: str) -> _Target:
    parts = [p for p in rest.split("/") if p]
    registry = config.objects.registry
    namespace = ""
    if (
        parts
        and parts[0] == "namespaces"
        and len(parts) >= 3
        and parts[2] not in ("status", "finalize")
    ):
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    rt = registry.find(group, version, parts[0])
    if rt is None or (namespace and not rt.namespaced):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if sub and sub not in rt.subresources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return _Target(rt, namespace, name, sub)


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _verb(request: web.Request, target: _Target) -> str:
    if request.method == "GET":
        if not target.name:
            return "watch" if request.query.get("watch") in ("true", "1") else "list"
        return "get"
    if request.method == "DELETE" and not target.name:
        return "deletecollection"
    return _VERBS.get(request.method, request.method.lower())


async def resource_request(
    config: ServerConfig, request: web.Request, group: str, version: str
) -> Any:
    target = _target(config, group, version, request.match_info.get("rest", ""))
    rt = target.rt
    verb = _verb(request, target)
    attrs = RequestAttributes(
        user=request["user"],
        verb=verb,
        namespace=target.namespace,
        api_group=rt.group,
        resource=rt.plural,
        subresource=target.subresource,
        name=target.name,
        path=request.path,
    )
    authorize(config, request, attrs)
    if verb not in rt.verbs:
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {rt.qualified}")
    objects = config.objects
    query = request.query
    if target.subresource == "scale":
        return json_response(await _scale(config, request, target, verb))
    if verb == "get":
        found = await objects.get(rt, target.namespace, target.name)
        if wants_table(request.headers.get("Accept", "")):  # `kubectl get deploy web`
            return json_response(
                table(rt, [found], resource_version=found["metadata"].get("resourceVersion", ""),
                      include_object=query.get("includeObject", "Metadata"))
            )  # fmt: skip
        return json_response(found)
    if verb in ("list", "watch"):
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        if verb == "watch":
            return await watch_response(request, objects, rt, target.namespace, labels, fields)
        limit = _int_param(query.get("limit", "0"), "limit")
        table_wanted = wants_table(request.headers.get("Accept", ""))
        if not (labels.requirements or fields.terms or table_wanted):
            token = ""
            if limit > 0:
                raw, at, token = await objects.list_raw_page(
                    rt, target.namespace, limit=limit, continue_token=query.get("continue", "")
                )
            else:
                raw, at = await objects.list_raw(rt, target.namespace)
            head_meta = {"resourceVersion": str(at), **({"continue": token} if token else {})}
            head = json.dumps(
                {"kind": f"{rt.kind}List", "apiVersion": rt.group_version, "metadata": head_meta},
                separators=(",", ":"),
            ).encode()
            body = head[:-1] + b',"items":[' + b",".join(raw) + b"]}"
            return web.Response(body=body, content_type="application/json")
        items, revision, token = await objects.list(
            rt,
            target.namespace,
            labels=labels,
            fields=fields,
            limit=limit,
            continue_token=query.get("continue", ""),
        )
        if table_wanted:
            return json_response(
                table(
                    rt,
                    items,
                    resource_version=str(revision),
                    include_object=query.get("includeObject", "Metadata"),
                    continue_token=token,
                )
            )
        metadata: Obj = {"resourceVersion": str(revision)}
        if token:
            metadata["continue"] = token
        return json_response(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.group_version,
                "metadata": metadata,
                "items": items,
            }
        )
    body = await _body(request)
    options = _write_options(request, target.subresource)
    await restrict_node(objects, request["user"], rt, verb=verb, namespace=target.namespace,
                        name=target.name, subresource=target.subresource, body=body)  # fmt: skip
    if verb == "create" and target.subresource == "token":
        return json_response(await _token(config, target, body), 201)
    if verb == "create" and target.subresource == "binding":
        return json_response(await _bind(config, target, body), 201)
    if verb == "create":
        if not rt.stored:
            return json_response(review(config.authorizer, request["user"], rt, body), 201)
        new = await objects.create(rt, target.namespace, body, options)
        return json_response(new, 201)
    if verb == "update":
        return json_response(await objects.update(rt, target.namespace, target.name, body, options))
    if verb == "patch":
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch_type = _PATCH_TYPES.get(content_type)
        if patch_type is None:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {content_type!r}")
        if patch_type == "apply" and not query.get("fieldManager"):
            raise ApiError.bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set"
            )
        patched, was_created = await objects.patch(
            rt,
            target.namespace,
            target.name,
            patch_type,
            body,
            options,
            force=query.get("force") == "true",
        )
        return json_response(patched, 201 if was_created else 200)
    if verb == "delete":
        preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
        deleted = await objects.delete(
            rt,
            target.namespace,
            target.name,
            dry_run=options.dry_run,
            precondition_rv=preconditions.get("resourceVersion", ""),
            precondition_uid=preconditions.get("uid", ""),
            orphan=propagation_policy(body, query) == "Orphan",
        )
        return json_response(deleted)
    # deletecollection
    labels = parse_label_selector(query.get("labelSelector"))
    fields = parse_field_selector(query.get("fieldSelector"))
    items, revision, _ = await objects.list(rt, target.namespace, labels=labels, fields=fields)
    orphan = propagation_policy(body, query) == "Orphan"
    for item in items:
        meta = item["metadata"]
        try:
            await objects.delete(
                rt,
                meta.get("namespace", ""),
                meta["name"],
                dry_run=options.dry_run,
                orphan=orphan,
            )
        except ApiError as error:
            if error.code != 404:
                raise
    return json_response(
        {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.group_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }
    )
