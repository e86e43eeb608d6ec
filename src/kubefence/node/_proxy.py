"""kube-proxy-lite: keeps one node's Service DNAT table equal to the API's Services and slices.

Why this module exists: in a real cluster kube-proxy on each node turns Services and
EndpointSlices into DNAT rules, so a connection to a ClusterIP reaches a pod and the network
policies see that pod. The sandbox node does the same here: two informers (Services, and
``discovery.k8s.io/v1`` EndpointSlices, kept by the EndpointSlice controller) and one
``inet kubefence-svc`` table (``_proxy_rules``) in the node's network namespace. The first sync
(and a repair every 30 s idle, or after a failed update) replaces the whole table in one
``nft -f`` run; every other change is one ``nft -f`` transaction touching only the Service
ports that changed. Both are atomic: a packet sees the old rules or the new ones.

Changes are coalesced: the handlers only mark the state dirty; one worker thread renders and
applies, so a burst of events costs one ``nft`` run, and no change none. UDP flows to a
removed endpoint are cut from conntrack (as kube-proxy does), or they would keep going to it.

The node namespace routes the service ranges to ``lo`` (``ip route replace``): packets to a
ClusterIP that no rule DNATs (no ready endpoint, unused address or port) then reach the
``forward``/``output`` filter hooks, where the table rejects them (TCP reset, ICMP port
unreachable) instead of letting them hang. The underlay's more specific route is untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubefence.client import Event, Informer, Kube, Resource
from kubefence.dataplane.netns._system import run
from kubefence.errors import DataplaneError, EnvironmentProblem
from kubefence.node._proxy_rules import (
    SERVICE_NAME_LABEL,
    TABLE,
    ServicePort,
    render_table,
    render_update,
    service_ports,
)

__all__ = ["ENDPOINT_SLICES", "SERVICES", "ServiceProxy"]

SERVICES = Resource("", "v1", "services")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices")
_LOG = logging.getLogger("kubefence.node.proxy")
Obj = Mapping[str, Any]


@dataclass
class ProxyCounters:
    """What the proxy has done: nft runs, their failures, change-to-kernel latencies (s)."""

    applies: int = 0
    whole: int = 0  # of which whole-table replacements (the first, repairs, failed updates)
    skipped: int = 0
    failures: int = 0
    last_error: str = ""
    latencies: list[float] = field(default_factory=list)


class ServiceProxy:
    """Service DNAT for one node. ``start()`` returns at once; ``wait_synced()`` says when the
    first table is in the kernel; ``stop()`` ends it (``clean=False`` leaves the rules, as a
    node component does when it restarts: traffic keeps flowing meanwhile)."""

    def __init__(
        self,
        kube: Kube,
        *,
        netns: str,
        node: str,
        service_ranges: Sequence[str] = ("198.19.0.0/16", "fd00:6b66:5e::/112"),
        keep_ranges: Sequence[str] = ("198.19.255.0/24",),
        hairpin_v4: str = "169.254.1.1",
        hairpin_v6: str = "fe80::1",
    ) -> None:
        self.kube = kube
        self.netns = netns
        self.node = node
        self.service_ranges = tuple(service_ranges)
        self.keep_ranges = tuple(keep_ranges)
        self.hairpin = (hairpin_v4, hairpin_v6)
        self.counters = ProxyCounters()
        self.ports: list[ServicePort] = []
        self._services = Informer(kube, SERVICES, handler=self._changed, name="proxy-services")
        self._slices = Informer(
            kube, ENDPOINT_SLICES, handler=self._changed, name="proxy-endpointslices"
        )
        self._dirty = threading.Event()
        self._pending_lock = threading.Lock()
        self._pending: set[str] = set()  # "namespace/name" of Services whose ports may change
        self._by_service: dict[str, list[ServicePort]] = {}
        self._since = 0.0  # when the oldest change not yet applied arrived
        self._stop = threading.Event()
        self._applied = threading.Condition()
        self._installed: list[ServicePort] | None = None  # None: replace the whole table next
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="service-proxy", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ServiceProxy:
        for ranged in self.service_ranges:
            family = "-6" if ":" in ranged else "-4"
            run(["ip", family, "route", "replace", ranged, "dev", "lo"], netns=self.netns)
        self._services.start()
        self._slices.start()
        self._thread.start()
        return self

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once both informers have listed and the resulting table is installed."""
        return self._synced.wait(timeout)

    def stop(self, *, clean: bool = True) -> None:
        self._stop.set()
        self._dirty.set()
        # A blocked watch ends on its own (its thread is a daemon and sees the stop flag);
        # waiting for it would make every stop take seconds.
        self._services.stop(timeout=0.1)
        self._slices.stop(timeout=0.1)
        self._thread.join(5.0)
        if clean:
            script = f"table inet {TABLE}\ndelete table inet {TABLE}\n"
            run(["nft", "-f", "-"], stdin=script, netns=self.netns, check=False)
            for ranged in self.service_ranges:
                family = "-6" if ":" in ranged else "-4"
                run(["ip", family, "route", "del", ranged, "dev", "lo"], netns=self.netns,
                    check=False)  # fmt: skip

    def wait_for(
        self, predicate: Callable[[list[ServicePort]], bool], timeout: float = 5.0
    ) -> bool:
        """Wait until the installed table's ports satisfy ``predicate`` (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._applied:
            while not predicate(self.ports):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._applied.wait(left)
        return True

    # -- the work -----------------------------------------------------------------------------

    def _changed(self, event: Event) -> None:
        if event.type == "SYNC" and self._installed is not None:
            return  # the informer's periodic resync: the loop re-checks on its own schedule
        with self._pending_lock:
            for obj in (event.obj, event.old):
                if obj is not None:
                    self._pending.add(_service_of(obj))
            if not self._dirty.is_set():
                self._since = time.monotonic()
            self._dirty.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._dirty.wait(30.0):
                self._dirty.set()  # periodic repair: someone flushed the table, re-install it
                self._installed = None
                self._since = 0.0
                continue
            if self._stop.is_set():
                return
            if not (self._services.synced.is_set() and self._slices.synced.is_set()):
                self._stop.wait(0.01)
                continue
            time.sleep(0.002)  # coalesce a burst (one write often brings several events)
            with self._pending_lock:
                self._dirty.clear()
                since = self._since
            try:
                self._apply(since)
            except Exception as exc:  # a failing nft must not end the proxy: retry shortly
                self.counters.failures += 1
                self.counters.last_error = str(exc)
                _LOG.warning("service table not applied: %s", exc)
                self._installed = None  # the next attempt replaces the whole table
                self._stop.wait(0.5)
                self._dirty.set()

    def _current_ports(self) -> list[ServicePort]:
        """The Service ports the API now describes: all of them for a whole-table sync, else
        those of the Services whose objects or slices changed, over the last result."""
        with self._pending_lock:
            pending, self._pending = self._pending, set()
        services = self._services.snapshot()
        slices: Iterable[Obj] = self._slices.snapshot().values()
        if self._installed is None:
            chosen: Iterable[Obj] = services.values()
            self._by_service = {}
        else:
            chosen = [services[key] for key in pending if key in services]
            slices = [s for s in slices if _service_of(s) in pending]
            for key in pending:
                self._by_service.pop(key, None)
        for port in service_ports(chosen, slices, node=self.node):
            self._by_service.setdefault(port.service, []).append(port)
        return sorted(port for ports in self._by_service.values() for port in ports)

    def _apply(self, since: float) -> None:
        ports = self._current_ports()
        if self._installed is None:
            text = render_table(
                ports,
                service_ranges=self.service_ranges,
                keep_ranges=self.keep_ranges,
                hairpin_v4=self.hairpin[0],
                hairpin_v6=self.hairpin[1],
            )
        else:
            text = render_update(self._installed, ports)
        if not text:
            self.counters.skipped += 1
        else:
            done = run(["nft", "-f", "-"], stdin=text, netns=self.netns, check=False)
            if done.returncode != 0:
                raise DataplaneError(f"nft: {done.stderr.strip()}")
            if self._installed is None:
                self.counters.whole += 1
            else:
                self._forget_removed_udp(self._installed, ports)
            self.counters.applies += 1
            if since:
                self.counters.latencies.append(time.monotonic() - since)
                del self.counters.latencies[:-1000]
        self._installed = ports
        with self._applied:
            self.ports = ports
            self._applied.notify_all()
        self._synced.set()

    def _forget_removed_udp(self, old: list[ServicePort], new: list[ServicePort]) -> None:
        """Delete conntrack entries of UDP flows to endpoints a Service port no longer has."""
        now = {(p.cluster_ip, p.protocol, p.port): set(p.backends) for p in new}
        for port in old:
            if port.protocol != "UDP":
                continue
            kept = now.get((port.cluster_ip, port.protocol, port.port), set())
            for backend in set(port.backends) - kept:
                try:
                    run(
                        ["conntrack", "-D", "-p", "udp", "--orig-dst", port.cluster_ip,
                         "--dport", str(port.port), "--reply-src", backend.address],
                        netns=self.netns, check=False,
                    )  # fmt: skip
                except EnvironmentProblem as exc:  # no conntrack tool: the rules still apply
                    _LOG.warning("stale UDP flows not cut: %s", exc)
                    return


def _service_of(obj: Obj) -> str:
    """``namespace/name`` of the Service an object (a Service or an EndpointSlice) feeds."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if obj.get("kind") == "EndpointSlice" or "addressType" in obj:
        name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
    return f"{meta.get('namespace', '')}/{name}"
