"""The walk-through on the sandbox cluster: the guide's literal kubectl commands, really run.

Why this module exists: the classic walk-through is a kubectl session on a real cluster. On the
sandbox cluster (``kubefence cluster up --nodes K``: an API server, nodes whose pods are network
namespaces, Services, DNS, the policy agent) it can be replayed literally: every step's command
is run with the real kubectl and its output shown, and each check is the ``kubectl exec ... --
curl`` a user would type, whose exit code says what the packets did. Predictions are made from
what the API server stores (read back with ``kubefence.client``), as ``kubefence matrix
--kubeconfig`` would. Under each timed-out ``curl`` the tutorial shows the ``kubefence flows
--cluster`` line of the dropped connection: the nodes' agents log new connections
(``--flow-log``) and the checks read every node's log meanwhile (``dataplane.netns.
ClusterFlowReader``); in an interactive shell session the API server is read every 0.3 s in a
thread, since the session's own pod (``kubectl run --rm``) is gone when its lines are
explained. This module starts no process itself: the cluster comes from
``kubefence.control.cluster`` and kubectl from ``kubefence.kubectl``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubefence.api import Inventory
from kubefence.cli._tutorial._netns import curl_observation
from kubefence.cli._tutorial._results import Observation
from kubefence.cli._tutorial._script import Action, Check, Verb, kubectl_command
from kubefence.errors import DataplaneError
from kubefence.semantics import is_backend

if TYPE_CHECKING:
    from kubefence.client import Kube
    from kubefence.dataplane.netns import ClusterFlowReader, FlowEvent
    from kubefence.kubectl import Kubectl

__all__ = ["ClusterObserver"]

_SANDBOX_ONLY = frozenset({"kube-dns.yaml"})  # the cluster has its own DNS addon
_SETTLE = 0.5  # seconds for the agents to enforce a policy change (they take ~0.1 s)
_NSLOOKUP_NO_SERVER = ";; connection timed out; no servers could be reached"
_FLOW_WAIT = 0.3  # seconds to wait for the flow logs' records after the checks
_TIMED_OUT = "curl: (28)"
_WATCH_EVERY = 0.3  # seconds between reads of the API server during a shell session


class ClusterObserver:
    """Replays the walk-through on a sandbox cluster of ``nodes`` nodes, with real kubectl."""

    def __init__(self, name: str, *, nodes: int = 3, timeout: float = 1.0) -> None:
        self.name = name
        self.nodes = nodes
        self.timeout = timeout
        self.description = (
            f"sandbox cluster {name!r} ({nodes} nodes: API server, node components, policy "
            "agents), the real kubectl"
        )
        self._kubectl: Kubectl | None = None
        self._kube: Kube | None = None
        self._directory: Path | None = None  # the cluster's state directory

    # -- the cluster -------------------------------------------------------------------------
    def _up(self) -> tuple[Kubectl, Kube]:
        """kubectl and an API client for the cluster, started on first use."""
        if self._kubectl is not None and self._kube is not None:
            return self._kubectl, self._kube
        from kubefence.client import connect
        from kubefence.control.cluster import cluster_up
        from kubefence.kubectl import Kubectl

        info = cluster_up(self.name, nodes=self.nodes)
        self._directory = info.directory
        kubeconfig = info.directory / "kubeconfig"
        self._kubectl = Kubectl(kubeconfig)
        self._kube = connect(kubeconfig)
        return self._kubectl, self._kube

    def perform(self, action: Action, directory: Path) -> list[str]:
        """Run the action's kubectl command (the literal one when the step names it) and
        return what kubectl printed."""
        kubectl, _ = self._up()
        if action.file in _SANDBOX_ONLY:
            return ["(skipped: the sandbox cluster runs its own kube-dns addon)"]
        if action.verb is Verb.SESSION:
            typed = [self._fill(line) for line in action.typed]
            reader = self._flow_reader()
            watcher = _ObjectsWatcher(self._directory) if reader is not None else None
            try:
                with watcher or contextlib.nullcontext():
                    result = kubectl.session(shlex.split(action.command)[1:], typed, timeout=60)
                lines = result.stdout.rstrip("\n").splitlines()
                if reader is None or watcher is None or not any(_TIMED_OUT in x for x in lines):
                    return lines
                events = [e for _ in range(2) for _, e in reader.read(_FLOW_WAIT)]
            finally:
                if reader is not None:
                    reader.close()
            return _session_flow_lines(lines, events, watcher.inventories)
        if action.verb is Verb.SHOW:
            self._wait_for_pods()
            if action.command.startswith("curl "):  # the API server, asked anonymously
                return kubectl.run_program(shlex.split(self.display(action))).lines
        if action.command.startswith("kubectl "):
            args = shlex.split(action.command)[1:]
        else:
            args = [action.verb.value, "-f", str(directory / action.file)]
            if action.verb is Verb.DELETE:
                args.append("--wait=false")
        result = kubectl.run(args)
        return result.lines or [f"(kubectl exited with status {result.returncode})"]

    def display(self, action: Action) -> str:
        """The command as run here: ``{server}`` is this cluster's API server."""
        if "{server}" not in action.command:
            return action.display()
        _, kube = self._up()
        return action.command.replace("{server}", kube.host)

    def _fill(self, line: str) -> str:
        """``{NS/POD}`` in a typed line replaced by that pod's address."""
        _, kube = self._up()
        self._wait_for_pods()
        for key in re.findall(r"\{([a-z0-9.-]+/[a-z0-9.-]+)\}", line):
            namespace, name = key.split("/", 1)
            pod = kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
            line = line.replace(f"{{{key}}}", str(pod["status"]["podIP"]))
        return line

    def sync(self, inventory: Inventory, *, files: Sequence[Path]) -> None:
        """Wait until every pod the API stores runs with an address, then for enforcement."""
        self._wait_for_pods()
        time.sleep(_SETTLE)

    def _wait_for_pods(self) -> None:
        _, kube = self._up()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items, _ = kube.list("/api/v1/pods")
            waiting = [
                p
                for p in items
                if not (p.get("status") or {}).get("podIP")
                or (p.get("status") or {}).get("phase") != "Running"
            ]
            if not waiting:
                break
            time.sleep(0.1)
        else:
            names = ", ".join(_key(p) for p in waiting)
            raise DataplaneError(f"pods did not start within 60 s: {names}")

    def live_inventory(self) -> Inventory:
        """What the API server stores, validated as files would be."""
        from kubefence.client import read_objects
        from kubefence.sources.objects import inventory_from_objects

        _, kube = self._up()
        return inventory_from_objects(read_objects(kube))

    def resolve(self, check: Check, inventory: Inventory) -> Check:
        """The check with its destination replaced by a pod behind the Service of the same name
        when no pod has that name (the cluster's DNS pods are not called kube-dns)."""
        if check.dst in inventory.pod_by_key:
            return check
        namespace, name = check.dst.split("/", 1)
        for service in inventory.services:
            if service.namespace == namespace and service.name == name:
                for pod in inventory.pods:
                    if is_backend(service, pod):
                        return dataclasses.replace(check, dst=f"{pod.namespace}/{pod.name}")
        return check

    # -- the checks --------------------------------------------------------------------------
    def observe(self, checks: Sequence[Check], inventory: Inventory) -> list[Observation]:
        reader = self._flow_reader()
        try:
            observed = [self._observe_one(check, inventory) for check in checks]
            events: list[FlowEvent] = []
            if reader is not None and any(o.allowed is False for o in observed):
                for _ in range(2):  # each node's kernel sends a batch every 0.1 s
                    events += [event for _, event in reader.read(_FLOW_WAIT)]
        finally:
            if reader is not None:
                reader.close()
        return [
            _with_flow_line(o, check, inventory, events)
            for o, check in zip(observed, checks, strict=True)
        ]

    def _flow_reader(self) -> ClusterFlowReader | None:
        """Every node's flow log, bound; None when there is none or someone else reads it
        (then the checks are shown as before, without flow lines)."""
        from kubefence.dataplane.netns import ClusterFlowReader, cluster_flow_nodes
        from kubefence.dataplane.nft import FlowLog

        self._up()
        if self._directory is None:
            return None
        try:
            nodes = cluster_flow_nodes(self.name, self._directory)
            return ClusterFlowReader(nodes, group=FlowLog().group).__enter__()
        except (DataplaneError, OSError):
            return None

    def _observe_one(self, check: Check, inventory: Inventory) -> Observation:
        command = kubectl_command(check, inventory)
        args = shlex.split(command)[1:]
        kubectl, _ = self._up()
        result = kubectl.run(args, timeout=self.timeout + 20)
        shown = command
        if result.returncode is None:
            return Observation(None, shown, ("kubectl did not finish",))
        if check.is_dns:
            if result.returncode == 0:
                return Observation(True, shown, tuple(result.stdout.splitlines()[:4]))
            lines = tuple(result.lines[:3])
            denied = any("timed out" in line or "no servers" in line for line in result.lines)
            return Observation(False if denied else None, shown, lines or (_NSLOOKUP_NO_SERVER,))
        return curl_observation(
            shown, result.returncode, stdout=result.stdout, stderr=result.stderr
        )

    def keep_instructions(self) -> list[str]:
        if self._kubectl is None:
            return []
        return [
            "",
            f"The cluster {self.name!r} is still up (--keep). Use it with kubectl:",
            f"  export KUBECONFIG={self._kubectl.kubeconfig}",
            "  kubectl get pods -A -o wide",
            "  kubectl run busybox --rm -ti --image=alpine -- /bin/sh",
            f"  kubefence flows --cluster {self.name} -f   # each new connection and its policy",
            f"Remove it with: kubefence cluster down --name {self.name}",
        ]

    def close(self) -> None:
        from kubefence.control.cluster import cluster_down

        if self._kube is not None:
            self._kube.close()
        self._kubectl = None
        self._kube = None
        cluster_down(self.name)


class _ObjectsWatcher:
    """While a shell session runs, what the API server stores, read every ``_WATCH_EVERY``
    seconds in a thread: the session's own pod (``kubectl run --rm``) is gone when it ends,
    and explaining its dropped connections needs it. ``inventories``: each read whose pods
    differ from the one before (a few per session)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.inventories: list[Inventory] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tutorial-watch", daemon=True)

    def _watch(self) -> None:
        from kubefence.client import ApiError, connect, read_objects
        from kubefence.errors import KubefenceError
        from kubefence.sources.objects import inventory_from_objects

        if self.directory is None:
            return
        kube = connect(self.directory / "kubeconfig")
        try:
            while not self._stop.is_set():
                with contextlib.suppress(KubefenceError, ApiError, OSError):  # no flow line
                    inventory = inventory_from_objects(read_objects(kube))
                    if not self.inventories or _pods(self.inventories[-1]) != _pods(inventory):
                        self.inventories.append(inventory)
                self._stop.wait(_WATCH_EVERY)
        finally:
            kube.close()

    def __enter__(self) -> _ObjectsWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _pods(inventory: Inventory) -> set[tuple[str, tuple[object, ...]]]:
    return {(pod.key, tuple(pod.ips)) for pod in inventory.pods}


def _session_flow_lines(
    lines: list[str], events: Sequence[FlowEvent], inventories: Sequence[Inventory]
) -> list[str]:
    """The session's transcript with, under each ``curl`` that timed out, the ``kubefence
    flows`` line of a dropped connection from a pod that existed during the session (in
    order: the n-th timeout gets the n-th such drop), explained with the latest read of the
    API server that still had that pod."""
    from kubefence.cli._flows import FlowExplainer, render_line
    from kubefence.semantics import DEFAULT_SETTINGS

    explained: list[str] = []
    for event in events:
        if event.allowed:
            continue
        for inventory in reversed(inventories):
            names = {str(a): pod.key for pod in inventory.pods for a in pod.ips}
            if str(event.source) in names:
                explainer = FlowExplainer(inventory, settings=DEFAULT_SETTINGS, names=names)
                explained.append(f"kubefence flows: {render_line(explainer.record(event))}")
                break
    shown: list[str] = []
    for line in lines:
        shown.append(line)
        if _TIMED_OUT in line and explained:
            shown.append(explained.pop(0))
    return shown


def _with_flow_line(
    observation: Observation,
    check: Check,
    inventory: Inventory,
    events: Sequence[FlowEvent],
) -> Observation:
    """A timed-out curl with the ``kubefence flows`` line of its dropped connection added."""
    if observation.allowed is not False or check.is_dns:
        return observation
    source, destination = inventory.pod_by_key.get(check.src), inventory.pod_by_key.get(check.dst)
    if source is None or destination is None:
        return observation
    from kubefence.cli._flows import FlowExplainer, render_line
    from kubefence.semantics import DEFAULT_SETTINGS

    for event in events:
        if (
            not event.allowed
            and event.source in source.ips
            and event.destination in destination.ips
            and event.destination_port == check.port
        ):
            names = {str(a): pod.key for pod in inventory.pods for a in pod.ips}
            explainer = FlowExplainer(inventory, settings=DEFAULT_SETTINGS, names=names)
            line = f"kubefence flows: {render_line(explainer.record(event))}"
            return Observation(observation.allowed, observation.command, (*observation.lines, line))
    return observation


def _key(pod: dict[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
