"""The node's HTTPS endpoint on 127.0.0.1 (the kubelet port): health and the streaming routes.

Why this module exists: ``kubectl exec``/``attach``/``logs`` reach a pod through the API server,
which connects to the node's kubelet endpoint (``status.daemonEndpoints.kubeletEndpoint``). The
routes themselves are ``kubefence.node._streams`` (exec/attach/logs); this module serves them
over TLS with the node's serving certificate, on the component's event loop thread, and
answers their questions about pods from the node component's record (``PodDirectory``). When
``_streams`` is not installed the endpoint still serves ``/healthz`` and says why in the log.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from kubefence.node._component import NodeComponent

__all__ = ["ComponentDirectory", "start_endpoint"]

_LOG = logging.getLogger("kubefence.node.endpoint")


class ComponentDirectory:
    """The node component's pods as the streaming routes see them."""

    def __init__(self, component: NodeComponent) -> None:
        self.component = component

    def _record(self, namespace: str, pod: str) -> Any:
        key = f"{namespace}/{pod}"
        with self.component.lock:
            for record in self.component.record.pods.values():
                if record.key == key and record.uid in self.component.pods:
                    return record
        return None

    def netns(self, namespace: str, pod: str) -> str | None:
        record = self._record(namespace, pod)
        return None if record is None else self.component.hands.netns(record)

    def containers(self, namespace: str, pod: str) -> list[str]:
        record = self._record(namespace, pod)
        if record is None:
            return []
        spec = self.component.pods[record.uid].get("spec") or {}
        return [str(c.get("name")) for c in spec.get("containers") or ()]

    def main_process(self, namespace: str, pod: str, container: str) -> Any:
        """The attachable main process of a ``stdin``/``tty`` container (others run detached
        under a supervisor, so they outlive the component, and have none)."""
        record = self._record(namespace, pod)
        if record is None:
            return None
        return self.component.interactive.get((record.uid, container))

    def log_path(self, namespace: str, pod: str, container: str) -> Path | None:
        record = self._record(namespace, pod)
        if record is None:
            return None
        path = self.component.hands.log_path(record.uid, container)
        return path if path.exists() else None


def _tls(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def start_endpoint(component: NodeComponent, *, cert: Path, key: Path, ca: Path) -> int:
    """Serve on 127.0.0.1 (a free port) from a daemon thread; the bound port."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    try:
        streams = importlib.import_module("kubefence.node._streams")
        app.add_routes(streams.stream_routes(ComponentDirectory(component)))
    except ImportError as exc:
        _LOG.warning("node %s: no exec/attach/logs routes (%s)", component.name, exc)
    loop = component.loop
    runner = web.AppRunner(app, access_log=None)
    context = _tls(cert, key, ca)

    async def serve() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server = site._server  # aiohttp exposes no public accessor for the bound sockets
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    return asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=30)
