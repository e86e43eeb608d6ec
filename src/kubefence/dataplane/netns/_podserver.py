"""One long-lived server per cluster node: every pod's ports, added and removed while it runs.

Why this module exists: a cluster node gets pods one at a time from the API server, and the
pods must keep answering when the node component that manages them is killed (rules and
sockets live outside it, as containers outlive a crashed kubelet). One daemon per node, not one
process per pod, keeps 300 pods cheap. It opens each socket inside the pod's namespace (the
thread enters it, as ``_server`` does), and takes orders over a Unix socket: one JSON line in,
one JSON line out (``add`` a pod's ports, ``remove`` a pod, ``list``). The pods it serves are
written to ``served.json`` beside the socket after every change, so a restarted daemon reopens
them. Answers per port (see docs/nodes.md):

- ``http``: the nginx welcome page over HTTP (after the request's headers);
- ``hostname``: the pod's name and a newline, at once (agnhost ``serve-hostname --tcp``);
- ``banner``: ``kubefence <namespace>/<pod>`` and a newline, at once (the generic server);
- UDP: agnhost pods answer with their name, others echo the datagram.

Run as ``python -m kubefence.dataplane.netns._podserver DIR``; the launcher exits once the
daemon listens (``ready <pid>``), the daemon exits on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubefence.dataplane.netns._daemon import Stopped, daemonize, dual_stack, stop_on_sigterm
from kubefence.dataplane.netns._server import NGINX_WELCOME
from kubefence.dataplane.netns._system import entered, raise_fd_limit
from kubefence.errors import DataplaneError

__all__ = ["PodPorts", "main", "request"]

SOCKET = "server.sock"
SERVED = "served.json"
_CONN_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class PodPorts:
    """What the node server opens for one pod: ``tcp`` maps port -> mode (http, hostname,
    banner); ``udp_hostname`` True for agnhost pods (else UDP echoes)."""

    key: str
    netns: str
    hostname: str
    tcp: Mapping[int, str] = field(default_factory=dict)
    udp: tuple[int, ...] = ()
    udp_hostname: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "netns": self.netns,
            "hostname": self.hostname,
            "tcp": {str(p): m for p, m in sorted(self.tcp.items())},
            "udp": list(self.udp),
            "udp_hostname": self.udp_hostname,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PodPorts:
        return cls(
            key=str(data["key"]),
            netns=str(data["netns"]),
            hostname=str(data.get("hostname", "")),
            tcp={int(p): str(m) for p, m in dict(data.get("tcp") or {}).items()},
            udp=tuple(int(p) for p in data.get("udp") or ()),
            udp_hostname=bool(data.get("udp_hostname", False)),
        )


def request(directory: Path, order: Mapping[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
    """Send one order to the node server listening in ``directory``; its answer, or
    ``DataplaneError`` when it is not there or refused the order."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(directory / SOCKET))
            sock.sendall(json.dumps(order).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise DataplaneError(f"the node server in {directory} did not answer: {exc}") from exc
    answer: dict[str, Any] = json.loads(data or b"{}")
    if not answer.get("ok"):
        raise DataplaneError(str(answer.get("error") or "the node server refused the order"))
    return answer


@dataclass(slots=True)
class _Listener:
    pod: PodPorts
    port: int
    mode: str  # http | hostname | banner | udp


@dataclass(slots=True)
class _Conn:
    pod: PodPorts
    mode: str
    deadline: float
    request: bytearray = field(default_factory=bytearray)
    answered: bool = False


@dataclass(slots=True)
class _Control:
    buffer: bytearray = field(default_factory=bytearray)


def _payload(conn: _Conn) -> bytes:
    if conn.mode == "http":
        head = (
            "HTTP/1.1 200 OK\r\nServer: nginx (kubefence sandbox)\r\n"
            "Content-Type: text/html\r\n"
            f"Content-Length: {len(NGINX_WELCOME)}\r\nX-Kubefence-Pod: {conn.pod.key}\r\n"
            "Connection: close\r\n\r\n"
        )
        return head.encode() + NGINX_WELCOME
    if conn.mode == "hostname":
        return f"{conn.pod.hostname}\n".encode()
    return f"kubefence {conn.pod.key}\n".encode()


class _Server:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sel = selectors.DefaultSelector()
        self.pods: dict[str, PodPorts] = {}
        self.sockets: dict[str, list[socket.socket]] = {}
        self.conns: dict[socket.socket, _Conn] = {}

    # --- pods -------------------------------------------------------------------------------
    def add(self, pod: PodPorts) -> None:
        if self.pods.get(pod.key) == pod:
            return
        self.remove(pod.key)
        opened: list[socket.socket] = []
        try:
            with entered(pod.netns):
                for port, mode in sorted(pod.tcp.items()):
                    opened.append(dual_stack(socket.SOCK_STREAM, port))
                    self.sel.register(opened[-1], selectors.EVENT_READ, _Listener(pod, port, mode))
                for port in sorted(set(pod.udp)):
                    opened.append(dual_stack(socket.SOCK_DGRAM, port))
                    self.sel.register(opened[-1], selectors.EVENT_READ, _Listener(pod, port, "udp"))
        except (OSError, DataplaneError) as exc:
            for sock in opened:
                self._close(sock)
            raise DataplaneError(f"serving {pod.key} in {pod.netns} failed: {exc}") from exc
        self.pods[pod.key] = pod
        self.sockets[pod.key] = opened

    def remove(self, key: str) -> None:
        for sock in self.sockets.pop(key, []):
            self._close(sock)
        self.pods.pop(key, None)
        for sock, conn in list(self.conns.items()):
            if conn.pod.key == key:
                del self.conns[sock]
                self._close(sock)

    def save(self) -> None:
        tmp = self.directory / (SERVED + ".tmp")
        tmp.write_text(json.dumps([p.to_json() for p in self.pods.values()]))
        tmp.replace(self.directory / SERVED)

    def load(self) -> None:
        try:
            saved = json.loads((self.directory / SERVED).read_text())
        except (OSError, ValueError):
            return
        for data in saved:
            pod = PodPorts.from_json(data)
            try:
                self.add(pod)
            except DataplaneError as exc:  # its namespace went away while we were down
                print(f"not reopened: {exc}", file=sys.stderr, flush=True)

    # --- orders -----------------------------------------------------------------------------
    def order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        op = order.get("op")
        try:
            if op == "add":
                self.add(PodPorts.from_json(order["pod"]))
                self.save()
            elif op == "remove":
                self.remove(str(order["key"]))
                self.save()
            elif op != "list":
                return {"ok": False, "error": f"unknown order {op!r}"}
        except (DataplaneError, KeyError, ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "pods": sorted(self.pods), "pid": os.getpid()}

    # --- the loop ---------------------------------------------------------------------------
    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)
        sock.close()

    def _answer(self, sock: socket.socket, conn: _Conn) -> None:
        try:
            sock.setblocking(True)
            sock.settimeout(_CONN_TIMEOUT)
            sock.sendall(_payload(conn))
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
        except OSError:
            pass
        conn.answered = True

    def _control(self, sock: socket.socket, state: _Control) -> None:
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        state.buffer += chunk
        if chunk and b"\n" not in state.buffer:
            return
        try:
            answer = self.order(json.loads(bytes(state.buffer).split(b"\n", 1)[0] or b"{}"))
        except ValueError as exc:
            answer = {"ok": False, "error": f"bad order: {exc}"}
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.settimeout(_CONN_TIMEOUT)
            sock.sendall(json.dumps(answer).encode() + b"\n")
        self._close(sock)

    def _event(self, sock: socket.socket, data: Any) -> None:
        if data == "control":
            client, _ = sock.accept()
            client.setblocking(False)
            self.sel.register(client, selectors.EVENT_READ, _Control())
        elif isinstance(data, _Control):
            self._control(sock, data)
        elif isinstance(data, _Listener) and data.mode == "udp":
            with contextlib.suppress(OSError):
                payload, peer = sock.recvfrom(65535)
                answer = f"{data.pod.hostname}\n".encode() if data.pod.udp_hostname else payload
                sock.sendto(answer, peer)
        elif isinstance(data, _Listener):
            try:
                client, _ = sock.accept()
            except OSError:
                return
            client.setblocking(False)
            conn = _Conn(pod=data.pod, mode=data.mode, deadline=time.monotonic() + _CONN_TIMEOUT)
            if conn.mode != "http":
                self._answer(client, conn)
            self.sel.register(client, selectors.EVENT_READ, conn)
            self.conns[client] = conn
        elif isinstance(data, _Conn):
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.conns.pop(sock, None)
                self._close(sock)
            elif not data.answered:
                data.request += chunk
                if b"\r\n\r\n" in data.request or len(data.request) > 65536:
                    self._answer(sock, data)

    def loop(self) -> None:
        while True:
            now = time.monotonic()
            for expired in [s for s, c in self.conns.items() if c.deadline < now]:
                del self.conns[expired]
                self._close(expired)
            for key, _ in self.sel.select(timeout=0.5):
                self._event(key.fileobj, key.data)  # type: ignore[arg-type]


def serve(directory: Path, *, ready: int | None = None) -> None:
    """Listen for orders, reopen the saved pods, report on ``ready``, serve until SIGTERM."""

    stop_on_sigterm()
    raise_fd_limit()
    server = _Server(directory)
    path = directory / SOCKET
    path.unlink(missing_ok=True)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(path))
    os.chmod(path, 0o600)
    control.listen(128)
    control.setblocking(False)
    server.sel.register(control, selectors.EVENT_READ, "control")
    server.load()
    (directory / "server.pid").write_text(str(os.getpid()))
    if ready is not None:
        os.write(ready, f"ready {os.getpid()} {len(server.pods)}\n".encode())
        os.close(ready)
    with contextlib.suppress(Stopped):
        server.loop()
    path.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m kubefence.dataplane.netns._podserver DIR", file=sys.stderr)
        return 2
    directory = Path(args[0]).resolve()
    return daemonize(
        directory / "server.log", lambda ready: serve(directory, ready=ready), what="node server"
    )


if __name__ == "__main__":
    raise SystemExit(main())
