"""A cluster's lifecycle on this machine: `up`, `down`, `status`, kubeconfig.

Why this module exists: `kubefence cluster ...` and the tests need the same start/stop logic.
Everything a cluster owns lives under one state directory (`$KUBEFENCE_STATE/<name>` or
`/run/kubefence/clusters/<name>`): pki/, store/ (SQLite) or etcd/ (data, pid, log), the API
server's pid, log, bound port and audit log, and the kubeconfig. `down` stops the processes
(only if their command line still names this directory, so a reused pid is never signalled) and
removes the directory; it works as well after the server or etcd was SIGKILLed. With
``nodes`` > 0, ``up`` goes on to make the nodes and start what runs on them (``control.nodes``)
and ``down`` removes those first.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubefence.control.pki import ClusterPKI, ensure_pki

__all__ = [
    "ClusterInfo",
    "cluster_down",
    "cluster_status",
    "cluster_up",
    "kubeconfig",
    "merge_kubeconfig",
    "state_dir",
]

DEFAULT_ROOT = Path("/run/kubefence/clusters")
# The server outlives the Popen that started it by design; keeping the object lets `down` reap it
# when it is our child (and keeps Python from warning that it was dropped while running).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class ClusterError(Exception):
    """The cluster could not be started (message says why, with the log's tail)."""


def state_dir(name: str) -> Path:
    root = os.environ.get("KUBEFENCE_STATE")
    return (Path(root) if root else DEFAULT_ROOT) / name


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    name: str
    directory: Path
    running: bool
    pid: int | None
    url: str
    store: str
    etcd_pid: int | None = None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _ours(pid: int | None, directory: Path) -> bool:
    """pid is alive and its command line names our state directory."""
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and str(directory) in cmdline


def _ssl(pki: ClusterPKI) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(pki.admin_cert, pki.admin_key)
    return context


def _ready(url: str, pki: ClusterPKI) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1, context=_ssl(pki)) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cluster_status(name: str) -> ClusterInfo:
    directory = state_dir(name)
    pid = _read_int(directory / "server.pid")
    port = _read_int(directory / "port")
    store = (
        (directory / "store-kind").read_text().strip()
        if (directory / "store-kind").exists()
        else ""
    )
    running = _ours(pid, directory)
    url = f"https://127.0.0.1:{port}" if port else ""
    etcd_pid = _read_int(directory / "etcd" / "etcd.pid")
    return ClusterInfo(name, directory, running, pid if running else None, url, store, etcd_pid)


def cluster_up(
    name: str,
    *,
    store: str = "sqlite",
    port: int = 0,
    server_addresses: tuple[str, ...] = (),
    token_file: Path | None = None,
    timeout: float = 30.0,
    nodes: int = 0,
) -> ClusterInfo:
    """Start the cluster (or return it if it already runs); returns once /readyz answers and,
    with ``nodes``, once that many sandbox nodes are Ready."""
    _reap_dead_children()
    if nodes:
        from kubefence.dataplane.netns import check_environment

        check_environment(tools=("ip", "nft"))  # before anything starts: root, ip, nft
    current = cluster_status(name)
    if current.running:
        if (current.directory / "nodes.json").exists():
            from kubefence.control.nodes import nodes_restart

            nodes_restart(name, directory=current.directory, url=current.url, timeout=timeout)
        elif nodes:
            _start_nodes(name, current, nodes, timeout=timeout)
        return current
    directory = current.directory
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = ensure_pki(directory / "pki", server_addresses=server_addresses)
    (directory / "store-kind").write_text(store)
    (directory / "port").unlink(missing_ok=True)
    command = [sys.executable, "-m", "kubefence.control", "--state", str(directory),
               "--port", str(port), "--store", store]  # fmt: skip
    if token_file is not None:
        command += ["--token-file", str(token_file.resolve())]
    if store == "etcd":
        from kubefence.control.etcd_process import start_etcd

        etcd_dir = directory / "etcd"
        etcd_dir.mkdir(exist_ok=True, mode=0o700)
        etcd = start_etcd(
            pki, etcd_dir / "data", log_path=etcd_dir / "etcd.log", pid_file=etcd_dir / "etcd.pid"
        )
        command += ["--etcd-endpoint", etcd.client_url]
    log = (directory / "server.log").open("ab")
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        close_fds=True,
    )  # fmt: skip
    log.close()
    _CHILDREN[process.pid] = process
    (directory / "server.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(
                f"the API server exited with {process.returncode}:\n"
                + _tail(directory / "server.log")
            )
        bound = _read_int(directory / "port")
        if bound and _ready(f"https://127.0.0.1:{bound}", pki):
            (directory / "kubeconfig").write_text(kubeconfig(name))
            os.chmod(directory / "kubeconfig", 0o600)
            _write_controller_manager_kubeconfig(name, pki)
            info = cluster_status(name)
            if (directory / "nodes.json").exists():  # a restart: its nodes come back
                from kubefence.control.nodes import nodes_restart

                nodes_restart(name, directory=directory, url=info.url, timeout=timeout)
            elif nodes:
                _start_nodes(name, info, nodes, timeout=timeout)
            return info
        time.sleep(0.02)
    cluster_down(name)
    raise ClusterError(f"the API server did not become ready in {timeout:g}s")


def _start_nodes(name: str, info: ClusterInfo, count: int, *, timeout: float) -> None:
    from kubefence.control.nodes import NodesError, nodes_up
    from kubefence.errors import KubefenceError

    try:
        nodes_up(name, directory=info.directory, url=info.url, count=count, timeout=timeout)
    except (NodesError, KubefenceError, OSError) as exc:
        cluster_down(name)
        raise ClusterError(f"the nodes did not come up: {exc}") from exc


def _reap_dead_children() -> None:
    """Wait for our server children that already exited (e.g. SIGKILLed): no zombies, and no
    'still running' warning from a dropped Popen."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            del _CHILDREN[pid]


def _stop(pid: int | None, directory: Path, *, timeout: float = 5.0) -> bool:
    _reap_dead_children()
    if not _ours(pid, directory):
        return False
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ours(pid, directory):
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:
            break
        time.sleep(0.02)
    if _ours(pid, directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=timeout)
    return True


def cluster_down(name: str) -> bool:
    """Stop everything the cluster runs and remove its state; False if there was nothing."""
    from kubefence.control.nodes import nodes_down, nodes_present

    directory = state_dir(name)
    if nodes_present(name, directory):
        nodes_down(name, directory=directory)  # first: node processes, then their namespaces
    if not directory.exists():
        return False
    _stop(_read_int(directory / "server.pid"), directory)
    etcd_dir = directory / "etcd"
    if (etcd_dir / "etcd.pid").exists():
        from kubefence.control.etcd_process import stop_etcd

        stop_etcd(etcd_dir / "data", pid_file=etcd_dir / "etcd.pid")
    shutil.rmtree(directory, ignore_errors=True)
    return True


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_dict(name: str) -> dict[str, Any]:
    info = cluster_status(name)
    pki = ClusterPKI(info.directory / "pki")
    entry = f"kubefence-{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": entry, "cluster": {"server": info.url,
                                        "certificate-authority-data": _b64(pki.ca_cert)}}
        ],
        "users": [
            {"name": f"{entry}-admin", "user": {"client-certificate-data": _b64(pki.admin_cert),
                                                "client-key-data": _b64(pki.admin_key)}}
        ],
        "contexts": [
            {"name": entry, "context": {"cluster": entry, "user": f"{entry}-admin"}}
        ],
        "current-context": entry,
        "preferences": {},
    }  # fmt: skip


def _write_controller_manager_kubeconfig(name: str, pki: ClusterPKI) -> None:
    """``controller-manager.kubeconfig``: the admin kubeconfig with the controller manager's
    certificate (CN system:kube-controller-manager), for ``python -m kubefence.controllers``."""
    config = kubeconfig_dict(name)
    config["users"][0]["user"] = {
        "client-certificate-data": _b64(pki.controller_manager_cert),
        "client-key-data": _b64(pki.controller_manager_key),
    }
    target = state_dir(name) / "controller-manager.kubeconfig"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(target, 0o600)


def kubeconfig(name: str) -> str:
    return yaml.safe_dump(kubeconfig_dict(name), sort_keys=False)


def merge_kubeconfig(name: str, target: Path) -> None:
    """Add (or replace) this cluster's entries in `target` and make it the current context."""
    ours = kubeconfig_dict(name)
    try:
        existing = yaml.safe_load(target.read_text()) or {}
    except FileNotFoundError:
        existing = {}
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", **existing}
    for section in ("clusters", "users", "contexts"):
        names = {entry["name"] for entry in ours[section]}
        kept = [e for e in merged.get(section) or [] if e.get("name") not in names]
        merged[section] = kept + ours[section]
    merged["current-context"] = ours["current-context"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".kubefence-tmp")
    tmp.write_text(yaml.safe_dump(merged, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(target)
