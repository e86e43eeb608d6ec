"""The HTTPS API server: one aiohttp app, routes declared in `make_app`, middlewares for errors,
authentication (with impersonation) and the audit log; authorization per request from its
`RequestAttributes` (`context.authorize`).

Why this split: the app, its non-resource routes and middlewares live here; resource requests in
`handlers.py`; object semantics in `objects.py`; watch streaming and access reviews in
`watching.py` and `reviews.py`. Every error leaves as a
`Status` (never a traceback); bodies over 3 MiB get 413, malformed JSON/YAML 400.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kubefence.control import discovery, openapi
from kubefence.control.context import (
    MAX_BODY,
    ServerConfig,
    authorize,
    impersonate,
    json_response,
)
from kubefence.control.handlers import resource_request
from kubefence.control.identity import ANONYMOUS, RequestAttributes, UserInfo
from kubefence.control.podproxy import pod_stream_routes
from kubefence.control.status import ApiError, status_body, store_failure
from kubefence.control.store import StoreError

__all__ = ["make_app"]

log = logging.getLogger("kubefence.control")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Obj = dict[str, Any]

# -- middlewares ----------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return json_response(error.body(), error.code)
    except StoreError as error:  # the ones Objects did not translate: the store itself failed
        log.warning("store failure on %s %s: %s", request.method, request.path, error)
        return json_response(store_failure(error), 503)
    except web.HTTPRequestEntityTooLarge:
        return json_response(
            status_body(413, "RequestEntityTooLarge", "the request body is too large (> 3 MiB)"),
            413,
        )
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return json_response(
            status_body(error.status, error.reason, error.text or error.reason), error.status
        )
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response(status_body(500, "InternalError", "an internal error occurred"), 500)


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
            response = json_response(status_body(401, "Unauthorized", "Unauthorized"), 401)
            user = ANONYMOUS
        else:
            try:
                user = impersonate(config, request, user)
            except ApiError as error:
                return json_response(error.body(), error.code)
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
            authorize(config, request, attrs)
            result = produce(request)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(result)

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
            return json_response(
                discovery.aggregated(registry, core=True), 200, discovery.AGGREGATED_TYPE
            )
        return discovery.api_versions(config.server_address)

    def apis(request: web.Request) -> Any:
        if discovery.wants_aggregated(request.headers.get("Accept", "")):
            return json_response(
                discovery.aggregated(registry, core=False), 200, discovery.AGGREGATED_TYPE
            )
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
                authorize(config, request, attrs)
                found = discovery.resource_list(registry, g, version)
                if found is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return json_response(found)
            response: web.StreamResponse = await resource_request(config, request, g, version)
            return response

        return handler

    async def not_found(request: web.Request) -> web.StreamResponse:
        attrs = RequestAttributes(
            user=request["user"], verb=request.method.lower(), path=request.path
        )
        authorize(config, request, attrs)
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
        *pod_stream_routes(config, app),  # before the generic routes: they stream to nodes
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
