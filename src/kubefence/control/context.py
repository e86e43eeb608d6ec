"""What every request handler shares: the server's configuration, JSON answers, and the
authorization step (with impersonation) that turns a request's attributes into 403 or nothing.

Split from `server.py` so that the resource handlers (`handlers.py`) and the app factory can
both use it without importing each other.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, TextIO

from aiohttp import web

from kubefence.control.authn import Authenticator
from kubefence.control.identity import RequestAttributes, UserInfo
from kubefence.control.objects import Objects
from kubefence.control.rbac import Authorizer, forbidden_message
from kubefence.control.status import ApiError

__all__ = ["MAX_BODY", "ServerConfig", "authorize", "impersonate", "json_response"]

MAX_BODY = 3 * 1024 * 1024
Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    objects: Objects
    authenticator: Authenticator | None  # None: everyone is system:masters (tests only)
    authorizer: Authorizer | None
    audit: TextIO | None = None
    server_address: str = "127.0.0.1:6443"
    kubelet_tls: ssl.SSLContext | None = None  # client TLS to nodes (podproxy); None: no nodes


def json_response(
    body: Any, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    if ";" in content_type:
        return web.Response(body=data, status=status, headers={"Content-Type": content_type})
    return web.Response(body=data, status=status, content_type=content_type)


def impersonate(config: ServerConfig, request: web.Request, user: UserInfo) -> UserInfo:
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


def authorize(config: ServerConfig, request: web.Request, attrs: RequestAttributes) -> None:
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
