"""Operating the agent: Prometheus metrics, ``/healthz`` ``/readyz`` ``/metrics``, JSON logs.

Why this module exists: an agent on every node is run by people who look at dashboards and
logs, not at the code. Metrics use ``prometheus_client`` in a registry of the agent's own (so
two agents in one test process do not collide); the HTTP endpoints are served from a thread;
log records are one JSON object a line, with the fields a log pipeline indexes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["JsonFormatter", "Metrics", "OpsServer", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Metrics:
    """The agent's metrics (names ``kubefence_agent_*``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sync_seconds = Histogram(
            "kubefence_agent_sync_seconds",
            "Time from a change batch's first event to its nft transaction committed",
            ["how"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.syncs = Counter(
            "kubefence_agent_syncs_total", "Reconciles, by how the table changed", ["how"],
            registry=r,
        )  # fmt: skip
        self.chains = Gauge(
            "kubefence_agent_rules", "Class chains (rules) in the node's table", registry=r
        )
        self.elements = Gauge(
            "kubefence_agent_set_elements", "Elements in the class sets of the node's table",
            registry=r,
        )  # fmt: skip
        self.dispatched = Gauge(
            "kubefence_agent_dispatch_entries",
            "Addresses of this node's pods in the dispatch maps",
            registry=r,
        )
        self.local_pods = Gauge("kubefence_agent_local_pods", "Pods on this node", registry=r)
        self.objects = Gauge(
            "kubefence_agent_objects", "Objects held, by kind", ["kind"], registry=r
        )
        self.errors = Counter(
            "kubefence_agent_errors_total", "Errors, by where they happened", ["where"],
            registry=r,
        )  # fmt: skip
        self.not_enforced = Gauge(
            "kubefence_agent_objects_not_compiled",
            "Objects the agent cannot compile as written (their pods stay isolated)",
            ["kind"],
            registry=r,
        )
        self.watch_restarts = Gauge(
            "kubefence_agent_watch_restarts", "Watch restarts, by resource", ["resource"],
            registry=r,
        )  # fmt: skip
        self.relists = Gauge(
            "kubefence_agent_relists", "Full lists (first, 410 Expired), by resource",
            ["resource"], registry=r,
        )  # fmt: skip
        self.ready = Gauge("kubefence_agent_ready", "1 after the first full sync", registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class OpsServer:
    """``/healthz`` (the process and its loops live), ``/readyz`` (first sync done), ``/metrics``
    on ``host:port`` (port 0: any free port, see ``port``)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Metrics,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    outer._answer(self, 200, outer.metrics.text(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = outer.healthy()
                    outer._answer(self, 200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
                elif path == "/readyz":
                    ok = outer.ready()
                    outer._answer(self, 200 if ok else 503, b"ok\n" if ok else b"not synced\n")
                else:
                    outer._answer(self, 404, b"not found\n")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, code: int, body: bytes, kind: str = "text/plain"
    ) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
