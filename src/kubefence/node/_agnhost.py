"""The ``agnhost`` test image's commands that sandbox pods run: ``connect`` and ``serve-hostname``.

Why this module exists: the upstream e2e network-policy tests probe every pair with
``agnhost connect <host>:<port> --timeout=1s --protocol=tcp|udp`` inside the client pod and read
the exit code. Pods with the ``agnhost`` image get this shim on their PATH (``_pods``), with
the upstream command's observable behaviour: exit 0 on success; exit 1 with ``TIMEOUT``,
``REFUSED``, ``DNS: ...`` or ``OTHER: ...`` on stderr otherwise; over UDP it sends
``<data>\\n`` (``--data``, default ``hostname``) and needs an answer. SCTP is not available
in the sandbox (``OTHER``). ``serve-hostname`` as a command is a no-op that waits: the node
server already answers on the pod's ports.
"""

from __future__ import annotations

import argparse
import errno
import re
import socket
import sys
import time
from collections.abc import Sequence

__all__ = ["main", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (``1s``, ``500ms``, ``1m30s``, ``0``) in seconds."""
    if text in ("0", ""):
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _resolve(dest: str, kind: socket.SocketKind) -> tuple[int, tuple[str, int]] | str:
    host, _, port = dest.rpartition(":")
    host = host.strip("[]")
    try:
        info = socket.getaddrinfo(host, int(port), type=kind)
    except (OSError, ValueError) as exc:
        return f"DNS: {exc}"
    family, _, _, _, address = info[0]
    return family, (str(address[0]), int(address[1]))


def connect_tcp(dest: str, timeout: float) -> int:
    resolved = _resolve(dest, socket.SOCK_STREAM)
    if isinstance(resolved, str):
        return _fail(resolved)
    family, address = resolved
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout or None)
        try:
            sock.connect(address)
        except TimeoutError:
            return _fail("TIMEOUT")
        except ConnectionRefusedError:
            return _fail("REFUSED")
        except OSError as exc:
            return _fail(f"OTHER: {exc}")
    return 0


def connect_udp(dest: str, timeout: float, data: str) -> int:
    resolved = _resolve(dest, socket.SOCK_DGRAM)
    if isinstance(resolved, str):
        return _fail(resolved)
    family, address = resolved
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout or None)
        try:
            sock.connect(address)
            sock.send(f"{data}\n".encode())
            answer = sock.recv(1024)
        except TimeoutError as exc:
            return _fail(f"TIMEOUT: {exc}")
        except ConnectionRefusedError as exc:
            return _fail(f"REFUSED: {exc}")
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                return _fail(f"REFUSED: {exc}")
            return _fail(f"OTHER: {exc}")
    if not answer:
        return _fail("OTHER: No data received from the server.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agnhost")
    commands = parser.add_subparsers(dest="command", required=True)
    connect = commands.add_parser("connect", help="try to connect to host:port")
    connect.add_argument("dest")
    connect.add_argument("--timeout", default="0")
    connect.add_argument("--protocol", default="tcp", choices=("tcp", "udp", "sctp"))
    connect.add_argument("--data", default="hostname")
    serve = commands.add_parser("serve-hostname", help="served by the node; waits")
    for flag in ("--tcp", "--udp", "--http", "--close", "--port"):
        serve.add_argument(flag, nargs="?", const="true")
    commands.add_parser("pause", help="waits")
    args = parser.parse_args(argv)
    if args.command in ("serve-hostname", "pause"):
        while True:
            time.sleep(3600)
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        return _fail(str(exc))
    if args.protocol == "tcp":
        return connect_tcp(args.dest, timeout)
    if args.protocol == "udp":
        return connect_udp(args.dest, timeout, args.data)
    return _fail("OTHER: SCTP is not available in the kubefence sandbox")


if __name__ == "__main__":
    raise SystemExit(main())
