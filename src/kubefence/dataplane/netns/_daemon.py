"""What the sandbox's server and the cluster nodes' servers share: a dual-stack listening
socket, SIGTERM as an exception, and starting as a daemon that reports when it is ready.

Why this module exists: both servers (``_server``: the one-node sandbox's fixed set of pods;
``_podserver``: a cluster node's pods, added and removed by orders) open sockets inside pods'
namespaces and must outlive the command that started them, so both are launched the same way:
the launcher forks, the child starts its own session with stdin from /dev/null and output to a
log, opens its sockets and writes ``ready <pid> <count>`` (or ``error: ...``) on a pipe; the
launcher prints that line and exits 0 (or prints the error and exits 1).

A daemon stops itself (as on SIGTERM) once the directory holding its log is removed: whatever
made it is then gone (``down``, a test's temporary state), and a launcher interrupted between the
daemon's start and the recording of its pid cannot leave it running for ever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Stopped", "daemonize", "dual_stack", "stop_on_sigterm"]


class Stopped(Exception):  # noqa: N818 (a signal, not an error)
    """SIGTERM arrived."""


def stop_on_sigterm() -> None:
    """SIGTERM raises ``Stopped``, which interrupts ``select`` at once (PEP 475 would
    otherwise resume it)."""

    def _stop(signum: int, frame: object) -> None:
        raise Stopped

    signal.signal(signal.SIGTERM, _stop)


def dual_stack(kind: socket.SocketKind, port: int) -> socket.socket:
    """A non-blocking socket on ``port`` of every IPv4 and IPv6 address of the current
    namespace (TCP: listening)."""
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def daemonize(log: Path | str, serve: Callable[[int], None], *, what: str) -> int:
    """Run ``serve(ready_fd)`` in a daemon; return the launcher's exit code. ``serve`` writes
    ``ready <pid> <count>`` on ``ready_fd`` once it serves (or raises)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:  # the launcher: wait for the daemon to report, then exit
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
        message = b"".join(chunks).decode(errors="replace").strip()
        if message.startswith("ready "):
            print(message)
            return 0
        print(message or f"the {what} exited before it was ready", file=sys.stderr)
        return 1
    os.close(read_end)
    os.setsid()
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    _stop_when_removed(Path(log).resolve().parent)
    try:
        serve(write_end)
    except SystemExit as exc:
        os._exit(int(exc.code or 0))
    except BaseException as exc:  # the daemon reports any failure, then exits
        with contextlib.suppress(OSError):
            os.write(write_end, f"error: {exc}\n".encode())
        os._exit(1)
    os._exit(0)


def _stop_when_removed(directory: Path, *, every: float = 1.0) -> None:
    """SIGTERM to this process once ``directory`` no longer exists (checked every ``every`` s)."""

    def watch() -> None:
        while directory.is_dir():
            time.sleep(every)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="state-watch", daemon=True).start()
