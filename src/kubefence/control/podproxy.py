"""Pod subresources that stream: ``exec``, ``attach``, ``portforward`` and ``log``.

Why this module exists: kubectl does not talk to nodes; it asks the API server for
``pods/<name>/exec`` (and attach, log, portforward), and the API server authorizes the request,
finds the node running the pod and proxies to that node's kubelet endpoint. This is that step:

- Authorization as upstream: verb ``create`` on ``pods/exec``, ``pods/attach`` and
  ``pods/portforward`` (for the WebSocket GET too), ``get`` on ``pods/log``.
- The pod must exist (404 ``pods "x" not found``); the ``container`` parameter must name one of
  its containers (400 ``container y is not valid for pod x``; without one, a pod with several
  containers gets 400 ``a container name must be specified ...``); exec and attach need a node
  (400 ``pod x does not have a host assigned``), logs of an unscheduled pod are empty.
- The node's kubelet endpoint: port ``status.daemonEndpoints.kubeletEndpoint.Port`` of the Node,
  host from the Node's annotation ``kubefence.io/kubelet-host`` (default ``127.0.0.1``: sandbox
  node components run in the host namespace). The connection is TLS, the node's serving
  certificate verified against the cluster CA for that host, and we authenticate with the
  ``apiserver-kubelet-client`` certificate (CN ``kube-apiserver-kubelet-client``).
- exec/attach/portforward: the WebSocket protocol (``v5.channel.k8s.io``, v4 also relayed;
  ``SPDY/3.1+portforward.k8s.io`` for port-forward, whose messages tunnel a SPDY session the
  node serves) is negotiated with the node first, then with the client, and binary messages are
  relayed both ways unchanged. Plain SPDY upgrades (kubectl's fallback) get the node's refusal
  when it has one (the node checks pod and container first), else a 400 Status saying
  WebSockets are required.
- log: a streaming GET relayed chunk by chunk (``follow``, ``tailLines``, ``timestamps``,
  ``previous``, ``sinceSeconds``, ``sinceTime``, ``limitBytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import WSMsgType, web

from kubefence.control.context import ServerConfig, authorize, json_response
from kubefence.control.identity import RequestAttributes
from kubefence.control.pki import ClusterPKI
from kubefence.control.status import ApiError

__all__ = ["KUBELET_HOST_ANNOTATION", "kubelet_client_tls", "pod_stream_routes"]

KUBELET_HOST_ANNOTATION = "kubefence.io/kubelet-host"
DEFAULT_KUBELET_HOST = "127.0.0.1"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORT_FORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io",)  # SPDY tunneled in WebSocket messages
_STREAMING = ("exec", "attach", "portforward")
_LOG_PARAMS = ("follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines",
               "limitBytes")  # fmt: skip
_EXEC_PARAMS = (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty"))
_CONNECT_TIMEOUT = 10.0
Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kubelet_client_tls(pki: ClusterPKI) -> ssl.SSLContext:
    """Client TLS towards nodes: trust the cluster CA, present the kubelet-client certificate."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(pki.kubelet_client_cert, pki.kubelet_client_key)
    return context


def _true(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _container(pod: Obj, requested: str) -> str:
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [str(c.get("name")) for c in spec.get("containers") or [] if isinstance(c, dict)]
    others = [
        str(c.get("name"))
        for key in ("initContainers", "ephemeralContainers")
        for c in spec.get(key) or []
        if isinstance(c, dict)
    ]
    if not requested:
        if len(names) == 1:
            return names[0]
        choices = " ".join(names + others)
        raise ApiError.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{choices}]"
        )
    if requested not in names + others:
        raise ApiError.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _upgrade_wanted(request: web.Request) -> str:
    """``websocket``, ``spdy`` or ``""`` from the request's Connection/Upgrade headers."""
    if "upgrade" not in request.headers.get("Connection", "").lower():
        return ""
    upgrade = request.headers.get("Upgrade", "").lower()
    return "websocket" if upgrade == "websocket" else "spdy" if upgrade.startswith("spdy") else ""


class _PodProxy:
    __slots__ = ("_session", "config")

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self.config.kubelet_tls is None:
            raise ApiError(503, "ServiceUnavailable",
                           "this API server has no kubelet client credentials")  # fmt: skip
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.config.kubelet_tls, limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(sock_connect=_CONNECT_TIMEOUT)
            )
        return self._session

    async def close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    # -- the common part ----------------------------------------------------------------------

    async def _locate(self, request: web.Request, subresource: str) -> tuple[Obj, str, str | None]:
        """Authorize, then the pod, its container and the node's base URL (None: no node)."""
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        attrs = RequestAttributes(
            user=request["user"],
            verb="get" if subresource == "log" else "create",
            namespace=namespace,
            resource="pods",
            subresource=subresource,
            name=name,
            path=request.path,
        )
        authorize(self.config, request, attrs)
        objects = self.config.objects
        pods = objects.registry.by_kind("Pod")
        nodes = objects.registry.by_kind("Node")
        assert pods is not None
        assert nodes is not None
        pod = await objects.get(pods, namespace, name)
        container = ""
        if subresource != "portforward":
            container = _container(pod, request.query.get("container", ""))
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node_name:
            return pod, container, None
        node = await objects.get(nodes, "", node_name)
        annotations = node["metadata"].get("annotations") or {}
        host = str(annotations.get(KUBELET_HOST_ANNOTATION) or DEFAULT_KUBELET_HOST)
        endpoint = ((node.get("status") or {}).get("daemonEndpoints") or {}).get(
            "kubeletEndpoint"
        ) or {}
        port = endpoint.get("Port") if isinstance(endpoint, dict) else None
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ApiError(503, "ServiceUnavailable",
                           f"node {node_name} has no kubelet endpoint "
                           "(status.daemonEndpoints.kubeletEndpoint.Port)")  # fmt: skip
        if ":" in host:
            host = f"[{host}]"
        return pod, container, f"https://{host}:{port}"

    @staticmethod
    def _node_path(kind: str, pod: Obj, container: str) -> str:
        meta = pod["metadata"]
        parts = (meta.get("namespace", ""), meta["name"], *([container] if container else []))
        return f"/{kind}/" + "/".join(quote(p, safe="") for p in parts)

    async def _node_refusal(self, url: str) -> web.Response | None:
        """Ask the node without an upgrade (it checks pod and container first, with no side
        effects): its refusal, or None when it only said that an upgrade is required (426)."""
        try:
            async with self.session().get(url) as answer:
                return None if answer.status == 426 else await self._node_error(answer)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(500, "InternalError", f"error dialing backend: {error}") from None

    @staticmethod
    async def _node_error(response: aiohttp.ClientResponse) -> web.Response:
        """The node's answer when it was not what we asked for: its Status, passed on."""
        raw = await response.read()
        try:
            body = await response.json(content_type=None) if raw.strip() else None
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            return json_response(body, response.status)
        text = raw.decode(errors="replace").strip() or response.reason or "error"
        raise ApiError(response.status if response.status >= 400 else 500, "InternalError",
                       f"error from the node: {text}")  # fmt: skip

    # -- exec and attach ----------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        subresource = request.match_info["subresource"]
        pod, container, base = await self._locate(request, subresource)
        name = pod["metadata"]["name"]
        if base is None:
            raise ApiError.bad_request(f"pod {name} does not have a host assigned")
        query: list[tuple[str, str]] = [("command", c) for c in request.query.getall("command", [])]
        query += [(to, "1") for frm, to in _EXEC_PARAMS if _true(request.query.get(frm))]
        node_kind = "portForward" if subresource == "portforward" else subresource
        url = f"{base}{self._node_path(node_kind, pod, container)}?{urlencode(query)}"
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        served = PORT_FORWARD_PROTOCOLS if subresource == "portforward" else PROTOCOLS
        protocols = [p for p in served if p in offered]
        if _upgrade_wanted(request) != "websocket" or not protocols:
            # kubectl falls back to SPDY when the WebSocket upgrade fails, and prints the answer
            # to that second attempt: the node's reason (no such container...) when it has one.
            refusal = await self._node_refusal(url)
            if refusal is not None:
                return refusal
            raise ApiError.bad_request(
                f"{subresource} needs a WebSocket upgrade (subprotocol "
                f"{' or '.join(served)}); SPDY is not supported by kubefence's API server"
            )
        try:
            upstream = await self.session().ws_connect(
                url, protocols=protocols, autoping=True, max_msg_size=0, autoclose=False
            )
        except aiohttp.WSServerHandshakeError:
            refusal = await self._node_refusal(url)
            if refusal is not None:
                return refusal
            raise ApiError(502, "BadGateway", "the node refused the stream") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(500, "InternalError", f"error dialing backend: {error}") from None
        try:
            ws = web.WebSocketResponse(
                protocols=(upstream.protocol or protocols[0],), autoping=True, max_msg_size=0
            )
            await ws.prepare(request)
            await _relay(ws, upstream)
        finally:
            await upstream.close()
        return ws

    # -- logs ---------------------------------------------------------------------------------

    async def log(self, request: web.Request) -> web.StreamResponse:
        pod, container, base = await self._locate(request, "log")
        if base is None:
            return web.Response(body=b"", content_type="text/plain")
        query = [(k, request.query[k]) for k in _LOG_PARAMS if k in request.query]
        url = f"{base}{self._node_path('containerLogs', pod, container)}?{urlencode(query)}"
        try:
            upstream = await self.session().get(url, timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=_CONNECT_TIMEOUT))  # fmt: skip
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(500, "InternalError", f"error dialing backend: {error}") from None
        async with upstream:
            if upstream.status != 200:
                return await self._node_error(upstream)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response


async def _relay(client: web.WebSocketResponse, node: aiohttp.ClientWebSocketResponse) -> None:
    """Copy binary frames both ways until either side closes; then close the other."""

    async def node_to_client() -> None:
        async for message in node:
            if message.type == WSMsgType.BINARY:
                await client.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await client.send_str(message.data)
        await client.close()

    async def client_to_node() -> None:
        async for message in client:
            if message.type == WSMsgType.BINARY:
                await node.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await node.send_str(message.data)
        await node.close()

    tasks = [asyncio.ensure_future(node_to_client()), asyncio.ensure_future(client_to_node())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done:  # the node finished: the client gets every frame, then the close
            with contextlib.suppress(Exception):
                await client.close()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def pod_stream_routes(config: ServerConfig, app: web.Application) -> list[web.RouteDef]:
    """The routes, to be added before the generic resource routes; closes its client on
    ``app`` cleanup."""
    proxy = _PodProxy(config)
    app.on_cleanup.append(proxy.close)
    base = "/api/v1/namespaces/{namespace}/pods/{name}"
    streaming = base + "/{subresource:" + "|".join(_STREAMING) + "}"
    return [
        web.get(streaming, proxy.stream),
        web.post(streaming, proxy.stream),
        web.get(base + "/log", proxy.log),
    ]
