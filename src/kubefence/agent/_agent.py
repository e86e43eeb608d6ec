"""The agent's life: lease, fail-closed start, informers, the debounced reconcile loop.

Why this module exists: it is the order of things that makes the agent safe. Nothing touches
the kernel before this agent holds its node's Lease; then the table a previous agent left is
kept (or new connections are held, see ``_enforce``) until every informer has delivered its
first list; then each batch of changes is planned from the store and installed as one nft
transaction. A change that comes while the agent is idle is installed at once (leading edge);
changes that keep coming while it works are gathered for ``debounce`` into the next batch
(``gather_first``), so a burst costs a few transactions, not one per event. When the API
server cannot be reached the informers back off and keep their copies, so the rules stay as
they are; they are never flushed, also not on exit.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubefence.agent._api import EventRecorder, NodeLease
from kubefence.agent._counters import PolicyCounters, serving_in
from kubefence.agent._enforce import Enforcer
from kubefence.agent._nodes import NODES
from kubefence.agent._ops import Metrics, OpsServer
from kubefence.agent._slim import decode_pod_page
from kubefence.agent._store import Problem, Store
from kubefence.api import IPAddress, IPNetwork, Protocol
from kubefence.client import ApiError, Event, Informer, Kube, Resource, connect
from kubefence.dataplane.nft import FlowLog

__all__ = ["ADMIN_RESOURCES", "RESOURCES", "Agent", "Options", "gather_first", "kernel_unsupported"]

_LOG = logging.getLogger("kubefence.agent")

RESOURCES: dict[str, Resource] = {
    "Namespace": Resource("", "v1", "namespaces", namespaced=False),
    "Pod": Resource("", "v1", "pods"),
    "NetworkPolicy": Resource("networking.k8s.io", "v1", "networkpolicies"),
    "Node": NODES,  # the tiers' ``nodes`` peer reads their labels and addresses (``_nodes``)
}
# The admin tiers, watched when the API server serves them (404: not served, asked again
# every ``ADMIN_RECHECK`` seconds).
ADMIN_RESOURCES: dict[str, Resource] = {
    "ClusterNetworkPolicy": Resource(
        "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", namespaced=False
    ),
    "AdminNetworkPolicy": Resource(
        "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", namespaced=False
    ),
    "BaselineAdminNetworkPolicy": Resource(
        "policy.networking.k8s.io", "v1alpha1", "baselineadminnetworkpolicies", namespaced=False
    ),
}
ADMIN_RECHECK = 30.0
# Seconds the first sync may run with the cyclic collector off (see ``Agent.run``).
FIRST_SYNC_NO_GC = 10.0


def kernel_unsupported() -> tuple[Protocol, ...]:
    """Protocols this kernel cannot serve to pods: SCTP without the sctp module."""
    return () if os.path.exists("/proc/sys/net/sctp") else (Protocol.SCTP,)


def gather_first(first_change: float, last_install: float, debounce: float) -> bool:
    """Wait ``debounce`` before planning a change first seen at ``first_change``? Only when
    it came within ``debounce`` of the end of the last install (a burst in progress); a change
    to an idle agent is planned at once."""
    return first_change - last_install < debounce


@dataclass(frozen=True, slots=True)
class Options:
    """Everything ``python -m kubefence.agent`` accepts (see ``_main``)."""

    node: str
    kubeconfig: str | None = None
    context: str | None = None
    netns: str | None = None
    fail_open: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # None: no HTTP endpoints
    lease_namespace: str = "kubefence-system"
    lease_duration: float = 15.0
    debounce: float = 0.005
    resync: float = 300.0
    max_backoff: float = 1.0  # informers' retry cap: converge within seconds of an outage
    unsupported: tuple[Protocol, ...] | None = None  # None: ask the kernel
    node_addresses: tuple[IPAddress, ...] = field(default=())
    hold_cidrs: tuple[IPNetwork, ...] = field(default=())  # see ``--hold-cidr``
    flow_log: bool = False  # NFLOG rules for ``kubefence flows`` (``--flow-log``)
    policy_counters: bool = True  # rule counters behind the per-policy metrics (``_counters``)
    metrics_in_netns: bool = False  # serve the HTTP endpoints inside ``netns`` (a node's own)


class Agent:
    """One node's agent; ``run`` blocks until ``stop`` (or SIGTERM through ``main``)."""

    def __init__(self, options: Options, *, kube: Kube | None = None) -> None:
        self.options = options
        self.kube = kube or connect(options.kubeconfig, context=options.context)
        unsupported = kernel_unsupported() if options.unsupported is None else options.unsupported
        self.store = Store(options.node, unsupported=unsupported)
        self.metrics = Metrics()
        self.enforcer = Enforcer(
            netns=options.netns,
            node_addresses=options.node_addresses,
            flow_log=FlowLog() if options.flow_log else None,
            counters=options.policy_counters,
            held=options.hold_cidrs,
        )
        if options.policy_counters:  # read from the kernel at scrape time (``_counters``)
            self.metrics.registry.register(
                PolicyCounters(
                    netns=options.netns,
                    plan=lambda: self.enforcer.plan,
                    on_error=self.metrics.errors.labels("counters").inc,
                )
            )
        self.events = EventRecorder(self.kube, node=options.node)
        self.lease = NodeLease(
            self.kube,
            node=options.node,
            namespace=options.lease_namespace,
            duration=options.lease_duration,
            on_lost=self._lease_lost,
        )
        self.informers = {kind: self._informer(kind, r) for kind, r in RESOURCES.items()}
        self._admin_checked = -ADMIN_RECHECK  # monotonic time of the last look for the tiers
        self.synced = threading.Event()
        self.stopped = threading.Event()
        self.lost = False
        self._dirty = threading.Event()
        self._first_change: float | None = None
        self._last_install = -float("inf")  # monotonic end of the last reconcile
        self._reported: dict[tuple[str, str], str] = {}
        self._loop_beat = time.monotonic()
        self.ops: OpsServer | None = None
        self.start_mode = ""
        # Pods of the first list, kept raw until every informer has listed (``_flush_initial``).
        self._initial_lock = threading.Lock()
        self._initial: dict[str, Mapping[str, Any]] | None = {}

    def _informer(self, kind: str, resource: Resource) -> Informer:
        return Informer(
            self.kube,
            resource,
            handler=self._handler(kind),
            resync=self.options.resync,
            max_backoff=self.options.max_backoff,
            name=f"agent-{resource.plural}",
            decode=decode_pod_page if kind == "Pod" else None,  # only what the store reads
        )

    def _watch_admin_tiers(self) -> list[Informer]:
        """Start an informer for each admin-tier kind the API server serves now and is not
        watched yet (at most every ``ADMIN_RECHECK`` seconds); the ones started."""
        now = time.monotonic()
        if now - self._admin_checked < ADMIN_RECHECK:
            return []
        self._admin_checked = now
        started = []
        for kind, resource in ADMIN_RESOURCES.items():
            if kind in self.informers:
                continue
            try:
                self.kube.get(resource.path(), limit="1")
            except ApiError as exc:
                if exc.code in (403, 404):  # not served (or not granted): look again later
                    _LOG.debug("%s: %s", resource.plural, exc.code)
                    continue
                _LOG.warning("asking for %s failed: %s", resource.plural, exc)
                continue
            except Exception as exc:  # the API server is unreachable: look again later
                _LOG.warning("asking for %s failed: %s", resource.plural, exc)
                self._admin_checked = now - ADMIN_RECHECK + 1.0
                continue
            informer = self._informer(kind, resource)
            self.informers[kind] = informer
            informer.start()
            started.append(informer)
            _LOG.info("watching %s", resource.plural, extra={"kind": kind})
        return started

    # -- events from the informers ---------------------------------------------------------
    def _handler(self, kind: str) -> Callable[[Event], None]:
        def handle(event: Event) -> None:
            if kind == "Pod":
                with self._initial_lock:
                    if self._initial is not None:  # the first list: parsed as one batch
                        if event.type == "DELETED":
                            self._initial.pop(event.key, None)
                        else:
                            self._initial[event.key] = event.obj
                        return
            before = self.store.version
            if event.type == "DELETED":
                self.store.remove(kind, event.key)
            else:
                self.store.put(kind, event.key, event.obj)
            if self.store.version != before:
                if self._first_change is None:
                    self._first_change = time.monotonic()
                self._dirty.set()

        return handle

    def _flush_initial(self) -> None:
        """Parse the first list's pods in one batch; later pod events go to the store one by
        one. Holding the lock keeps an event from slipping between the two."""
        with self._initial_lock:
            initial, self._initial = self._initial, None
            if initial:
                self.store.put_pods(list(initial.items()))

    # -- health ----------------------------------------------------------------------------
    def healthy(self) -> bool:
        if self.stopped.is_set():
            return False
        # Unhealthy when the reconcile loop is stuck.
        return not (self.synced.is_set() and time.monotonic() - self._loop_beat > 30.0)

    def ready(self) -> bool:
        return self.synced.is_set() and not self.stopped.is_set()

    def _update_gauges(self) -> None:
        for kind, informer in self.informers.items():
            self.metrics.objects.labels(kind).set(self.store.count(kind))
            self.metrics.watch_restarts.labels(informer.resource.plural).set(
                informer.counters.restarts
            )
            self.metrics.relists.labels(informer.resource.plural).set(informer.counters.lists)

    # -- the loop --------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Install the store's current state (one nft transaction) and report problems."""
        started = self._first_change or time.monotonic()
        self._first_change = None
        self._dirty.clear()
        snapshot = self.store.snapshot()
        try:
            # A pod not planned yet is held while any policy could select it (fail closed).
            held = self.options.hold_cidrs if snapshot.policies_total else ()
            installed = self.enforcer.install(
                snapshot.inventory,
                addresses=snapshot.addresses,
                local=snapshot.local,
                held=held,
                changes=snapshot.changes,
            )
        except Exception:
            self.metrics.errors.labels("nft").inc()
            _LOG.exception("installing the ruleset failed; the previous table stays")
            self._dirty.set()
            self.stopped.wait(0.5)
            return
        elapsed = time.monotonic() - started
        self.metrics.sync_seconds.labels(installed.how).observe(elapsed)
        self.metrics.syncs.labels(installed.how).inc()
        self.metrics.chains.set(installed.chains)
        self.metrics.elements.set(installed.elements)
        self.metrics.dispatched.set(installed.dispatched)
        self.metrics.local_pods.set(len(snapshot.local))
        self._report(snapshot.problems)
        self._update_gauges()
        _LOG.info(
            "ruleset %s",
            installed.how,
            extra={
                "seconds": round(elapsed, 4),
                "pods": snapshot.pods_total,
                "planned_pods": len(snapshot.inventory.pods),
                "local_pods": len(snapshot.local),
                "policies": snapshot.policies_total,
                "planned_policies": len(snapshot.inventory.policies),
                "chains": installed.chains,
                "elements": installed.elements,
                "plan_seconds": round(installed.plan_seconds, 4),
                "nft_seconds": round(installed.nft_seconds, 4),
            },
        )

    def _report(self, problems: tuple[Problem, ...]) -> None:
        current = {(p.kind, p.key): p for p in problems}
        counts: dict[str, int] = {}
        for problem in problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        for kind in ("Namespace", "Pod", "NetworkPolicy", "Node"):
            self.metrics.not_enforced.labels(kind).set(counts.get(kind, 0))
        for key, problem in current.items():
            if self._reported.get(key) == problem.message:
                continue
            self._reported[key] = problem.message
            self.metrics.errors.labels("compile").inc()
            _LOG.warning(
                "cannot compile %s %s: %s",
                problem.kind,
                problem.key,
                problem.message,
                extra={"object": problem.key, "kind": problem.kind},
            )
            if problem.kind == "NetworkPolicy":
                what = "its pods stay isolated (no rule of it is installed)"
            elif problem.kind in ADMIN_RESOURCES:
                what = "it is not enforced (the API server should not have accepted it)"
            elif problem.kind == "Node":
                what = "tier 'nodes' peers match only the addresses that could be read"
            else:
                what = (
                    "only its name, labels, placement and addresses are used (it is left out "
                    "if even those cannot be read)"
                )
            self.events.warn(
                problem.obj,
                kind=problem.kind,
                reason="NotEnforced" if problem.kind == "NetworkPolicy" else "NotCompiled",
                message=f"kubefence-agent on {self.options.node}: {problem.message}; {what}",
            )
        for key in set(self._reported) - set(current):
            del self._reported[key]

    def _loop(self) -> None:
        while not self.stopped.is_set():
            self._loop_beat = time.monotonic()
            if not self._dirty.wait(1.0):
                self._watch_admin_tiers()
                self._update_gauges()
                continue
            if self.stopped.is_set():
                return
            first = self._first_change or time.monotonic()
            if gather_first(first, self._last_install, self.options.debounce):
                self.stopped.wait(self.options.debounce)  # a burst: batch it
            self.reconcile()
            self._last_install = time.monotonic()

    # -- start and stop --------------------------------------------------------------------
    def start_ops(self) -> None:
        if self.options.metrics_port is not None and self.ops is None:
            with serving_in(self.options.netns if self.options.metrics_in_netns else None):
                self.ops = OpsServer(
                    host=self.options.metrics_host,
                    port=self.options.metrics_port,
                    metrics=self.metrics,
                    healthy=self.healthy,
                    ready=self.ready,
                ).start()

    def run(self) -> int:
        """Lease, fail-closed start, first sync, then reconcile until stopped. 0, or 1 when the
        lease was lost to another agent."""
        self.start_ops()
        node = self.options.node
        _LOG.info("starting", extra={"node": node, "server": self.kube.host})
        if not self.lease.acquire():
            return 0
        self.start_mode = self.enforcer.start(fail_open=self.options.fail_open)
        _LOG.info("before the first sync the table is %s", self.start_mode, extra={"node": node})
        started, started_cpu = time.monotonic(), time.process_time()
        # The first lists and the first plan allocate a few million objects that all stay;
        # the cyclic collector would walk them again and again (half the lists' CPU). Off
        # until the first sync is installed, unless that waits for an unreachable API server.
        collecting = gc.isenabled()
        gc.disable()
        for informer in self.informers.values():
            informer.start()
        self._watch_admin_tiers()
        for informer in list(self.informers.values()):
            while not informer.wait_synced(0.5):
                if collecting and time.monotonic() - started > FIRST_SYNC_NO_GC:
                    gc.enable()
                if self.stopped.is_set():
                    if collecting:
                        gc.enable()
                    return self._shutdown()
        listed, listed_cpu = time.monotonic(), time.process_time()
        self._flush_initial()
        flushed, flushed_cpu = time.monotonic(), time.process_time()
        self.reconcile()
        # The copies of the cluster listed so far are long-lived: moved out of the collector's
        # generations, a full collection after a change does not walk them all again.
        gc.freeze()
        if collecting:
            gc.enable()
        self.synced.set()
        self.metrics.ready.set(1)
        done, done_cpu = time.monotonic(), time.process_time()
        _LOG.info(
            "first sync done",
            extra={
                "node": node,
                "seconds": round(done - started, 3),
                # lists over TLS, JSON, namespaces and policies; the pods; snapshot to nft.
                "list_seconds": round(listed - started, 3),
                "pods_seconds": round(flushed - listed, 3),
                "install_seconds": round(done - flushed, 3),
                # CPU of this process (every thread) by then, and in the last two parts.
                "cpu_seconds": round(done_cpu, 3),
                "list_cpu_seconds": round(listed_cpu - started_cpu, 3),
                "pods_cpu_seconds": round(flushed_cpu - listed_cpu, 3),
                "install_cpu_seconds": round(done_cpu - flushed_cpu, 3),
            },
        )
        self._loop()
        return self._shutdown()

    def stop(self) -> None:
        self.stopped.set()
        self._dirty.set()

    def _lease_lost(self) -> None:
        """Another agent took this node's Lease: stop programming (the process exits 1)."""
        self.lost = True
        self.stop()

    def _shutdown(self) -> int:
        for informer in self.informers.values():
            informer.stop(timeout=0.1)
        self.lease.release()
        if self.ops is not None:
            self.ops.stop()
        _LOG.info("stopped; the table stays as it is", extra={"node": self.options.node})
        return 1 if self.lost else 0


def install_signal_handlers(agent: Agent) -> None:
    """SIGTERM and SIGINT stop the agent cleanly (the lease is released, the rules stay)."""

    def handle(signum: int, frame: object) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
