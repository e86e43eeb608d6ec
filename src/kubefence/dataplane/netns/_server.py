"""The sandbox's one server process: every pod's declared ports, served from one event loop.

Why this module exists: a pod in the sandbox is only a network namespace; something must answer
on its container ports so that a probe can tell "reached the pod" from "dropped on the way".
One daemonised process opens a socket per (pod, port, protocol) *inside the pod's namespace*
(``setns`` in the creating thread, then back) and serves them all with ``selectors``:

- TCP: accept; pods with an ``nginx`` image answer HTTP on port 80 with the nginx welcome page
  (after reading the request), other ports send a one-line banner naming the pod; then close.
- UDP: echo every datagram to its sender.
- SCTP: not served (this kernel has no SCTP sockets); probes report such pairs as unprobed.

Run as ``python -m kubefence.dataplane.netns._server SPEC.json``: the launching process exits 0
once every socket is bound (1 with the error on stderr otherwise), leaving the daemon running
in its own session; the daemon exits on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubefence.dataplane.netns._daemon import Stopped, daemonize, dual_stack, stop_on_sigterm
from kubefence.dataplane.netns._system import entered, raise_fd_limit

__all__ = ["NGINX_WELCOME", "ServedPod", "main", "read_spec", "server_spec"]

NGINX_WELCOME = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""

_CONN_TIMEOUT = 2.0  # seconds a client may take to send its request / close


@dataclass(frozen=True, slots=True)
class ServedPod:
    """What the server opens for one pod."""

    key: str
    netns: str
    tcp: tuple[int, ...] = ()
    udp: tuple[int, ...] = ()
    nginx: bool = False


def is_nginx_image(image: str) -> bool:
    """``nginx``, ``nginx:1.25``, ``docker.io/library/nginx@sha256:...``, ``nginxinc/nginx-...``."""
    repository = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]
    return repository.startswith("nginx")


def server_spec(pods: Sequence[ServedPod]) -> dict[str, Any]:
    return {
        "pods": [
            {
                "key": p.key,
                "netns": p.netns,
                "tcp": list(p.tcp),
                "udp": list(p.udp),
                "nginx": p.nginx,
            }
            for p in pods
        ]
    }


def read_spec(path: str) -> list[ServedPod]:
    """The pods a spec file written by ``server_spec`` names."""
    data = json.loads(Path(path).read_text())
    return [
        ServedPod(
            key=str(p["key"]),
            netns=str(p["netns"]),
            tcp=tuple(int(x) for x in p["tcp"]),
            udp=tuple(int(x) for x in p["udp"]),
            nginx=bool(p["nginx"]),
        )
        for p in data["pods"]
    ]


@dataclass(slots=True)
class _Listener:
    pod: ServedPod
    port: int
    udp: bool


@dataclass(slots=True)
class _Conn:
    pod: ServedPod
    port: int
    http: bool
    deadline: float
    request: bytearray = field(default_factory=bytearray)
    answered: bool = False


def _open_all(pods: Sequence[ServedPod], sel: selectors.BaseSelector) -> int:
    count = 0
    for pod in pods:
        ports = set(pod.tcp) | ({80} if pod.nginx else set())
        with entered(pod.netns):
            for port in sorted(ports):
                sel.register(
                    dual_stack(socket.SOCK_STREAM, port),
                    selectors.EVENT_READ,
                    _Listener(pod, port, udp=False),
                )
                count += 1
            for port in sorted(set(pod.udp)):
                sel.register(
                    dual_stack(socket.SOCK_DGRAM, port),
                    selectors.EVENT_READ,
                    _Listener(pod, port, udp=True),
                )
                count += 1
    return count


def _http_response(pod: ServedPod) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nServer: nginx (kubefence sandbox)\r\n"
        "Content-Type: text/html\r\n"
        f"Content-Length: {len(NGINX_WELCOME)}\r\nX-Kubefence-Pod: {pod.key}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + NGINX_WELCOME


def _answer(sock: socket.socket, conn: _Conn) -> None:
    payload = _http_response(conn.pod) if conn.http else f"kubefence {conn.pod.key}\n".encode()
    try:
        sock.setblocking(True)
        sock.settimeout(_CONN_TIMEOUT)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
    except OSError:
        pass
    conn.answered = True


def _close(sel: selectors.BaseSelector, sock: socket.socket) -> None:
    with contextlib.suppress(KeyError, ValueError):
        sel.unregister(sock)
    sock.close()


def serve(pods: Sequence[ServedPod], *, ready: int | None = None) -> None:
    """Open every socket, report readiness on file descriptor ``ready``, serve until SIGTERM."""
    sel = selectors.DefaultSelector()
    stop_on_sigterm()
    raise_fd_limit()  # one socket per (pod, port, protocol): thousands in a large sandbox
    try:
        count = _open_all(pods, sel)
    except Exception as exc:  # reported to the launcher, which prints it and exits 1
        if ready is not None:
            os.write(ready, f"error: {exc}\n".encode())
            os.close(ready)
        raise SystemExit(1) from exc
    if ready is not None:
        os.write(ready, f"ready {os.getpid()} {count}\n".encode())
        os.close(ready)
    with contextlib.suppress(Stopped):
        _loop(sel)
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]


def _loop(sel: selectors.BaseSelector) -> None:
    conns: dict[socket.socket, _Conn] = {}  # open client connections, swept by deadline
    while True:
        now = time.monotonic()
        for expired in [s for s, c in conns.items() if c.deadline < now]:
            del conns[expired]
            _close(sel, expired)
        for key, _ in sel.select(timeout=0.5):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            data = key.data
            if isinstance(data, _Listener) and data.udp:
                try:
                    payload, peer = sock.recvfrom(65535)
                    sock.sendto(payload, peer)
                except OSError:
                    pass
            elif isinstance(data, _Listener):
                try:
                    client, _ = sock.accept()
                except OSError:
                    continue
                client.setblocking(False)
                conn = _Conn(
                    pod=data.pod,
                    port=data.port,
                    http=data.pod.nginx and data.port == 80,
                    deadline=time.monotonic() + _CONN_TIMEOUT,
                )
                if not conn.http:
                    _answer(client, conn)
                sel.register(client, selectors.EVENT_READ, conn)
                conns[client] = conn
            elif isinstance(data, _Conn):
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    conns.pop(sock, None)
                    _close(sel, sock)
                    continue
                if not data.answered:
                    data.request += chunk
                    if b"\r\n\r\n" in data.request or len(data.request) > 65536:
                        _answer(sock, data)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m kubefence.dataplane.netns._server SPEC.json LOG", file=sys.stderr)
        return 2
    pods = read_spec(args[0])
    return daemonize(args[1], lambda ready: serve(pods, ready=ready), what="sandbox server")


if __name__ == "__main__":
    raise SystemExit(main())
