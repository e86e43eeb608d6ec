"""Real-packet probes: from each source pod's namespace to every destination, concurrently.

Why this module exists: "is it enforced?" is answered by packets, not by reading the ruleset.
The prober creates each socket inside the source pod's namespace (``setns``, then back), starts
every connection at once (non-blocking sockets) and waits on them with ``selectors``, so a whole
matrix costs about one timeout rather than one per pair.

Outcomes (what counts as "reached the destination pod"):

| protocol | reachable                                   | denied                 |
|----------|---------------------------------------------|------------------------|
| TCP      | connected, or refused (RST from the pod)    | no answer in time      |
| UDP      | echo received, or refused (ICMP port        | no answer in time      |
|          | unreachable from the pod)                   |                        |
| SCTP     | a raw INIT packet (IP protocol 132) seen    | not seen in time       |
|          | by a raw socket in the destination's netns  |                        |

Other errors (host or network unreachable) mean the packet was rejected on the way: denied,
with the error kept in ``detail``.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from kubefence.api import IPAddress, Protocol
from kubefence.dataplane.netns._sctp import probe_sctp
from kubefence.dataplane.netns._system import entered, raise_fd_limit

__all__ = ["Outcome", "ProbeResult", "ProbeTarget", "run_probes"]

_PAYLOAD = b"kubefence-probe\n"


class Outcome(Enum):
    CONNECTED = "connected"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    UNPROBED = "unprobed"

    @property
    def reachable(self) -> bool | None:
        if self is Outcome.UNPROBED:
            return None
        return self in (Outcome.CONNECTED, Outcome.REFUSED)


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One connection attempt from the pod ``src`` (in ``netns``) to ``address``:``port``."""

    src: str
    dst: str
    netns: str
    address: IPAddress
    port: int
    protocol: Protocol
    dst_netns: str = ""  # the destination pod's namespace: where a raw SCTP INIT is watched for


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: ProbeTarget
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0

    @property
    def reachable(self) -> bool | None:
        """True reached the pod, False dropped or rejected, None not probed."""
        return self.outcome.reachable


@dataclass(slots=True)
class _Pending:
    target: ProbeTarget
    sock: socket.socket
    started: float
    resent: bool = False


def _family(address: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET if isinstance(address, ipaddress.IPv4Address) else socket.AF_INET6


def _errno_outcome(code: int) -> tuple[Outcome, str]:
    if code == errno.ECONNREFUSED:
        return Outcome.REFUSED, "refused by the destination"
    return Outcome.UNREACHABLE, errno.errorcode.get(code, str(code))


def _start(target: ProbeTarget, results: dict[int, ProbeResult], slot: int) -> socket.socket | None:
    """Open and start one probe; a synchronous verdict is stored in ``results``."""
    kind = socket.SOCK_STREAM if target.protocol is Protocol.TCP else socket.SOCK_DGRAM
    sock = socket.socket(_family(target.address), kind)
    sock.setblocking(False)
    code = sock.connect_ex((str(target.address), target.port))
    if target.protocol is Protocol.TCP:
        if code in (0, errno.EINPROGRESS):
            if code == 0:
                results[slot] = ProbeResult(target, Outcome.CONNECTED, "connected")
                sock.close()
                return None
            return sock
    elif code == 0:
        try:
            sock.send(_PAYLOAD)
            return sock
        except OSError as exc:
            code = exc.errno or errno.EIO
    outcome, detail = _errno_outcome(code)
    results[slot] = ProbeResult(target, outcome, detail)
    sock.close()
    return None


def _run_batch(
    targets: Sequence[tuple[int, ProbeTarget]],
    results: dict[int, ProbeResult],
    *,
    timeout: float,
) -> None:
    sel = selectors.DefaultSelector()
    by_netns: dict[str, list[tuple[int, ProbeTarget]]] = {}
    for slot, target in targets:
        by_netns.setdefault(target.netns, []).append((slot, target))
    pending: dict[int, _Pending] = {}
    try:
        for netns, group in by_netns.items():
            with entered(netns):
                for slot, target in group:
                    sock = _start(target, results, slot)
                    if sock is not None:
                        pending[slot] = _Pending(target, sock, time.monotonic())
                        events = (
                            selectors.EVENT_WRITE
                            if target.protocol is Protocol.TCP
                            else selectors.EVENT_READ
                        )
                        sel.register(sock, events, slot)
        deadline = time.monotonic() + timeout
        resend_at = time.monotonic() + timeout / 2
        while pending:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= resend_at:  # one retry for UDP, in case the first datagram was lost
                resend_at = deadline + 1
                for item in pending.values():
                    if item.target.protocol is Protocol.UDP and not item.resent:
                        item.resent = True
                        with contextlib.suppress(OSError):
                            item.sock.send(_PAYLOAD)
            wait = min(deadline, resend_at) - now
            for key, _ in sel.select(timeout=max(wait, 0.0)):
                slot = key.data
                item = pending.pop(slot)
                sel.unregister(item.sock)
                elapsed = time.monotonic() - item.started
                if item.target.protocol is Protocol.TCP:
                    code = item.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code == 0:
                        results[slot] = ProbeResult(
                            item.target, Outcome.CONNECTED, "connected", elapsed
                        )
                    else:
                        outcome, detail = _errno_outcome(code)
                        results[slot] = ProbeResult(item.target, outcome, detail, elapsed)
                else:
                    try:
                        item.sock.recv(65535)
                        results[slot] = ProbeResult(
                            item.target, Outcome.CONNECTED, "echo received", elapsed
                        )
                    except OSError as exc:
                        outcome, detail = _errno_outcome(exc.errno or errno.EIO)
                        results[slot] = ProbeResult(item.target, outcome, detail, elapsed)
                item.sock.close()
        for slot, item in pending.items():
            results[slot] = ProbeResult(
                item.target, Outcome.TIMEOUT, f"no answer in {timeout:g} s", timeout
            )
    finally:
        for item in pending.values():
            item.sock.close()
        sel.close()


def run_probes(
    targets: Sequence[ProbeTarget],
    *,
    timeout: float = 1.0,
    sctp: bool = True,
) -> list[ProbeResult]:
    """Probe every target concurrently; results come back in the order of ``targets``.

    SCTP targets are probed with raw INIT packets watched for in ``dst_netns`` (``_sctp``), in
    parallel with the socket probes; with ``sctp=False`` or no ``dst_netns`` they are reported
    ``UNPROBED``. When there are more targets than open files allowed, socket probes run in
    consecutive batches (each costs at most ``timeout``).
    """
    results: dict[int, ProbeResult] = {}
    runnable: list[tuple[int, ProbeTarget]] = []
    raw: list[tuple[int, ProbeTarget]] = []
    for slot, target in enumerate(targets):
        if target.protocol is not Protocol.SCTP:
            runnable.append((slot, target))
        elif sctp and target.dst_netns:
            raw.append((slot, target))
        else:
            results[slot] = ProbeResult(
                target, Outcome.UNPROBED, "SCTP: this kernel has no SCTP sockets"
            )
    worker = None
    if raw:
        worker = threading.Thread(target=_run_sctp, args=(raw, results, timeout))
        worker.start()
    try:
        budget = max(64, min(raise_fd_limit() - 256, 16384))
        for start in range(0, len(runnable), budget):
            _run_batch(runnable[start : start + budget], results, timeout=timeout)
    finally:
        if worker is not None:
            worker.join()
    missing = [i for i in range(len(targets)) if i not in results]
    for slot in missing:  # only if the SCTP thread failed: never report it as passed
        results[slot] = ProbeResult(targets[slot], Outcome.UNPROBED, "SCTP probe failed")
    return [results[i] for i in range(len(targets))]


def _run_sctp(
    raw: Sequence[tuple[int, ProbeTarget]], results: dict[int, ProbeResult], timeout: float
) -> None:
    try:
        arrived = probe_sctp(
            [(t.netns, t.dst_netns, t.address, t.port) for _, t in raw], timeout=timeout
        )
    except OSError as exc:
        for slot, target in raw:
            results[slot] = ProbeResult(target, Outcome.UNPROBED, f"raw SCTP probe: {exc}")
        return
    for (slot, target), seen in zip(raw, arrived, strict=True):
        if seen:
            results[slot] = ProbeResult(target, Outcome.CONNECTED, "SCTP INIT arrived (raw)")
        else:
            results[slot] = ProbeResult(
                target, Outcome.TIMEOUT, f"SCTP INIT not seen in {timeout:g} s", timeout
            )
