"""The machine-facing primitives of the sandbox: commands, namespaces, processes.

Why this module exists: it is the one place in kubefence that runs ``ip``, ``nft`` and
``conntrack``, enters network namespaces (``setns(2)`` through ``ctypes``, since Python 3.11 has
no ``os.setns``) and inspects processes. Everything above it (topology, server, prober) is
written against these few functions, so failures surface as ``DataplaneError`` or
``EnvironmentProblem`` with a message, never as a bare ``CalledProcessError``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from kubefence.errors import DataplaneError, EnvironmentProblem

__all__ = [
    "NETNS_DIR",
    "check_environment",
    "entered",
    "netns_exists",
    "netns_list",
    "process_alive",
    "process_start_time",
    "raise_fd_limit",
    "read_sysctl",
    "run",
    "terminate",
    "write_sysctl",
]

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000

_PACKAGES = {"ip": "iproute2", "nft": "nftables", "conntrack": "conntrack"}


def check_environment(*, tools: Sequence[str] = ("ip", "nft")) -> None:
    """Raise ``EnvironmentProblem`` naming every missing prerequisite and how to get it."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root privileges (run with sudo)")
    packages = []
    for tool in tools:
        if shutil.which(tool) is None:
            missing.append(f"the '{tool}' command")
            packages.append(_PACKAGES.get(tool, tool))
    if not missing:
        return
    hint = f"; install with: apt-get install {' '.join(packages)}" if packages else ""
    raise EnvironmentProblem(f"the sandbox needs {', '.join(missing)}{hint}")


def run(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 120.0,
    netns: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; a failure becomes a ``DataplaneError``.

    With ``netns`` the command runs in that network namespace: the child is spawned while the
    calling thread is inside it (cheaper than ``ip netns exec``, which also remounts /sys).
    """
    if netns is not None:
        with entered(netns):
            return run(argv, stdin=stdin, check=check, timeout=timeout)
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EnvironmentProblem(f"'{argv[0]}' is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise DataplaneError(f"'{' '.join(argv[:4])} ...' did not finish in {timeout} s") from exc
    if check and done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise DataplaneError(f"'{' '.join(argv[:6])}' failed: {message}")
    return done


def netns_list() -> list[str]:
    """The names of the network namespaces ``ip netns`` knows."""
    done = run(["ip", "netns", "list"])
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


_LIBC: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _LIBC
    if _LIBC is None:
        _LIBC = _libc()
    if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise DataplaneError(f"setns failed: {os.strerror(errno)}")


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """Run the body with the calling thread inside network namespace ``netns``.

    Sockets created in the body stay in that namespace after the thread switches back, which is
    how one process serves or probes every pod.
    """
    try:
        target = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DataplaneError(f"network namespace {netns} does not exist ({exc.strerror})") from exc
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def write_sysctl(netns: str, values: dict[str, str], *, required: bool = True) -> None:
    """Write sysctls (``net.ipv4.ip_forward``) of one namespace, from inside it. With
    ``required=False`` a sysctl this kernel does not have is skipped (tuning, not function)."""
    with entered(netns):
        for key, value in values.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            try:
                path.write_text(value)
            except FileNotFoundError:
                if required:
                    raise DataplaneError(f"this kernel has no sysctl {key}") from None
            except OSError as exc:
                raise DataplaneError(f"cannot set {key}={value} in {netns}: {exc}") from exc


def read_sysctl(netns: str, key: str) -> str | None:
    """A sysctl of one namespace (read from inside it), or None when it does not exist."""
    with entered(netns):
        try:
            return (Path("/proc/sys") / key.replace(".", "/")).read_text().strip()
        except OSError:
            return None


def raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one (probes hold one socket per pair)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks (guards against pid reuse), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its parent has not reaped it yet
        return None
    return int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """Is ``pid`` running and (when ``start_time`` is given) the process we started?"""
    current = process_start_time(pid)
    if current is None:
        return False
    return start_time is None or current == start_time


def terminate(pid: int, start_time: int | None, *, grace: float = 2.0) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    import signal
    import time

    if not process_alive(pid, start_time):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_alive(pid, start_time):
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and process_alive(pid, start_time):
        time.sleep(0.01)
