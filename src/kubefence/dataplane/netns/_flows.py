"""Reading a sandbox's flow log: the NFLOG socket in the node namespace, and the drop counter.

Why this module exists: with a ``FlowLog`` in its ruleset, the sandbox's table sends the first
packet of each new connection to an NFLOG group, its verdict in the log prefix, and counts the
connections over the rate limit (``kubefence.dataplane.nft.FlowLog``). This module is the reader
``kubefence flows`` uses: a netlink socket created inside the node namespace (``entered``) and
bound to the group, so no process is started and no Python runs in the forward path; it reads
whatever the kernel queued, never more than ``max_events`` per call.

A sandbox cluster has one table per node, each written by that node's agent (``--flow-log``):
``ClusterFlowReader`` reads every node's group at once. A connection between pods on two nodes
crosses both tables (the source's node judges its egress, the destination's node its
ingress), so both may log it; the reader keeps one line per connection: a drop wherever it
happened (the packet goes no further), an accept only from the last table on the path (the
destination pod's node, from the nodes' pod records).

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
from pathlib import Path
from types import TracebackType

from kubefence.api import IPAddress
from kubefence.dataplane.netns._nflog import LoggedPacket, ack_error, bind_request, parse_messages
from kubefence.dataplane.netns._node_state import load_record
from kubefence.dataplane.netns._nodes import node_from_name, pod_slot
from kubefence.dataplane.netns._system import entered, run
from kubefence.errors import DataplaneError

__all__ = [
    "ClusterFlowNodes",
    "ClusterFlowReader",
    "FlowEvent",
    "FlowReader",
    "cluster_flow_nodes",
    "flows_over_limit",
]

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

    def fileno(self) -> int:
        if self._socket is None:
            raise DataplaneError("the flow reader is not open")
        return self._socket.fileno()

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


@dataclass(frozen=True, slots=True)
class ClusterFlowNodes:
    """Where a sandbox cluster's flow logs are: each node's namespace, and which node each
    pod address is on (from the nodes' records)."""

    netns: dict[str, str]  # node name -> its network namespace
    pods: dict[str, tuple[str, str]]  # address text -> (pod key, node name)


def cluster_flow_nodes(cluster: str, directory: Path) -> ClusterFlowNodes:
    """The nodes recorded under ``directory/nodes`` of sandbox cluster ``cluster``."""
    netns: dict[str, str] = {}
    pods: dict[str, tuple[str, str]] = {}
    nodes = directory / "nodes"
    for node_dir in sorted(p for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else ():
        plan = node_from_name(cluster, node_dir.name)
        netns[plan.name] = plan.netns
        for record in load_record(node_dir).pods.values():
            if record.host_network:
                continue
            slot = pod_slot(
                plan, key=record.key, slot_index=record.slot_index, offset=record.offset
            )
            for address in (slot.ipv4, slot.ipv6):
                pods[str(address)] = (record.key, plan.name)
    return ClusterFlowNodes(netns=netns, pods=pods)


class ClusterFlowReader:
    """One ``FlowReader`` per node of a sandbox cluster (use as a context manager); ``read``
    returns each connection once (see the module docstring), with the node that judged it."""

    def __init__(self, nodes: ClusterFlowNodes, *, group: int) -> None:
        self.nodes = nodes
        self.readers = {
            name: FlowReader(netns, group=group) for name, netns in sorted(nodes.netns.items())
        }

    def __enter__(self) -> ClusterFlowReader:
        try:
            for reader in self.readers.values():
                reader.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()

    @property
    def overruns(self) -> int:
        return sum(r.overruns for r in self.readers.values())

    def over_limit(self) -> int | None:
        """The nodes' over-limit counters summed (None when no node's table has a flow log)."""
        counts = [flows_over_limit(r.node) for r in self.readers.values()]
        known = [c for c in counts if c is not None]
        return sum(known) if known else None

    def keeps(self, node: str, event: FlowEvent) -> bool:
        """A drop is the connection's last verdict wherever it happened; an accept is, only on
        the destination pod's node (or on any node when the destination is no recorded pod,
        whose path ends in this node's table)."""
        if not event.allowed:
            return True
        found = self.nodes.pods.get(str(event.destination))
        return found is None or found[1] == node

    def read(self, timeout: float) -> list[tuple[str, FlowEvent]]:
        """The connections logged on any node within ``timeout`` seconds (as soon as some are)."""
        if not self.readers:
            time.sleep(max(timeout, 0.0))
            return []
        ready, _, _ = select.select(list(self.readers.values()), [], [], max(timeout, 0.0))
        found: list[tuple[str, FlowEvent]] = []
        for name, reader in self.readers.items():
            if reader in ready:
                found += [(name, e) for e in reader.read(0.0) if self.keeps(name, e)]
        found.sort(key=lambda item: item[1].time)
        return found
