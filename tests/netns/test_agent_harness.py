"""The policy agent's test bench: an API server over TLS, a sandbox node, agents, probers.

Shared by ``test_agent_e2e.py`` and ``benchmarks/bench_agent.py`` (no tests here). The sandbox
(``Sandbox.up``) provides the node namespace and one namespace per pod; the same pods are posted
to our API server with the sandbox's addresses in ``status.podIPs`` and ``spec.nodeName`` set,
as a kubelet would report them. The agent authenticates as the ``kubefence-agent`` service
account with exactly the rights ``deploy/rbac.yaml`` grants.
"""

from __future__ import annotations

import base64
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tests.control.conftest import KUBECTL, Cluster, state_restored

from kubefence.client import ApiError, Kube, Resource, connect
from kubefence.control.cluster import cluster_down, cluster_up
from kubefence.dataplane.netns import Sandbox, entered

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NODE = "node-1"
PODS = Resource("", "v1", "pods")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_server(tmp: Path, name: str) -> Iterator[Cluster]:
    """Our API server (SQLite) on a fixed loopback port, so a restart keeps the address."""
    with state_restored():
        os.environ["KUBEFENCE_STATE"] = str(tmp)
        port = free_port()
        info = cluster_up(name, port=port)
        try:
            yield Cluster(info, info.directory / "kubeconfig", tmp / f"kubectl-cache-{name}")
        finally:
            cluster_down(name)


def restart_server(cluster: Cluster) -> Cluster:
    info = cluster_up(cluster.info.name, port=cluster.port)
    return Cluster(info, cluster.kubeconfig, cluster.cache)


def agent_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """Load deploy/rbac.yaml and write a kubeconfig with a token of the agent's account."""
    cluster.kubectl("apply", "-f", str(DEPLOY / "rbac.yaml"))
    token = cluster.kubectl(
        "create", "token", "kubefence-agent", "-n", "kubefence-system", "--duration=2h"
    ).stdout.strip()
    ca = base64.b64encode(cluster.pki.ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": cluster.info.url, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "agent", "context": {"cluster": "c", "user": "agent"}}],
        "current-context": "agent",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def create_or_replace(kube: Kube, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    namespace = metadata.get("namespace") if resource.namespaced else None
    try:
        return kube.create(resource.path(namespace=namespace), obj)
    except ApiError as exc:
        if exc.code != 409:
            raise
    current = kube.get(resource.path(namespace=namespace, name=metadata["name"]))
    obj = dict(obj, metadata=dict(metadata, resourceVersion=current["metadata"]["resourceVersion"]))
    return kube.replace(resource.path(namespace=namespace, name=metadata["name"]), obj)


def publish_pods(kube: Kube, sandbox: Sandbox, manifests: Iterable[dict[str, Any]]) -> None:
    """Post namespaces and pods, each pod with ``spec.nodeName`` and the sandbox's addresses."""
    for obj in manifests:
        if obj["kind"] == "Namespace":
            create_or_replace(kube, NAMESPACES, obj)
    for obj in manifests:
        if obj["kind"] != "Pod":
            continue
        metadata = obj["metadata"]
        namespace = metadata.setdefault("namespace", "default")
        pod = dict(obj, spec=dict(obj["spec"], nodeName=NODE))
        pod.pop("status", None)
        create_or_replace(kube, PODS, pod)
        slot = sandbox.slot(f"{namespace}/{metadata['name']}")
        status = {
            "phase": "Running",
            "podIP": str(slot.ipv4),
            "podIPs": [{"ip": str(slot.ipv4)}, {"ip": str(slot.ipv6)}],
        }
        kube.patch(
            PODS.path(namespace=namespace, name=metadata["name"], subresource="status"),
            {"status": status},
        )


@dataclass
class AgentProcess:
    """``python -m kubefence.agent`` for the sandbox's node, with its log and metrics port."""

    kubeconfig: Path
    netns: str
    log: Path
    extra: tuple[str, ...] = ()
    entry: tuple[str, ...] = (sys.executable, "-m", "kubefence.agent")  # or ``kubefence agent``
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        argv = [
            *self.entry, "--node", NODE,
            "--kubeconfig", str(self.kubeconfig), "--netns", self.netns,
            "--metrics-port", str(self.port), "--lease-duration", "3", *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=ROOT
            )
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 30.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"agent exited {self.process.returncode}:\n{self.tail()}")
            if self.get("/readyz")[0] == 200:
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"agent not ready in {timeout}s:\n{self.tail()}")

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                rest = line[len(name) :]
                if rest[:1] in (" ", "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Prober(threading.Thread):
    """From one pod's namespace, opens a TCP connection to ``address:port`` every ``interval``
    seconds (without waiting for the previous one) and records (send time, answered)."""

    def __init__(
        self, netns: str, address: str, port: int, *, interval: float = 0.003, wait: float = 0.4
    ) -> None:
        super().__init__(daemon=True, name=f"prober-{address}")
        self.netns, self.address, self.port = netns, address, port
        self.interval, self.wait = interval, wait
        self.results: list[tuple[float, bool]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        chooser = selectors.DefaultSelector()
        pending: dict[socket.socket, float] = {}
        with entered(self.netns):
            next_at = time.monotonic()
            while not self._halt.is_set() or pending:
                now = time.monotonic()
                if not self._halt.is_set() and now >= next_at:
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    sock.connect_ex((self.address, self.port))
                    pending[sock] = now
                    chooser.register(sock, selectors.EVENT_WRITE)
                    next_at = now + self.interval
                for key, _ in chooser.select(timeout=0.001):
                    sock = key.fileobj  # type: ignore[assignment]
                    ok = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    self._done(chooser, pending, sock, ok)
                now = time.monotonic()
                for sock, sent in list(pending.items()):
                    if now - sent > self.wait:
                        self._done(chooser, pending, sock, False)
        chooser.close()

    def _done(
        self,
        chooser: selectors.BaseSelector,
        pending: dict[socket.socket, float],
        sock: socket.socket,
        ok: bool,
    ) -> None:
        sent = pending.pop(sock)
        chooser.unregister(sock)
        sock.close()
        with self._lock:
            self.results.append((sent, ok))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def since(self, moment: float) -> list[tuple[float, bool]]:
        with self._lock:
            return sorted(r for r in self.results if r[0] >= moment)

    def first(self, answered: bool, *, after: float, settle: float = 1.0) -> float | None:
        """Send time of the first attempt after ``after`` with that outcome, once results up
        to ``settle`` seconds later are in."""
        deadline = time.monotonic() + settle + self.wait + 1.0
        while time.monotonic() < deadline:
            found = [t for t, ok in self.since(after) if ok is answered]
            if found:
                return found[0]
            time.sleep(0.01)
        return None


def kubectl_apply(cluster: Cluster, text: str) -> float:
    """``kubectl apply -f -``; the monotonic time it returned."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KUBECACHEDIR": str(cluster.cache)}
    done = subprocess.run(
        [str(KUBECTL), "apply", "-f", "-"], input=text, capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )  # fmt: skip
    returned = time.monotonic()
    assert done.returncode == 0, done.stderr
    return returned


def kubectl_delete(cluster: Cluster, *args: str) -> float:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KUBECACHEDIR": str(cluster.cache)}
    done = subprocess.run(
        [str(KUBECTL), "delete", "--wait=false", *args], capture_output=True, text=True,
        env=env, timeout=60, check=False,
    )  # fmt: skip
    returned = time.monotonic()
    assert done.returncode == 0, done.stderr
    return returned


def admin(cluster: Cluster) -> Kube:
    return connect(cluster.kubeconfig)


def quiet_kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        with suppress(ProcessLookupError):
            process.kill()
