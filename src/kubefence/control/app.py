"""Assembling and running one API server process: store, bootstrap objects, TLS, the app.

Why separate from `server.py`: this is the I/O shell (files under the cluster's state directory,
sockets, signals); `server.py` stays a plain aiohttp app that tests can mount without TLS.
`python -m kubefence.control --state DIR` runs it; `cluster up` starts that detached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from aiohttp import web

from kubefence.control.authn import Authenticator
from kubefence.control.cache import CACHED_KINDS, ObjectCache
from kubefence.control.context import ServerConfig
from kubefence.control.kinds import REGISTRY
from kubefence.control.objects import Objects, WriteOptions
from kubefence.control.pki import ClusterPKI, ensure_pki
from kubefence.control.podproxy import kubelet_client_tls
from kubefence.control.rbac import BOOTSTRAP_OBJECTS, Authorizer
from kubefence.control.server import make_app
from kubefence.control.status import ApiError
from kubefence.control.store import Store
from kubefence.control.store.sqlite import SqliteStore
from kubefence.control.stored import decode

__all__ = ["Running", "bootstrap", "open_objects", "serve", "start"]

log = logging.getLogger("kubefence.control")


async def open_objects(store: Store) -> tuple[Objects, ObjectCache]:
    """Objects over a store, with the cache of RBAC objects and ServiceAccounts filled from it."""
    cache = ObjectCache()
    objects = Objects(store, on_write=cache.on_write)
    for kind in CACHED_KINDS:
        rt = REGISTRY.by_kind(kind)
        assert rt is not None
        items, _ = await store.list(rt.prefix())
        for stored in items:
            cache.on_write(rt, decode(stored), False)
    return objects, cache


async def bootstrap(objects: Objects) -> None:
    """Bootstrap RBAC objects and built-in namespaces, created when missing (idempotent)."""
    for template in BOOTSTRAP_OBJECTS:
        rt = REGISTRY.by_kind(str(template["kind"]))
        assert rt is not None
        namespace = str(template.get("metadata", {}).get("namespace", ""))
        try:
            await objects.create(rt, namespace, dict(template), WriteOptions())
        except ApiError as error:
            if error.code != 409:
                raise
    await objects.ensure_builtin()


def tls_context(pki: ClusterPKI) -> ssl.SSLContext:
    """Server TLS: our certificate; client certificates optional, verified against the CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def open_store(state: Path, kind: str, pki: ClusterPKI, etcd_endpoint: str) -> Store:
    if kind == "sqlite":
        return await SqliteStore.open(state / "store" / "kubefence.db")
    from kubefence.control.store.etcd import EtcdStore

    return await EtcdStore.open(  # type: ignore[no-any-return, attr-defined, unused-ignore]
        etcd_endpoint,
        ca_cert=pki.etcd_ca_cert,
        client_cert=pki.etcd_client_cert,
        client_key=pki.etcd_client_key,
    )


@dataclass(frozen=True, slots=True)
class Running:
    """A started server: its port, and how to stop it."""

    port: int
    runner: web.AppRunner
    store: Store
    audit: TextIO | None

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.store.close()
        if self.audit is not None:
            self.audit.close()


async def start(
    state: Path,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    store_kind: str = "sqlite",
    etcd_endpoint: str = "",
    audit: bool = True,
    token_file: Path | None = None,
) -> Running:
    pki = ensure_pki(state / "pki")
    store = await open_store(state, store_kind, pki, etcd_endpoint)
    objects, cache = await open_objects(store)
    await bootstrap(objects)
    audit_file = (state / "audit.log").open("a", encoding="utf-8") if audit else None
    config = ServerConfig(
        objects=objects,
        authenticator=Authenticator(
            pki, token_file=token_file, service_account_lookup=cache.service_account_exists
        ),
        authorizer=Authorizer(cache.list_objects, generation=cache.rbac_generation),
        audit=audit_file,
        server_address=f"{host}:{port}",
        kubelet_tls=kubelet_client_tls(pki),
    )
    app = make_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls_context(pki), backlog=1024)
    await site.start()
    bound = port
    for sock in getattr(site._server, "sockets", None) or ():
        bound = int(sock.getsockname()[1])
        break
    return Running(bound, runner, store, audit_file)


async def serve(
    state: Path,
    *,
    port: int,
    store_kind: str,
    etcd_endpoint: str = "",
    token_file: Path | None = None,
) -> None:
    """Run until SIGTERM/SIGINT; the bound port is written to `<state>/port` once serving."""
    running = await start(
        state,
        port=port,
        store_kind=store_kind,
        etcd_endpoint=etcd_endpoint,
        token_file=token_file,
    )
    (state / "port.tmp").write_text(str(running.port))
    (state / "port.tmp").replace(state / "port")
    log.info("serving on https://127.0.0.1:%d", running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):
        await running.stop()
