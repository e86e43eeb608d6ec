"""A cluster's nodes and add-on processes: made by ``cluster up --nodes K``, removed by ``down``.

Why this module exists: after the API server answers, ``cluster up`` turns the machine into a
small cluster: node namespaces joined by an underlay (``dataplane.netns``), one node component
per node (``python -m kubefence.node``, with its own certificate and kubeconfig), the
controllers (``python -m kubefence.controllers``), one policy agent per node (``python -m
kubefence.agent``) and the kube-dns add-on when those packages are installed (a missing one is
logged in ``nodes.log``, never fatal). Everything is recorded under the cluster's state
directory *before* it is made (``nodes.json``: namespaces; ``*.pid`` files), and ``nodes_down``
works from that record, from the naming pattern of namespaces and from the processes found
inside them, so it leaves nothing after a SIGKILL of everything.

State layout: ``nodes.json``, ``nodes.log``, ``controllers.pid``/``.log``, and per node
``nodes/<node>/``: ``kubeconfig``, ``component.pid``/``.log``, ``agent.pid``/``.log``, the node
component's own files (``node.json``, ``server/``, ``pods/``, ``bin/``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kubefence.client import ApiError, Kube, connect
from kubefence.control.pki import ClusterPKI, _issue, _load_key, ensure_pki, load_certificate
from kubefence.dataplane.netns import (
    NodePlan,
    check_environment,
    cluster_netns_pattern,
    create_nodes,
    destroy_nodes,
    plan_nodes,
)

__all__ = [
    "AGENT_METRICS_PORT",
    "NodesError",
    "nodes_down",
    "nodes_present",
    "nodes_restart",
    "nodes_status",
    "nodes_up",
]

ADDONS = Path(__file__).parent / "data" / "addons"
# Each node's agent serves /healthz, /readyz and /metrics on the node's own address at this
# port, inside the node's namespace (as a DaemonSet's agent on a node's IP); the port is
# Felix's, whose metrics users already scrape.
AGENT_METRICS_PORT = 9091
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class NodesError(Exception):
    """The nodes could not be started (the message says why, with a log's tail)."""


def _log(directory: Path, message: str) -> None:
    with open(directory / "nodes.log", "a") as out:
        out.write(f"{time.strftime('%H:%M:%S')} {message}\n")


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(url: str, pki: ClusterPKI, *, user: str, cert: Path, key: Path) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubefence", "cluster": {
            "server": url, "certificate-authority-data": _b64(pki.ca_cert)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert),
                                          "client-key-data": _b64(key)}}],
        "contexts": [{"name": "kubefence", "context": {"cluster": "kubefence", "user": user}}],
        "current-context": "kubefence",
    }  # fmt: skip
    return yaml.safe_dump(config, sort_keys=False)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)


def _serving_cert(pki: ClusterPKI, node: NodePlan) -> tuple[Path, Path]:
    """The node's kubelet serving certificate (127.0.0.1 and its underlay address)."""
    cert = pki.directory / "nodes" / f"{node.name}-serving.crt"
    key = pki.directory / "nodes" / f"{node.name}-serving.key"
    ca = (load_certificate(pki.ca_cert), _load_key(pki.ca_key))
    _issue(cert, key, ca, common_name=f"system:node:{node.name}", orgs=("system:nodes",),
           sans=("127.0.0.1", str(node.address_v4), node.name), server=True,
           client=False)  # fmt: skip
    return cert, key


def _start(command: Sequence[str], *, log: Path, pid_file: Path) -> int:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    _CHILDREN[process.pid] = process
    pid_file.write_text(str(process.pid))
    return process.pid


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _ensure_namespace(kube: Kube, name: str) -> None:
    with contextlib.suppress(ApiError):
        kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name}})  # fmt: skip


def _apply_addons(kube: Kube, directory: Path) -> None:
    """Create the add-on objects (kube-dns) shipped in control/data/addons, if any."""
    if not ADDONS.is_dir():
        _log(directory, "no add-ons shipped (control/data/addons missing): no cluster DNS")
        return
    for path in sorted(ADDONS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict):
                continue
            _create(kube, document, directory)


def _create(kube: Kube, document: dict[str, Any], directory: Path) -> None:
    api_version = str(document.get("apiVersion", "v1"))
    group, _, version = api_version.rpartition("/")
    kind = str(document.get("kind", ""))
    plural = kind.lower() + ("es" if kind.endswith("s") else "s")
    namespace = (document.get("metadata") or {}).get("namespace")
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    try:
        kube.create(path, document)
    except ApiError as exc:
        if exc.code != 409:
            _log(directory, f"add-on {kind} not created: {exc}")


def nodes_up(
    name: str, *, directory: Path, url: str, count: int, timeout: float = 30.0
) -> list[NodePlan]:
    """Make ``count`` nodes and start what runs on them; returns once every Node is Ready."""
    check_environment(tools=("ip", "nft"))
    pki = ensure_pki(directory / "pki", nodes=[f"node-{i}" for i in range(count)])
    plans = list(plan_nodes(name, count))
    record = {"count": count, "namespaces": [f"kf-{name}-net", *(p.netns for p in plans)]}
    (directory / "nodes.json").write_text(json.dumps(record))
    admin = connect(directory / "kubeconfig")
    try:
        for namespace in ("kube-node-lease", "kube-system", "kube-public", "default",
                          "kubefence-system"):  # fmt: skip
            _ensure_namespace(admin, namespace)
        create_nodes(plans)
        _start_processes(name, directory=directory, url=url, pki=pki, plans=plans)
        _apply_addons(admin, directory)
        _wait_ready(admin, directory, plans, timeout=timeout)
    finally:
        admin.close()
    return plans


def _alive(pid_file: Path) -> bool:
    pid = _read_int(pid_file)
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state != "Z" and b"kubefence" in cmdline


def nodes_restart(name: str, *, directory: Path, url: str, timeout: float = 30.0) -> list[str]:
    """Start again the node components (and agents, controllers) that are not running, e.g.
    after a SIGKILL; they reconcile from their records and the API. The nodes restarted."""
    count = int(json.loads((directory / "nodes.json").read_text()).get("count") or 0)
    pki = ClusterPKI(directory / "pki")
    every = plan_nodes(name, count)
    present = set(_present_netns(name))
    if not {f"kf-{name}-net", *(p.netns for p in every)} <= present:
        # A namespace is gone (a reboot empties /run/netns): make the topology again; the
        # node components then make their pods again from their records.
        destroy_nodes(name)
        create_nodes(every)
    plans = [p for p in every if not _alive(directory / "nodes" / p.name / "component.pid")]
    _start_processes(name, directory=directory, url=url, pki=pki, plans=plans,
                     controllers=not _alive(directory / "controllers.pid"))  # fmt: skip
    admin = connect(directory / "kubeconfig")
    try:
        _wait_ready(admin, directory, plans, timeout=timeout)
    finally:
        admin.close()
    return [p.name for p in plans]


def _start_processes(
    name: str,
    *,
    directory: Path,
    url: str,
    pki: ClusterPKI,
    plans: Sequence[NodePlan],
    controllers: bool = True,
) -> None:
    python = sys.executable
    for plan in plans:
        node_dir = directory / "nodes" / plan.name
        node_dir.mkdir(parents=True, exist_ok=True)
        config = node_dir / "kubeconfig"
        _write_private(config, _kubeconfig(url, pki, user=f"system:node:{plan.name}",
                                           cert=pki.node_cert(plan.name),
                                           key=pki.node_key(plan.name)))  # fmt: skip
        cert, key = _serving_cert(pki, plan)
        _start([python, "-m", "kubefence.node", "--cluster", name, "--node", plan.name,
                "--kubeconfig", str(config), "--state", str(node_dir),
                "--serving-cert", str(cert), "--serving-key", str(key),
                "--client-ca", str(pki.ca_cert)],
               log=node_dir / "component.log", pid_file=node_dir / "component.pid")  # fmt: skip
    if not controllers:
        pass
    elif _installed("kubefence.controllers.__main__"):
        # Its own identity when cluster up wrote one, else the admin's. A node whose Lease
        # (renewed every 2 s) is 10 s old becomes NotReady.
        config = directory / "controller-manager.kubeconfig"
        if not config.exists():
            config = directory / "kubeconfig"
        _start([python, "-m", "kubefence.controllers", "--kubeconfig", str(config),
                "--node-monitor-grace-period", "10"],
               log=directory / "controllers.log",
               pid_file=directory / "controllers.pid")  # fmt: skip
    else:
        _log(directory, "kubefence.controllers is not installed: no scheduler or controllers")
    if _installed("kubefence.agent.__main__"):
        agent_config = directory / "agent.kubeconfig"
        text = _kubeconfig(url, pki, user="kubefence:agent", cert=pki.agent_cert, key=pki.agent_key)
        _write_private(agent_config, text)
        for plan in plans:
            node_dir = directory / "nodes" / plan.name
            _start([python, "-m", "kubefence.agent", "--node", plan.name, "--kubeconfig",
                    str(agent_config), "--netns", plan.netns,
                    "--node-address", str(plan.address_v4),
                    "--node-address", str(plan.address_v6),
                    "--hold-cidr", str(plan.pod_cidr_v4),
                    "--hold-cidr", str(plan.pod_cidr_v6),
                    "--flow-log", "--metrics-in-netns",
                    "--metrics-address", str(plan.address_v4),
                    "--metrics-port", str(AGENT_METRICS_PORT)], log=node_dir / "agent.log",
                   pid_file=node_dir / "agent.pid")  # fmt: skip
    else:
        _log(directory, "kubefence.agent is not installed: policies are not enforced on nodes")


def _wait_ready(kube: Kube, directory: Path, plans: Sequence[NodePlan], *, timeout: float) -> None:
    wanted = {p.name for p in plans}
    deadline = time.monotonic() + timeout
    ready: set[str] = set()
    while time.monotonic() < deadline:
        items = (kube.get("/api/v1/nodes").get("items")) or []
        ready = {
            str(n["metadata"]["name"])
            for n in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or ()
            )
        }
        if wanted <= ready:
            return
        for plan in plans:
            pid = _read_int(directory / "nodes" / plan.name / "component.pid")
            child = _CHILDREN.get(pid or -1)
            if child is not None and child.poll() is not None:
                raise NodesError(
                    f"the node component of {plan.name} exited with {child.returncode}:\n"
                    + _tail(directory / "nodes" / plan.name / "component.log")
                )
        time.sleep(0.05)
    raise NodesError(f"nodes not Ready after {timeout:g}s: {sorted(wanted - ready)}")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _netns_inodes(names: Sequence[str]) -> set[int]:
    inodes = set()
    for name in names:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(Path("/run/netns") / name).st_ino)
    return inodes


def _doomed_processes(directory: Path, namespaces: Sequence[str]) -> list[int]:
    """Processes of the cluster's nodes: inside one of its namespaces, or started with a
    command line naming its node state (never the API server or etcd: ``cluster_down``)."""
    inodes = _netns_inodes(namespaces)
    marker = str(directory / "nodes")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            inode = os.stat(entry / "ns" / "net").st_ino
            raw = (entry / "cmdline").read_bytes()
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if inode in inodes or marker in cmdline or (
            "kubefence." in cmdline and str(directory) in cmdline
            and "-m kubefence.control " not in cmdline  # the API server: cluster_down's
        ):  # fmt: skip
            found.append(int(entry.name))
    return found


def _present_netns(name: str) -> list[str]:
    pattern = cluster_netns_pattern(name)
    root = Path("/run/netns")
    return sorted(n.name for n in root.iterdir() if pattern.match(n.name)) if root.is_dir() else []


def nodes_present(name: str, directory: Path) -> bool:
    """Did ``cluster up`` make nodes for ``name`` (recorded, or namespaces left behind)?"""
    return (directory / "nodes.json").exists() or bool(_present_netns(name))


def nodes_down(name: str, *, directory: Path) -> list[str]:
    """Stop every node process and remove every namespace of the cluster; the namespaces
    removed. Safe to call when nothing was made or everything was SIGKILLed."""
    try:
        recorded = json.loads((directory / "nodes.json").read_text()).get("namespaces") or []
    except (OSError, ValueError):
        recorded = []
    namespaces = sorted({*recorded, *_present_netns(name)})
    for _ in range(3):  # processes may fork while we look; a few rounds catch them
        pids = _doomed_processes(directory, namespaces)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid, child in list(_CHILDREN.items()):
            if pid in pids:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=2)
                del _CHILDREN[pid]
        time.sleep(0.05)
    for pid, child in list(_CHILDREN.items()):  # reap ours that died (e.g. SIGKILLed)
        if child.poll() is not None:
            del _CHILDREN[pid]
    if not namespaces and not (directory / "nodes.json").exists():
        return []
    return destroy_nodes(name, recorded=recorded)


def nodes_status(directory: Path) -> list[dict[str, Any]]:
    """Each node's name, namespace and whether its component runs (from the state alone)."""
    try:
        count = int(json.loads((directory / "nodes.json").read_text()).get("count") or 0)
    except (OSError, ValueError):
        return []
    rows = []
    for i in range(count):
        node_dir = directory / "nodes" / f"node-{i}"
        pid = _read_int(node_dir / "component.pid")
        alive = pid is not None and Path(f"/proc/{pid}").exists()
        rows.append(
            {
                "name": f"node-{i}",
                "component_pid": pid if alive else None,
                "address": f"198.19.255.{i + 1}",
                "pod_cidr": f"198.18.{i + 1}.0/24",
            }
        )
    return rows
