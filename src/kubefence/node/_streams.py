"""The node's streaming endpoints: exec, attach and container logs, as a kubelet serves them.

Why this module exists: `kubectl exec/attach/logs` reach a container through the API server,
which proxies to the node that runs the pod. This is that node end: an aiohttp route table the
node component mounts on its HTTPS server (kubelet paths ``/exec/{ns}/{pod}/{container}``,
``/attach/{ns}/{pod}/{container}``, ``/containerLogs/{ns}/{pod}/{container}``,
``/portForward/{ns}/{pod}``: see ``_portforward``), answering only
clients whose certificate the cluster CA signed with CN ``kube-apiserver-kubelet-client``
(others get 403). What it needs from the node component is the small :class:`PodDirectory`.

exec and attach speak the WebSocket remote-command protocol kubectl uses
(``v5.channel.k8s.io``; ``v4.channel.k8s.io`` without the close signal): each binary message is
one channel byte and data - 0 stdin, 1 stdout, 2 stderr, 3 error (one JSON ``Status`` when the
command ends: ``Success``, or ``Failure``/``NonZeroExitCode`` with the exit code in
``details.causes``), 4 resize (``{"Width": w, "Height": h}``), 255 close (v5: the client is done
with the stream named by the next byte). The query follows the kubelet: ``command`` (repeated),
``input``, ``output``, ``error``, ``tty`` (``1``/``true``). Logs are a plain streaming GET with
``follow``, ``tailLines``, ``timestamps``, ``previous``, ``sinceSeconds``, ``sinceTime``,
``limitBytes``; they come from the CRI log file the container's :class:`ContainerProcess` writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from kubefence.node._portforward import PROTOCOL as PORT_FORWARD
from kubefence.node._portforward import PortForwardSession
from kubefence.node._process import (
    DEFAULT_PATH,
    STDERR,
    STDOUT,
    ContainerProcess,
    follow_log,
    read_log,
)

__all__ = [
    "APISERVER_CLIENT",
    "PROTOCOLS",
    "PodDirectory",
    "exit_status",
    "make_app",
    "stream_routes",
    "tls_context",
]

APISERVER_CLIENT = "kube-apiserver-kubelet-client"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, ERROR, RESIZE, CLOSE = 0, 3, 4, 255
_TRUE = ("1", "true", "True")
Obj = dict[str, Any]


class PodDirectory(Protocol):
    """What the streaming endpoints need to know from the node component."""

    def netns(self, namespace: str, pod: str) -> str | None:
        """The pod's network namespace name; None while it has none (not started)."""
        ...

    def containers(self, namespace: str, pod: str) -> list[str]:
        """The pod's container names; empty when this node runs no such pod."""
        ...

    def main_process(self, namespace: str, pod: str, container: str) -> ContainerProcess | None:
        """The container's main process when it is one we can attach to (shell images)."""
        ...

    def log_path(self, namespace: str, pod: str, container: str) -> Path | None:
        """The container's CRI log file, if it has one."""
        ...


# -- answers --------------------------------------------------------------------------------


def _status(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def _fail(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(_status(code, reason, message), status=code)


def exit_status(argv: Sequence[str], code: int) -> Obj:
    """The error-channel Status for a finished command, as kubelets send it."""
    if code == 0:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        f"[{' '.join(argv)}], exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _peer_common_name(request: web.Request) -> str | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()  # {} unless the CA verified a presented certificate
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in _TRUE


# -- the routes -----------------------------------------------------------------------------


class _Routes:
    __slots__ = ("allowed", "directory")

    def __init__(self, directory: PodDirectory, allowed: Sequence[str]) -> None:
        self.directory = directory
        self.allowed = frozenset(allowed)

    def _check(self, request: web.Request) -> web.Response | None:
        """403 unless an allowed client certificate; 404 unless the pod and container exist."""
        user = _peer_common_name(request)
        if user is None or user not in self.allowed:
            who = f'user "{user}"' if user else "anonymous"
            return _fail(403, "Forbidden", f"Forbidden ({who} cannot use the node's API)")
        info = request.match_info
        containers = self.directory.containers(info["namespace"], info["pod"])
        if not containers:
            return _fail(404, "NotFound", "pod does not exist")
        if "container" in info and info["container"] not in containers:
            return _fail(404, "NotFound", f'container not found ("{info["container"]}")')
        return None

    async def exec(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check(request)) is not None:
            return denied
        info = request.match_info
        namespace, pod, container = info["namespace"], info["pod"], info["container"]
        argv = request.query.getall("command", [])
        if not argv:
            return _fail(400, "BadRequest", "you must specify at least 1 command")
        netns = self.directory.netns(namespace, pod)
        if netns is None:
            return _fail(400, "BadRequest",
                         f'container "{container}" in pod "{pod}" is waiting to start')  # fmt: skip
        ws = await _upgrade(request)
        if isinstance(ws, web.Response):
            return ws
        tty, stdin = _flag(request, "tty"), _flag(request, "input")
        missing = _missing_program(argv[0])
        if missing:
            await _send(ws, ERROR, json.dumps(_status(500, "InternalError", missing)).encode())
            await ws.close()
            return ws
        env = {"HOSTNAME": pod}
        try:
            process = await ContainerProcess.spawn(
                argv, netns=netns, tty=tty, stdin=stdin, env=env, backpressure=True
            )
        except OSError as error:
            message = f"failed to exec in container: {error}"
            await _send(ws, ERROR, json.dumps(_status(500, "InternalError", message)).encode())
            await ws.close()
            return ws
        output = process.subscribe()
        await _pump(request, ws, process, output, stdin=stdin, for_exec=True)
        return ws

    async def attach(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check(request)) is not None:
            return denied
        info = request.match_info
        namespace, pod, container = info["namespace"], info["pod"], info["container"]
        process = self.directory.main_process(namespace, pod, container)
        if process is None or not process.running:
            return _fail(400, "BadRequest",
                         f'container "{container}" in pod "{pod}" is not running '
                         "a process that can be attached to")  # fmt: skip
        ws = await _upgrade(request)
        if isinstance(ws, web.Response):
            return ws
        output = process.subscribe()
        await _pump(request, ws, process, output, stdin=_flag(request, "input"), for_exec=False)
        return ws

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check(request)) is not None:
            return denied
        pod = request.match_info["pod"]
        netns = self.directory.netns(request.match_info["namespace"], pod)
        if netns is None:
            return _fail(400, "BadRequest", f'pod "{pod}" has no network namespace yet')
        ws = web.WebSocketResponse(protocols=(PORT_FORWARD,), autoping=True, max_msg_size=0)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol != PORT_FORWARD:
            text = f"this node forwards ports over WebSockets only ({PORT_FORWARD})"
            return _fail(426, "UpgradeRequired", text)
        await ws.prepare(request)
        session = PortForwardSession(ws.send_bytes, netns=netns, pod=pod)
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    await session.feed(message.data)
        finally:
            await session.close()
        return ws

    async def logs(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._check(request)) is not None:
            return denied
        info = request.match_info
        namespace, pod, container = info["namespace"], info["pod"], info["container"]
        query = request.query
        if _flag(request, "previous"):
            return _fail(400, "BadRequest",
                         f'previous terminated container "{container}" in pod "{pod}" '
                         "not found")  # fmt: skip
        try:
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
            since = _since(query.get("sinceSeconds"), query.get("sinceTime"))
        except ValueError as error:
            return _fail(400, "BadRequest", f"invalid log options: {error}")
        path = self.directory.log_path(namespace, pod, container)
        timestamps = _flag(request, "timestamps")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        budget = [limit if limit is not None and limit >= 0 else -1]

        async def write(data: bytes) -> bool:
            if budget[0] >= 0:
                data = data[: budget[0]]
                budget[0] -= len(data)
            if data:
                await response.write(data)
            return budget[0] != 0

        if path is None:
            await response.write_eof()
            return response
        text, offset = read_log(
            path, tail_lines=tail if tail is not None and tail >= 0 else None,
            timestamps=timestamps, since=since,
        )  # fmt: skip
        more = await write(text)
        if more and _flag(request, "follow"):
            done = asyncio.Event()
            watcher = asyncio.ensure_future(self._until_gone(namespace, pod, container, done))
            try:
                async for chunk in follow_log(path, offset, timestamps=timestamps, done=done):
                    if not await write(chunk):
                        break
            finally:
                watcher.cancel()
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _until_gone(
        self, namespace: str, pod: str, container: str, done: asyncio.Event
    ) -> None:
        """Set ``done`` when the container's main process exits or the pod leaves this node."""
        while True:
            process = self.directory.main_process(namespace, pod, container)
            if process is not None:
                await process.wait()
                break
            if container not in self.directory.containers(namespace, pod):
                break
            await asyncio.sleep(1.0)
        done.set()


def _since(seconds: str | None, at: str | None) -> dt.datetime | None:
    if seconds:
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(seconds))
    if at:
        return dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return None


def _missing_program(program: str) -> str:
    if "/" in program or shutil.which(program, path=DEFAULT_PATH) is not None:
        return ""
    return f'exec: "{program}": executable file not found in $PATH'


async def _upgrade(request: web.Request) -> web.WebSocketResponse | web.Response:
    """The WebSocket, with a channel protocol negotiated; a 400 Status otherwise (no SPDY)."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol not in PROTOCOLS:
        return _fail(426, "UpgradeRequired",
                     "this node streams over WebSockets only (subprotocol "
                     f"{' or '.join(PROTOCOLS)}); upgrade the client")  # fmt: skip
    await ws.prepare(request)
    return ws


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(bytes([channel]) + data)


async def _pump(
    request: web.Request,
    ws: web.WebSocketResponse,
    process: ContainerProcess,
    output: Any,
    *,
    stdin: bool,
    for_exec: bool,
) -> None:
    """Frames both ways until the process ends (exec: send its Status) or the client leaves
    (exec: kill the process; attach: detach, closing stdin when ``stdin_once``)."""
    wanted = {STDOUT: _flag(request, "output") or process.tty, STDERR: _flag(request, "error")}
    v5 = ws.ws_protocol == PROTOCOLS[0]

    async def outbound() -> None:
        async for channel, data in output:
            if wanted.get(channel):
                await _send(ws, channel, data)

    async def inbound() -> None:
        async for message in ws:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            data: bytes = message.data
            channel, body = data[0], data[1:]
            if channel == STDIN and stdin:
                await process.write_stdin(body)
            elif channel == RESIZE:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    size = json.loads(body)
                    process.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
            elif (
                channel == CLOSE
                and v5
                and body[:1] == bytes([STDIN])
                and stdin
                and (for_exec or process.stdin_once)
            ):
                process.close_stdin()

    sending = asyncio.ensure_future(outbound())
    receiving = asyncio.ensure_future(inbound())
    try:
        await asyncio.wait([sending, receiving], return_when=asyncio.FIRST_COMPLETED)
        if sending.done():  # the process ended (or the client fell a backlog behind)
            if for_exec:
                code = await process.wait()
                await _send(ws, ERROR, json.dumps(exit_status(process.argv, code)).encode())
            with contextlib.suppress(ConnectionError):
                await ws.close()
    finally:
        receiving.cancel()
        sending.cancel()
        await asyncio.gather(sending, receiving, return_exceptions=True)
        process.unsubscribe(output)
        if for_exec and process.running:
            await process.stop(grace=0.5)
        elif not for_exec and stdin and process.stdin_once:
            process.close_stdin()


# -- assembly -------------------------------------------------------------------------------


def stream_routes(
    directory: PodDirectory, *, allowed: Sequence[str] = (APISERVER_CLIENT,)
) -> list[web.RouteDef]:
    """The kubelet streaming routes over ``directory``, for the node component's app."""
    routes = _Routes(directory, allowed)
    return [
        web.get("/exec/{namespace}/{pod}/{container}", routes.exec),
        web.post("/exec/{namespace}/{pod}/{container}", routes.exec),
        web.get("/attach/{namespace}/{pod}/{container}", routes.attach),
        web.post("/attach/{namespace}/{pod}/{container}", routes.attach),
        web.get("/containerLogs/{namespace}/{pod}/{container}", routes.logs),
        web.get("/portForward/{namespace}/{pod}", routes.port_forward),
    ]


def make_app(
    directory: PodDirectory, *, allowed: Sequence[str] = (APISERVER_CLIENT,)
) -> web.Application:
    """An app serving only the streaming routes (tests; a node may add its own routes)."""
    app = web.Application()
    app.add_routes(stream_routes(directory, allowed=allowed))
    return app


def tls_context(cert: Path, key: Path, ca_cert: Path) -> ssl.SSLContext:
    """Server TLS for a node: its serving certificate; client certificates verified against
    the cluster CA when presented (the routes reject requests without an allowed one)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca_cert)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context
