"""Cluster DNS (the ``kubefence/dns`` image of the kube-dns addon) and pods' resolv.conf.

Why this module exists: a pod finds a Service by name (``curl http://nginx.test``) through the
DNS server behind the ``kube-system/kube-dns`` Service (198.19.0.10), which is itself a pod, so
that a default-deny egress policy breaks name resolution unless it allows port 53 to it, as the
Kubernetes guide warns. ``DnsServer`` is that pod's process: it opens UDP and TCP port 53 inside
the pod's network namespace (the creating thread enters it with setns and comes back; sockets
keep their namespace) while its API connection stays in the host namespace, where the API
server listens. Informers on Services and EndpointSlices feed the zone (``_dns_zone``).

``write_resolv_conf``/``remove_resolv_conf`` give a pod's namespace the resolver configuration
kubelet writes for ``dnsPolicy: ClusterFirst`` (``/etc/netns/<netns>/resolv.conf``, which
``ip netns exec`` binds over ``/etc/resolv.conf``); the node component calls them per pod.

Run as a process: ``python -m kubefence.node._dns --kubeconfig F --netns NS [--port 53]``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import selectors
import signal
import socket
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kubefence.client import Event, Informer, Kube, Resource, connect
from kubefence.dataplane.netns._system import entered
from kubefence.node._dns_zone import Zone

__all__ = [
    "CLUSTER_DOMAIN",
    "KUBE_DNS_IP",
    "DnsServer",
    "main",
    "remove_resolv_conf",
    "resolv_conf",
    "write_resolv_conf",
]

KUBE_DNS_IP = "198.19.0.10"
CLUSTER_DOMAIN = "cluster.local"
ETC_NETNS = Path("/etc/netns")
SERVICES = Resource("", "v1", "services")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
_LOG = logging.getLogger("kubefence.node.dns")
_TCP_CLIENTS = 64  # TCP clients served at once (one thread each)
_UDP_LIMIT = 512  # without EDNS0; dnslib sets TC beyond it and the resolver retries over TCP


def resolv_conf(
    namespace: str, *, nameserver: str = KUBE_DNS_IP, domain: str = CLUSTER_DOMAIN
) -> str:
    """What kubelet writes for a ClusterFirst pod of ``namespace``."""
    search = f"{namespace}.svc.{domain} svc.{domain} {domain}"
    return f"search {search}\nnameserver {nameserver}\noptions ndots:5\n"


def write_resolv_conf(
    netns: str,
    *,
    namespace: str,
    nameserver: str = KUBE_DNS_IP,
    domain: str = CLUSTER_DOMAIN,
    etc_netns: Path = ETC_NETNS,
) -> Path:
    """``/etc/netns/<netns>/resolv.conf`` for a pod of ``namespace`` (written atomically)."""
    directory = etc_netns / netns
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "resolv.conf"
    partial = directory / ".resolv.conf.tmp"
    partial.write_text(resolv_conf(namespace, nameserver=nameserver, domain=domain))
    partial.replace(path)
    return path


def remove_resolv_conf(netns: str, *, etc_netns: Path = ETC_NETNS) -> None:
    """Remove what ``write_resolv_conf`` wrote (and the directory when nothing else is in it)."""
    directory = etc_netns / netns
    for name in ("resolv.conf", ".resolv.conf.tmp"):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


class DnsServer:
    """The cluster DNS server of one pod: ``start()``, ``wait_synced()``, ``stop()``."""

    def __init__(
        self,
        kube: Kube,
        *,
        netns: str,
        address: str = "",
        port: int = 53,
        domain: str = CLUSTER_DOMAIN,
    ) -> None:
        self.kube = kube
        self.netns = netns
        self.address = address
        self.port = port
        self.queries = 0
        self._services = Informer(kube, SERVICES, handler=self._changed, name="dns-services")
        self._slices = Informer(kube, ENDPOINT_SLICES, handler=self._changed, name="dns-slices")
        self.zone = Zone(self._source, domain=domain)
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._tcp_slots = threading.BoundedSemaphore(_TCP_CLIENTS)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, name="dns-server", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> DnsServer:
        """Open the sockets in the pod's namespace, then start the informers and the loop."""
        with entered(self.netns):
            udp = _socket(socket.SOCK_DGRAM, self.address, self.port)
            try:
                tcp = _socket(socket.SOCK_STREAM, self.address, udp.getsockname()[1])
            except OSError:
                udp.close()
                raise
        self.port = udp.getsockname()[1]
        self._sockets = [udp, tcp]
        self._selector.register(udp, selectors.EVENT_READ, "udp")
        self._selector.register(tcp, selectors.EVENT_READ, "tcp")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._services.start()
        self._slices.start()
        self._thread.start()
        return self

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._services.wait_synced(timeout) and self._slices.wait_synced(timeout)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(5.0)
        # A blocked watch ends on its own (its thread is a daemon and sees the stop flag);
        # waiting for it would make every stop take seconds.
        self._services.stop(timeout=0.1)
        self._slices.stop(timeout=0.1)
        for sock in (*self._sockets, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    # -- the work -----------------------------------------------------------------------------

    def _source(self) -> tuple[Iterable[dict[str, Any]], Iterable[dict[str, Any]]]:
        return self._services.snapshot().values(), self._slices.snapshot().values()

    def _ready(self) -> bool:
        return self._services.synced.is_set() and self._slices.synced.is_set()

    def _changed(self, event: Event) -> None:
        if event.type != "SYNC":
            self.zone.invalidate()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if key.data == "udp":
                    self._udp(sock)
                elif key.data == "tcp":
                    with contextlib.suppress(BlockingIOError, OSError):
                        conn, _ = sock.accept()
                        if not self._tcp_slots.acquire(blocking=False):
                            conn.close()  # too many open TCP clients: the resolver retries
                            continue
                        threading.Thread(target=self._tcp, args=(conn,), daemon=True).start()

    def _udp(self, sock: socket.socket) -> None:
        for _ in range(64):  # drain what is queued, then let TCP have a turn
            try:
                data, peer = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.queries += 1
            reply = self.zone.answer(data, limit=_UDP_LIMIT, ready=self._ready())
            if reply:
                with contextlib.suppress(OSError):
                    sock.sendto(reply, peer)

    def _tcp(self, conn: socket.socket) -> None:
        """One TCP client: length-prefixed queries until it closes or idles for 5 s."""
        with conn, _released(self._tcp_slots):
            conn.setblocking(True)
            conn.settimeout(5.0)
            try:
                while not self._stop.is_set():
                    head = _read(conn, 2)
                    if head is None:
                        return
                    body = _read(conn, struct.unpack("!H", head)[0])
                    if body is None:
                        return
                    self.queries += 1
                    reply = self.zone.answer(body, ready=self._ready())
                    if not reply:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return


@contextlib.contextmanager
def _released(slots: threading.BoundedSemaphore) -> Iterator[None]:
    try:
        yield
    finally:
        slots.release()


def _read(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _socket(kind: socket.SocketKind, address: str, port: int) -> socket.socket:
    """A non-blocking socket bound to ``address`` (every address of the namespace when empty:
    dual-stack ``::``, or ``0.0.0.0`` where IPv6 is off)."""
    family = socket.AF_INET6 if (not address or ":" in address) else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and not address:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address or "::", port))
    except OSError:
        sock.close()
        if not address and family == socket.AF_INET6:
            return _socket(kind, "0.0.0.0", port)
        raise
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubefence-dns", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--netns", required=True, help="the DNS pod's network namespace")
    parser.add_argument("--address", default="", help="listen address (default: all)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--domain", default=CLUSTER_DOMAIN)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dns %(levelname)s %(message)s")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    server = DnsServer(
        connect(args.kubeconfig), netns=args.netns, address=args.address, port=args.port,
        domain=args.domain,
    )  # fmt: skip
    server.start()
    _LOG.info("serving %s on port %d in %s", args.domain, server.port, args.netns)
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
