"""Running the cluster's own etcd: one member on loopback, mutual TLS, data under the cluster.

``cluster up --store etcd`` needs a real etcd that only the API server can talk to: Debian's
``etcd`` (3.4) is started on 127.0.0.1 with free ports, serving TLS with the etcd CA's server
certificate and requiring client certificates from that CA (``--client-cert-auth``), peer
traffic likewise. It runs in its own session so it outlives the command that started it; the
pid is written to a file so ``cluster down`` can stop it later, even after the API server was
SIGKILLed. Stopping checks that the pid still belongs to this etcd (its command line names this
data directory) before signalling it, so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kubefence.control.pki import ClusterPKI

__all__ = [
    "EtcdError",
    "EtcdProcess",
    "client_ssl_context",
    "etcd_binary",
    "etcd_running",
    "start_etcd",
    "stop_etcd",
]

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # above the API server's 3 MiB body limit, plus framing
_START_ATTEMPTS = 3
# etcd outlives the Popen that started it by design; holding the object here keeps Python from
# warning that it was dropped while running, and lets stop_etcd reap it when it is our child.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class EtcdError(Exception):
    """etcd could not be started, is missing, or did not become healthy."""


@dataclass(frozen=True, slots=True)
class EtcdProcess:
    """A started etcd member: where clients reach it and how to stop it."""

    pid: int
    client_url: str  # https://127.0.0.1:<port>
    peer_url: str
    data_dir: Path
    log_path: Path


def etcd_binary() -> str | None:
    """The etcd executable on PATH (Debian package ``etcd-server``), or None."""
    return shutil.which("etcd")


def client_ssl_context(pki: ClusterPKI) -> ssl.SSLContext:
    """TLS context of the API server as etcd's client: etcd CA trusted, client cert presented."""
    ctx = ssl.create_default_context(cafile=str(pki.etcd_ca_cert))
    ctx.load_cert_chain(pki.etcd_client_cert, pki.etcd_client_key)
    return ctx


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(
    binary: str, pki: ClusterPKI, data_dir: Path, *, name: str, client: int, peer: int
) -> list[str]:
    client_url, peer_url = f"https://127.0.0.1:{client}", f"https://127.0.0.1:{peer}"
    return [
        binary,
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
        "--initial-cluster-state=new",
        f"--initial-cluster-token=kubefence-{name}",
        f"--cert-file={pki.etcd_server_cert}",
        f"--key-file={pki.etcd_server_key}",
        f"--trusted-ca-file={pki.etcd_ca_cert}",
        "--client-cert-auth=true",
        f"--peer-cert-file={pki.etcd_server_cert}",
        f"--peer-key-file={pki.etcd_server_key}",
        f"--peer-trusted-ca-file={pki.etcd_ca_cert}",
        "--peer-client-cert-auth=true",
        f"--max-request-bytes={MAX_REQUEST_BYTES}",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1h",
        "--logger=zap",
        "--log-outputs=stderr",
    ]


def _healthy(client_url: str, ctx: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(f"{client_url}/health", context=ctx, timeout=1.0) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_etcd(
    pki: ClusterPKI,
    data_dir: Path,
    *,
    log_path: Path,
    pid_file: Path | None = None,
    name: str = "kubefence",
    timeout: float = 10.0,
) -> EtcdProcess:
    """Start etcd detached and return once ``/health`` answers true over mutual TLS.

    Idempotent with a ``pid_file``: when it names an etcd that still serves ``data_dir`` (the API
    server was restarted, or SIGKILLed, while etcd kept running) and that etcd is healthy, it is
    returned as is (a second etcd on the same data directory would block on its lock). Raises
    EtcdError (with the log's tail) when etcd is missing, exits, or stays unhealthy; the process
    is stopped again in that case.
    """
    binary = etcd_binary()
    if binary is None:
        raise EtcdError("etcd is not installed (Debian: apt-get install etcd-server)")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ctx = client_ssl_context(pki)
    if pid_file is not None:
        running = _already_running(pid_file, data_dir, log_path, ctx)
        if running is not None:
            return running
    problem = ""
    for _attempt in range(_START_ATTEMPTS):  # a free port can be taken before etcd binds it
        client, peer = _free_port(), _free_port()
        cmd = _command(binary, pki, data_dir, name=name, client=client, peer=peer)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        started = EtcdProcess(
            proc.pid, f"https://127.0.0.1:{client}", f"https://127.0.0.1:{peer}",
            data_dir, log_path,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _healthy(started.client_url, ctx):
                if pid_file is not None:
                    pid_file.parent.mkdir(parents=True, exist_ok=True)
                    pid_file.write_text(f"{proc.pid}\n")
                _CHILDREN[proc.pid] = proc
                return started
            time.sleep(0.05)
        if proc.poll() is None:
            _terminate(proc.pid, timeout=5.0)
            problem = f"etcd did not become healthy within {timeout:g}s"
            break  # a hang is not a port race: do not try again
        proc.wait()
        problem = f"etcd exited with status {proc.returncode}"
        if "address already in use" not in _log_tail(log_path).lower():
            break
    raise EtcdError(f"{problem}; last lines of {log_path}:\n{_log_tail(log_path)}")


def _already_running(
    pid_file: Path, data_dir: Path, log_path: Path, ctx: ssl.SSLContext
) -> EtcdProcess | None:
    """The etcd ``pid_file`` names if it serves ``data_dir`` and is healthy; an unhealthy one
    is stopped (it is ours: its command line names our data directory)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not etcd_running(pid, data_dir):
        return None
    flags = dict(
        arg.removeprefix("--").split("=", 1)
        for arg in _argv(pid)
        if arg.startswith("--") and "=" in arg
    )
    found = EtcdProcess(
        pid, flags.get("listen-client-urls", ""), flags.get("listen-peer-urls", ""),
        data_dir, log_path,
    )  # fmt: skip
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if found.client_url and _healthy(found.client_url, ctx):
            return found
        time.sleep(0.1)
    _terminate(pid, timeout=5.0)
    return None


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def etcd_running(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is an etcd serving ``data_dir`` (and not a recycled pid)."""
    argv = _argv(pid)
    return bool(argv) and Path(argv[0]).name == "etcd" and f"--data-dir={data_dir}" in argv


def _terminate(pid: int, *, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _alive(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (reaping it if it is our child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    with contextlib.suppress(ChildProcessError):
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_etcd(data_dir: Path, *, pid: int | None = None, pid_file: Path | None = None,
              timeout: float = 10.0) -> bool:  # fmt: skip
    """Stop the etcd serving ``data_dir`` (SIGTERM, then SIGKILL after ``timeout``).

    The pid comes from ``pid`` or ``pid_file``; it is signalled only if it is still that etcd.
    Returns whether a process was stopped. The pid file is removed either way.
    """
    if pid is None and pid_file is not None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
    stopped = False
    if pid is not None:
        _alive(pid)  # reaps it if it is our child and already dead (e.g. SIGKILLed)
    if pid is not None and etcd_running(pid, data_dir):
        _terminate(pid, timeout=timeout)
        stopped = True
    if pid_file is not None:
        pid_file.unlink(missing_ok=True)
    return stopped
