"""Reading a sandbox's flow log: the NFLOG socket in the node namespace, and the drop counter.

Why this module exists: with a ``FlowLog`` in its ruleset, the sandbox's table sends the first
packet of each new connection to an NFLOG group, its verdict in the log prefix, and counts the
connections over the rate limit (``kubefence.dataplane.nft.FlowLog``). This module is the reader
``kubefence flows`` uses: a netlink socket created inside the node namespace (``entered``) and
bound to the group, so no process is started and no Python runs in the forward path; it reads
whatever the kernel queued, never more than ``max_events`` per call.

Bounded on every side: the kernel sends at most ``rate``/s + ``burst`` messages (the nft limit);
the socket's receive buffer is fixed, so a reader that falls behind loses messages (counted in
``FlowReader.overruns``, reported by the command) instead of growing; and the memory of recently
seen connections used to print one line per connection (a dropped SYN is retransmitted, each
copy a new packet) holds at most ``remember`` entries.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from types import TracebackType

from kubefence.api import IPAddress
from kubefence.dataplane.netns._nflog import LoggedPacket, ack_error, bind_request, parse_messages
from kubefence.dataplane.netns._system import entered, run
from kubefence.errors import DataplaneError

__all__ = ["FlowEvent", "FlowReader", "flows_over_limit"]

_NETLINK_NETFILTER = 12
_RECEIVE_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """One new connection as the table judged it."""

    time: float  # seconds since the epoch, when the reader received it
    allowed: bool
    chain: str | None  # the class chain that dropped it (``eg_c3``), None when allowed
    source: IPAddress
    destination: IPAddress
    protocol: int  # IP protocol number
    source_port: int | None
    destination_port: int | None

    @classmethod
    def of(cls, packet: LoggedPacket, *, now: float) -> FlowEvent | None:
        """The event a logged packet stands for; None when the prefix is not kubefence's."""
        from kubefence.dataplane.nft import FLOW_ALLOW_PREFIX, FLOW_DENY_PREFIX

        prefix = packet.prefix.strip()
        if prefix == FLOW_ALLOW_PREFIX:
            allowed, chain = True, None
        elif prefix.startswith(FLOW_DENY_PREFIX):
            allowed, chain = False, prefix[len(FLOW_DENY_PREFIX) :].strip() or None
        else:
            return None
        return cls(
            time=now,
            allowed=allowed,
            chain=chain,
            source=packet.source,
            destination=packet.destination,
            protocol=packet.protocol,
            source_port=packet.source_port,
            destination_port=packet.destination_port,
        )

    @property
    def key(self) -> tuple[object, ...]:
        """What makes two packets the same connection attempt (a retransmission)."""
        return (
            self.allowed,
            self.source,
            self.destination,
            self.protocol,
            self.source_port,
            self.destination_port,
        )


class FlowReader:
    """A bound NFLOG socket in namespace ``node`` (use as a context manager).

    ``read`` returns the new connections logged since the last call, each once: a packet with
    the same verdict and 5-tuple as one seen in the last ``repeat_window`` seconds (a
    retransmitted SYN) is skipped. Only one reader per sandbox can bind its group; a second
    one raises ``DataplaneError``.
    """

    __slots__ = ("_recent", "_socket", "group", "node", "overruns", "remember", "repeat_window")

    def __init__(
        self,
        node: str,
        *,
        group: int,
        repeat_window: float = 10.0,
        remember: int = 4096,
    ) -> None:
        self.node = node
        self.group = group
        self.repeat_window = repeat_window
        self.remember = remember
        self.overruns = 0  # times the kernel had to drop messages because we fell behind
        self._recent: OrderedDict[tuple[object, ...], float] = OrderedDict()
        self._socket: socket.socket | None = None

    def open(self) -> FlowReader:
        with entered(self.node):
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            sock.bind((0, 0))
            sock.settimeout(2.0)
            for request in bind_request(self.group):
                sock.send(request)
                error = ack_error(sock.recv(65536))
                if error == errno.EBUSY:
                    raise DataplaneError(
                        f"NFLOG group {self.group} in {self.node} is already being read "
                        "(another 'kubefence flows' on this sandbox?)"
                    )
                if error != 0:
                    reason = os.strerror(error) if error > 0 else "no acknowledgement"
                    raise DataplaneError(f"cannot bind NFLOG group {self.group}: {reason}")
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        return self

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> FlowReader:
        return self.open() if self._socket is None else self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def read(self, timeout: float, *, max_events: int = 10_000) -> list[FlowEvent]:
        """The new connections logged within ``timeout`` seconds (returns as soon as there are
        some), at most ``max_events``."""
        if self._socket is None:
            raise DataplaneError("the flow reader is not open")
        events: list[FlowEvent] = []
        ready, _, _ = select.select([self._socket], [], [], max(timeout, 0.0))
        if not ready:
            return events
        while len(events) < max_events:
            try:
                data = self._socket.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            now = time.time()
            for packet in parse_messages(data):
                event = FlowEvent.of(packet, now=now)
                if event is not None and self._first_time(event):
                    events.append(event)
        return events

    def _first_time(self, event: FlowEvent) -> bool:
        horizon = event.time - self.repeat_window
        while self._recent and next(iter(self._recent.values())) < horizon:
            self._recent.popitem(last=False)
        seen = event.key in self._recent
        self._recent[event.key] = event.time
        self._recent.move_to_end(event.key)
        while len(self._recent) > self.remember:
            self._recent.popitem(last=False)
        return not seen


def flows_over_limit(node: str) -> int | None:
    """New connections not logged because they came over the rate limit (the ``flow_over``
    counter), None when the installed table has no flow log."""
    from kubefence.dataplane.nft import FLOW_OVER, TABLE

    family, table = TABLE.split()
    done = run(["nft", "-j", "list", "counter", family, table, FLOW_OVER], netns=node, check=False)
    if done.returncode != 0:
        return None
    try:
        for item in json.loads(done.stdout)["nftables"]:
            if "counter" in item:
                return int(item["counter"]["packets"])
    except (ValueError, KeyError, TypeError):
        return None
    return None
