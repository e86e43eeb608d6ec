"""What the streaming tests share: a network namespace of their own, a node serving certificate
signed by a cluster CA, a fake pod directory, and the node's streaming server on its own thread.

Used by tests/netns/test_node_streams.py (the node end alone) and
tests/control/test_pod_streams.py (kubectl -> API server -> node).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import subprocess
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubefence.node._process import ContainerProcess
from kubefence.node._streams import make_app, tls_context

T = TypeVar("T")


@contextmanager
def network_namespace(tag: str) -> Iterator[str]:
    """A fresh network namespace ``kf-t-<pid>-<tag>`` with loopback up; deleted afterwards."""
    name = f"kf-t-{os.getpid()}-{tag}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def issue_leaf(
    ca_cert: Path,
    ca_key: Path,
    directory: Path,
    *,
    name: str,
    common_name: str,
    orgs: Sequence[str] = (),
    server: bool = False,
) -> tuple[Path, Path]:
    """A certificate signed by the CA at ``ca_cert``/``ca_key``: a server one for 127.0.0.1
    (``server``) or a client one; written as ``<name>.crt``/``<name>.key``."""
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class FakePod:
    netns: str | None
    containers: list[str]
    processes: dict[str, ContainerProcess] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)


@dataclass
class FakePods:
    """A :class:`kubefence.node._streams.PodDirectory` over a dict, as the tests set it up."""

    pods: dict[tuple[str, str], FakePod] = field(default_factory=dict)

    def netns(self, namespace: str, pod: str) -> str | None:
        found = self.pods.get((namespace, pod))
        return found.netns if found else None

    def containers(self, namespace: str, pod: str) -> list[str]:
        found = self.pods.get((namespace, pod))
        return list(found.containers) if found else []

    def main_process(self, namespace: str, pod: str, container: str) -> ContainerProcess | None:
        found = self.pods.get((namespace, pod))
        return found.processes.get(container) if found else None

    def log_path(self, namespace: str, pod: str, container: str) -> Path | None:
        found = self.pods.get((namespace, pod))
        return found.logs.get(container) if found else None


class NodeServer:
    """The node's streaming app over HTTPS on 127.0.0.1, served by an event loop on a thread;
    ``call`` runs a coroutine on that loop (main processes must live there)."""

    def __init__(self, directory: FakePods, *, cert: Path, key: Path, ca_cert: Path) -> None:
        self.directory = directory
        self._tls = tls_context(cert, key, ca_cert)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self) -> int:
        self._runner = web.AppRunner(make_app(self.directory), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        for pod in self.directory.pods.values():
            for process in pod.processes.values():
                if process.running:
                    await process.stop(grace=0.5)
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.sleep(0.3)  # closing TLS transports finish before the loop closes

    def start(self) -> NodeServer:
        self._thread.start()
        self.port = self.call(self._start())
        return self

    def stop(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
