"""Connecting to an API server and raw JSON requests on any resource.

Why this module exists: every API client of kubefence needs the same three things: credentials
from a kubeconfig (or the in-cluster service account), a path for a resource, and requests whose
bodies are plain dicts. The official client supplies the first and the transport (urllib3 with
TLS, client certificates, bearer tokens, token refresh); ``Kube`` supplies the rest, returning
dicts and raising ``ApiError`` with the server's ``Status`` for any non-2xx answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

__all__ = ["ApiError", "Kube", "Resource", "connect"]

Obj = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer: ``code`` is the HTTP status, ``status`` the server's ``Status`` body
    (``reason`` such as ``NotFound``, ``Conflict``, ``Expired``) when it sent one."""

    def __init__(self, code: int, status: Mapping[str, Any] | None, text: str) -> None:
        self.code = code
        self.status: Mapping[str, Any] = status or {}
        self.reason = str(self.status.get("reason", ""))
        message = str(self.status.get("message") or text or f"HTTP {code}")
        super().__init__(f"{code} {self.reason}: {message}".replace(" : ", ": "))


@dataclass(frozen=True, slots=True)
class Resource:
    """A served resource: ``Resource("", "v1", "pods")`` or ``Resource("apps", "v1",
    "deployments")``; ``namespaced`` False for cluster-scoped kinds."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, *, namespace: str | None = None, name: str | None = None, subresource: str = ""
    ) -> str:
        """The URL path: collection (all namespaces when ``namespace`` is None), or one object."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


def connect(
    kubeconfig: str | Path | None = None,
    *,
    context: str | None = None,
    pool_size: int | None = None,
) -> Kube:
    """A ``Kube`` for a kubeconfig file (its current context, or ``context``); with no file, the
    in-cluster service account when running in a pod, else ``$KUBECONFIG``/``~/.kube/config``.
    ``pool_size``: how many connections to keep open (the official default is 5 per CPU; a
    process with many informers, each holding a watch, and parallel writers wants more)."""
    if kubeconfig is None:
        try:
            configuration = k8s_client.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            if pool_size:
                configuration.connection_pool_maxsize = pool_size
            return Kube(k8s_client.ApiClient(configuration))
        except k8s_config.ConfigException:
            pass
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=None if kubeconfig is None else str(kubeconfig),
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    if pool_size:
        configuration.connection_pool_maxsize = pool_size
    return Kube(k8s_client.ApiClient(configuration))


class Kube:
    """Raw JSON requests over one official ``ApiClient`` (thread-safe: urllib3 pools)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def close(self) -> None:
        self.api.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = 30.0,
    ) -> Any:
        if query:
            path = f"{path}?{urlencode(query)}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, headers, body, _ = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            return self.api.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
        except k8s_client.ApiException as exc:
            raise _api_error(int(exc.status or 0), exc.body or "") from None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = 30.0,
        decode: Callable[[bytes], Obj] | None = None,
    ) -> Obj:
        """One request; the decoded JSON answer (by ``decode`` when given), or ``ApiError``."""
        response = self._send(
            method, path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        data = response.read()
        if not 200 <= response.status < 300:
            raise _api_error(response.status, data)
        if not data:
            return {}
        return decode(data) if decode is not None else cast(Obj, json.loads(data))

    def get(self, path: str, **query: str) -> Obj:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body=body)

    def replace(self, path: str, body: Obj) -> Obj:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: Obj, *, kind: str = "merge") -> Obj:
        """``kind``: merge (RFC 7386), strategic, json (RFC 6902)."""
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[kind]
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, **query: str) -> Obj:
        return self.request("DELETE", path, query=query)

    def list(
        self,
        path: str,
        *,
        page: int = 500,
        query: Mapping[str, str] | None = None,
        decode: Callable[[bytes], Obj] | None = None,
    ) -> tuple[list[Obj], str]:
        """Every item of a collection, ``page`` at a time (``limit``/``continue``), and the
        list's resourceVersion (the first page's, as client-go's pager does). ``decode``: how
        to read one page's body (plain JSON when None; a reader that keeps only what its
        caller reads must keep ``metadata`` and ``items``)."""
        items: list[Obj] = []
        token = ""
        version = ""
        while True:
            params = dict(query or {}, limit=str(page))
            if token:
                params["continue"] = token
            answer = self.request("GET", path, query=params, decode=decode)
            items.extend(answer.get("items") or ())
            metadata = answer.get("metadata") or {}
            version = version or str(metadata.get("resourceVersion", ""))
            token = str(metadata.get("continue") or "")
            if not token:
                return items, version

    def watch(
        self, path: str, *, resource_version: str, timeout_seconds: int = 300, **query: str
    ) -> Iterator[Obj]:
        """The events of one watch request (``{"type": ..., "object": ...}``), until the server
        ends it; an ``ERROR`` event with a 410 ``Status`` is raised as ``ApiError(410)``."""
        params = dict(
            query,
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout_seconds),
        )
        response = self._send("GET", path, query=params, timeout=(10.0, timeout_seconds + 30.0))
        raw = response.response
        try:
            if not 200 <= response.status < 300:
                raise _api_error(response.status, raw.read())
            pending = b""
            for chunk in raw.stream(amt=None, decode_content=False):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = cast(Obj, json.loads(line))
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(int(status.get("code") or 500), status, "")
                    yield event
        finally:
            raw.release_conn()


def _api_error(code: int, data: bytes | str) -> ApiError:
    text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
    try:
        status = json.loads(text)
    except ValueError:
        status = None
    return ApiError(code, status if isinstance(status, dict) else None, text.strip()[:500])
