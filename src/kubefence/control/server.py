"""The HTTPS API server: one aiohttp app, routes declared in `make_app`, middlewares for errors,
authentication, audit; authorization per request from its `RequestAttributes`.

Why this split: URL parsing and rendering live here; object semantics live in `objects.py`;
watch streaming and access reviews in `watching.py` and `reviews.py`. Every error leaves as a
`Status` (never a traceback); bodies over 3 MiB get 413, malformed JSON/YAML 400.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import yaml
from aiohttp import web

from kubefence.control import discovery, openapi
from kubefence.control.authn import Authenticator
from kubefence.control.identity import ANONYMOUS, RequestAttributes, UserInfo
from kubefence.control.objects import Objects, WriteOptions
from kubefence.control.protobuf import decode_body
from kubefence.control.rbac import Authorizer, forbidden_message
from kubefence.control.registry import ResourceType
from kubefence.control.reviews import review
from kubefence.control.selectors import parse_field_selector, parse_label_selector
from kubefence.control.status import ApiError, status_body
from kubefence.control.tables import table, wants_table
from kubefence.control.watching import watch_response

__all__ = ["MAX_BODY", "ServerConfig", "make_app"]

MAX_BODY = 3 * 1024 * 1024
log = logging.getLogger("kubefence.control")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Obj = dict[str, Any]

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


@dataclass(frozen=True, slots=True)
class ServerConfig:
    objects: Objects
    authenticator: Authenticator | None  # None: everyone is system:masters (tests only)
    authorizer: Authorizer | None
    audit: TextIO | None = None
    server_address: str = "127.0.0.1:6443"


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    if ";" in content_type:
        return web.Response(body=data, status=status, headers={"Content-Type": content_type})
    return web.Response(body=data, status=status, content_type=content_type)


# -- middlewares ----------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _json(error.body(), error.code)
    except web.HTTPRequestEntityTooLarge:
        return _json(
            status_body(413, "RequestEntityTooLarge", "the request body is too large (> 3 MiB)"),
            413,
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _json(
            status_body(error.status, error.reason, error.text or error.reason), error.status
        )
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return _json(status_body(500, "InternalError", "an internal error occurred"), 500)


def _peer_cert(request: web.Request) -> bytes | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


def _authn(config: ServerConfig) -> Any:
    masters = UserInfo("kubefence:test", ("system:masters", "system:authenticated"))

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        if config.authenticator is None:
            user: UserInfo | None = masters
        else:
            user = config.authenticator.authenticate(
                peer_cert_der=_peer_cert(request),
                authorization=request.headers.get("Authorization"),
            )
        response: web.StreamResponse
        if user is None:
            response = _json(status_body(401, "Unauthorized", "Unauthorized"), 401)
            user = ANONYMOUS
        else:
            try:
                user = _impersonate(config, request, user)
            except ApiError as error:
                return _json(error.body(), error.code)
            request["user"] = user
            response = await handler(request)
        if config.audit is not None:
            attrs: RequestAttributes | None = request.get("attrs")
            entry = {
                "ts": round(time.time(), 3),
                "user": user.name,
                "groups": list(user.groups),
                "verb": attrs.verb if attrs else request.method.lower(),
                "resource": attrs.resource if attrs else "",
                "subresource": attrs.subresource if attrs else "",
                "namespace": attrs.namespace if attrs else "",
                "name": attrs.name if attrs else "",
                "path": request.path,
                "code": response.status,
                "ms": round((time.monotonic() - started) * 1000, 2),
            }
            config.audit.write(json.dumps(entry) + "\n")
            config.audit.flush()
        return response

    return middleware


def _impersonate(config: ServerConfig, request: web.Request, user: UserInfo) -> UserInfo:
    """`Impersonate-User`/`-Group`/`-Uid` headers (kubectl --as/--as-group), allowed by RBAC's
    `impersonate` verb on users/groups/uids as the API server does."""
    name = request.headers.get("Impersonate-User")
    groups = tuple(request.headers.getall("Impersonate-Group", []))
    if name is None:
        if groups:
            raise ApiError(400, "BadRequest", "requested impersonation of groups without a user")
        return user
    uid = request.headers.get("Impersonate-Uid", "")
    checks = [("users", name)] + [("groups", g) for g in groups] + ([("uids", uid)] if uid else [])
    for resource, value in checks:
        attrs = RequestAttributes(
            user=user,
            verb="impersonate",
            api_group="",
            resource=resource,
            name=value,
            path=request.path,
        )
        if config.authorizer is not None and not config.authorizer.authorize(attrs)[0]:
            raise ApiError(403, "Forbidden", forbidden_message(attrs))
    if name == "system:anonymous":
        return UserInfo(name, groups or ("system:unauthenticated",), uid)
    return UserInfo(name, (*groups, "system:authenticated"), uid)


def _authorize(config: ServerConfig, request: web.Request, attrs: RequestAttributes) -> None:
    request["attrs"] = attrs
    if config.authorizer is None:
        return
    allowed, reason = config.authorizer.authorize(attrs)
    if not allowed:
        raise ApiError(
            403,
            "Forbidden",
            forbidden_message(attrs, reason),
            kind=attrs.resource,
            name=attrs.name,
            group=attrs.api_group,
        )


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


async def _resource(config: ServerConfig, request: web.Request, group: str, version: str) -> Any:
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
    _authorize(config, request, attrs)
    if verb not in rt.verbs:
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {rt.qualified}")
    objects = config.objects
    query = request.query
    if verb == "get":
        return _json(await objects.get(rt, target.namespace, target.name))
    if verb in ("list", "watch"):
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        if verb == "watch":
            return await watch_response(request, objects, rt, target.namespace, labels, fields)
        limit = _int_param(query.get("limit", "0"), "limit")
        table_wanted = wants_table(request.headers.get("Accept", ""))
        if not (labels.requirements or fields.terms or limit or table_wanted):
            raw, at = await objects.list_raw(rt, target.namespace)
            head = json.dumps(
                {"kind": f"{rt.kind}List", "apiVersion": rt.group_version,
                 "metadata": {"resourceVersion": str(at)}}, separators=(",", ":")
            ).encode()  # fmt: skip
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
            return _json(
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
        return _json(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.group_version,
                "metadata": metadata,
                "items": items,
            }
        )
    body = await _body(request)
    options = _write_options(request, target.subresource)
    if verb == "create":
        if not rt.stored:
            return _json(review(config.authorizer, request["user"], rt, body), 201)
        new = await objects.create(rt, target.namespace, body, options)
        return _json(new, 201)
    if verb == "update":
        return _json(await objects.update(rt, target.namespace, target.name, body, options))
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
        return _json(patched, 201 if was_created else 200)
    if verb == "delete":
        preconditions = (body or {}).get("preconditions") or {} if isinstance(body, dict) else {}
        deleted = await objects.delete(
            rt,
            target.namespace,
            target.name,
            dry_run=options.dry_run,
            precondition_rv=preconditions.get("resourceVersion", ""),
            precondition_uid=preconditions.get("uid", ""),
        )
        return _json(deleted)
    # deletecollection
    labels = parse_label_selector(query.get("labelSelector"))
    fields = parse_field_selector(query.get("fieldSelector"))
    items, revision, _ = await objects.list(rt, target.namespace, labels=labels, fields=fields)
    for item in items:
        meta = item["metadata"]
        try:
            await objects.delete(
                rt, meta.get("namespace", ""), meta["name"], dry_run=options.dry_run
            )
        except ApiError as error:
            if error.code != 404:
                raise
    return _json(
        {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.group_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }
    )


# -- the app --------------------------------------------------------------------------------


def make_app(config: ServerConfig) -> web.Application:
    """The API server as an aiohttp application (TLS is the runner's business)."""
    app = web.Application(middlewares=[_errors, _authn(config)], client_max_size=MAX_BODY)
    registry = config.objects.registry

    def non_resource(produce: Callable[[web.Request], Any]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            attrs = RequestAttributes(
                user=request["user"], verb=request.method.lower(), path=request.path
            )
            _authorize(config, request, attrs)
            result = produce(request)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(result)

        return handler

    def health(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    def root(request: web.Request) -> Obj:
        paths = [
            "/api",
            "/api/v1",
            "/apis",
            "/healthz",
            "/livez",
            "/openapi/v3",
            "/readyz",
            "/version",
        ]
        paths += [f"/apis/{g}" for g in registry.group_versions()]
        paths += [f"/apis/{g}/{v}" for g, vs in registry.group_versions().items() for v in vs]
        return {"paths": sorted(paths)}

    def api(request: web.Request) -> Any:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return _json(discovery.aggregated(registry, core=True), 200, discovery.AGGREGATED_TYPE)
        return discovery.api_versions(config.server_address)

    def apis(request: web.Request) -> Any:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return _json(discovery.aggregated(registry, core=False), 200, discovery.AGGREGATED_TYPE)
        return discovery.api_group_list(registry)

    def api_group(request: web.Request) -> Any:
        group = request.match_info["group"]
        for entry in discovery.api_group_list(registry)["groups"]:
            if entry["name"] == group:
                return {"kind": "APIGroup", "apiVersion": "v1", **entry}
        return None

    def openapi_doc(request: web.Request) -> Any:
        parts = request.match_info["path"].split("/")
        if parts == ["api", "v1"]:
            return openapi.document(registry, "", "v1")
        if len(parts) == 3 and parts[0] == "apis":
            return openapi.document(registry, parts[1], parts[2])
        return None

    def resources(group: str | None) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            g = request.match_info.get("group", "") if group is None else group
            version = request.match_info["version"]
            if not request.match_info.get("rest"):
                attrs = RequestAttributes(user=request["user"], verb="get", path=request.path)
                _authorize(config, request, attrs)
                found = discovery.resource_list(registry, g, version)
                if found is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return _json(found)
            response: web.StreamResponse = await _resource(config, request, g, version)
            return response

        return handler

    async def not_found(request: web.Request) -> web.StreamResponse:
        attrs = RequestAttributes(
            user=request["user"], verb=request.method.lower(), path=request.path
        )
        _authorize(config, request, attrs)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    routes = [
        web.get("/", non_resource(root)),
        web.get("/version", non_resource(lambda r: discovery.version_info())),
        web.get("/healthz", non_resource(health)),
        web.get("/livez", non_resource(health)),
        web.get("/readyz", non_resource(health)),
        web.get("/api", non_resource(api)),
        web.get("/apis", non_resource(apis)),
        web.get("/openapi/v3", non_resource(lambda r: openapi.index(registry))),
        web.get("/openapi/v3/{path:.*}", non_resource(openapi_doc)),
        web.get("/apis/{group}", non_resource(api_group)),
    ]
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        routes += [
            web.route(method, "/api/{version}", resources("")),
            web.route(method, "/api/{version}/{rest:.*}", resources("")),
            web.route(method, "/apis/{group}/{version}", resources(None)),
            web.route(method, "/apis/{group}/{version}/{rest:.*}", resources(None)),
        ]
    routes.append(web.route("*", "/{tail:.*}", not_found))
    app.add_routes(routes)
    return app


def rbac_cache() -> tuple[Callable[[str], Iterable[Mapping[str, Any]]], Callable[..., None]]:
    """(list_objects for the Authorizer, on_write hook for Objects): RBAC objects kept in memory
    from the server's own writes (this server is their only writer)."""
    cache: dict[str, dict[tuple[str, str], Obj]] = {}

    def list_objects(kind: str) -> Iterable[Mapping[str, Any]]:
        return list(cache.get(kind, {}).values())

    def on_write(rt: ResourceType, obj: Obj, deleted: bool) -> None:
        if rt.group != "rbac.authorization.k8s.io":
            return
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        bucket = cache.setdefault(rt.kind, {})
        if deleted:
            bucket.pop(key, None)
        else:
            bucket[key] = obj

    return list_objects, on_write
