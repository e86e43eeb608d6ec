"""The sandbox cluster's nodes: node namespaces joined by an underlay, and pods added one by one.

Why this module exists: ``kubefence cluster up --nodes K`` turns each node into a network
namespace with its own pod CIDR, and cross-node traffic must leave one node and enter another
(so a policy is enforced where a real cluster enforces it). The single-node sandbox (``_slots``,
``_topology``) plans all pods at once from a manifest; a cluster's node adds and removes pods as
the API server binds and deletes them. This module is the plan (pure: names and addresses) and
the few ``ip`` batches that make it, reusing ``_topology.add_pods`` and ``_rtnl`` for the pods
themselves. ``destroy`` removes a cluster's namespaces (recorded or matching the naming pattern)
and their ``/etc/netns`` entries, so ``cluster down`` works after SIGKILL of everything.

Topology (node ``i`` counts from 0)::

    kf-<c>-net (bridge kfbr0)   kf-<c>-node-<i>                   pod kf-<c>-node-<i>-<n>
    kfn<i> -------veth------- eth0 198.19.255.<i+1>/24           eth0 198.18.<i+1>.<k>/32
                              fd00:6b66::c613:ff<i+1>/120        default via 169.254.1.1
                              lo: 169.254.1.1 (pods' gateway)
                              kfp<n> ---------veth--------------- eth0 of pod <n>
                                         198.18.<j+1>.0/24 via 198.19.255.<j+1> (each other node j)

Pod CIDRs: 198.18.<i+1>.0/24 and fd00:6b66::c612:<i+1>00/120 (the IPv4 bits under
fd00:6b66::/96, the rule ``_slots`` uses). Pods take addresses from .2 upwards. Forwarding is
switched on in node namespaces only; nothing is created in the host's namespace.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubefence.dataplane.netns._slots import GATEWAY_V4, PodSlot
from kubefence.dataplane.netns._state import ServerRecord
from kubefence.dataplane.netns._system import NETNS_DIR, netns_list, process_start_time, run
from kubefence.dataplane.netns._topology import (
    add_pods,
    create_namespaces,
    delete_namespaces,
    start_forwarding,
)
from kubefence.errors import DataplaneError, InputError

__all__ = [
    "MAX_NODES",
    "NodePlan",
    "cluster_netns_pattern",
    "create_nodes",
    "destroy_nodes",
    "node_from_name",
    "node_pod_add",
    "node_pod_remove",
    "plan_nodes",
    "pod_slot",
    "reap",
    "start_node_server",
    "start_process",
    "underlay_netns",
]

MAX_NODES = 254
_V6_PREFIX = int(ipaddress.IPv6Address("fd00:6b66::"))
_BRIDGE = "kfbr0"
ETC_NETNS = Path("/etc/netns")


def _derived_v6(ipv4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(_V6_PREFIX | int(ipv4))


def underlay_netns(cluster: str) -> str:
    return f"kf-{cluster}-net"


def cluster_netns_pattern(cluster: str) -> re.Pattern[str]:
    """Every namespace cluster ``cluster`` makes: the underlay, nodes and their pods."""
    return re.compile(rf"^kf-{re.escape(cluster)}-(net|node-\d+(-\d+)?)$")


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One node's place in the cluster: its name, namespace and addresses."""

    cluster: str
    index: int

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def netns(self) -> str:
        return f"kf-{self.cluster}-{self.name}"

    @property
    def underlay_if(self) -> str:
        return f"kfn{self.index}"

    @property
    def address_v4(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(f"198.19.255.{self.index + 1}")

    @property
    def address_v6(self) -> ipaddress.IPv6Address:
        return _derived_v6(self.address_v4)

    @property
    def pod_cidr_v4(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"198.18.{self.index + 1}.0/24")

    @property
    def pod_cidr_v6(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(f"{_derived_v6(self.pod_cidr_v4.network_address)}/120")

    def pod_netns(self, slot_index: int) -> str:
        return f"{self.netns}-{slot_index}"

    def pod_address(self, offset: int) -> ipaddress.IPv4Address:
        """The ``offset``-th pod address (0 -> .2, 252 -> .254)."""
        if not 0 <= offset <= 252:
            raise InputError(f"node {self.name} has no pod address number {offset} (0-252)")
        return self.pod_cidr_v4.network_address + 2 + offset


def plan_nodes(cluster: str, count: int) -> tuple[NodePlan, ...]:
    if not 1 <= count <= MAX_NODES:
        raise InputError(f"a cluster has 1 to {MAX_NODES} nodes, not {count}")
    return tuple(NodePlan(cluster, i) for i in range(count))


def node_from_name(cluster: str, name: str) -> NodePlan:
    """The plan of node ``name`` (``node-<i>``) of ``cluster``."""
    match = re.fullmatch(r"node-(\d{1,3})", name)
    if match is None or int(match.group(1)) >= MAX_NODES:
        raise InputError(f"invalid node name {name!r}: sandbox nodes are node-0 .. node-253")
    return NodePlan(cluster, int(match.group(1)))


def pod_slot(node: NodePlan, *, key: str, slot_index: int, offset: int) -> PodSlot:
    """Where pod ``key`` lives on ``node``: namespace ``<node netns>-<slot_index>``, interface
    ``kfp<slot_index>`` in the node namespace, the ``offset``-th address of the node's CIDR."""
    ipv4 = node.pod_address(offset)
    return PodSlot(
        key=key,
        index=slot_index,
        netns=node.pod_netns(slot_index),
        node_if=f"kfp{slot_index}",
        ipv4=ipv4,
        ipv6=_derived_v6(ipv4),
    )


def _ip_batch(commands: Sequence[str], *, netns: str) -> None:
    if commands:
        run(["ip", "-n", netns, "-b", "-"], stdin="\n".join(commands) + "\n")


def create_nodes(nodes: Sequence[NodePlan]) -> list[str]:
    """Create the underlay and every node namespace with its links, addresses and routes;
    return the namespaces created (the caller records them before calling, by pattern)."""
    if not nodes:
        return []
    cluster = nodes[0].cluster
    net = underlay_netns(cluster)
    present = set(netns_list())
    wanted = [net, *(n.netns for n in nodes)]
    create_namespaces([n for n in wanted if n not in present])
    _ip_batch(
        ["link set lo up", f"link add {_BRIDGE} type bridge", f"link set {_BRIDGE} up"], netns=net
    )
    underlay = []
    for node in nodes:
        underlay += [
            f"link add {node.underlay_if} type veth peer name eth0 netns {node.netns}",
            f"link set {node.underlay_if} master {_BRIDGE}",
            f"link set {node.underlay_if} up",
        ]
    _ip_batch(underlay, netns=net)
    for node in nodes:
        commands = [
            "link set lo up",
            f"addr add {GATEWAY_V4}/32 dev lo",
            f"addr add {node.address_v4}/24 dev eth0",
            f"addr add {node.address_v6}/120 dev eth0 nodad",
            "link set eth0 up",
        ]
        for other in nodes:
            if other.index != node.index:
                commands += [
                    f"route add {other.pod_cidr_v4} via {other.address_v4} dev eth0",
                    f"route add {other.pod_cidr_v6} via {other.address_v6} dev eth0",
                ]
        _ip_batch(commands, netns=node.netns)
        start_forwarding(node.netns)
    return wanted


def node_pod_add(node: NodePlan, slots: Sequence[PodSlot]) -> None:
    """Namespaces, veth pairs, addresses and /32 + /128 routes of ``slots`` on ``node``."""
    add_pods(slots, node=node.netns)


def node_pod_remove(node: NodePlan, slots: Sequence[PodSlot]) -> None:
    """Remove pods' links and namespaces (and their /etc/netns entries); missing ones are
    skipped, so a half-made or already removed pod is fine."""
    present = [s for s in slots if (NETNS_DIR / s.netns).exists()]
    if present:
        # The node side first, synchronously (a namespace is torn down asynchronously, and a
        # new pod may take the same kfp<n> at once); -force: a missing link is no error.
        run(["ip", "-force", "-n", node.netns, "-b", "-"],
            stdin="".join(f"link del {s.node_if}\n" for s in present), check=False)  # fmt: skip
        delete_namespaces([s.netns for s in present])
    for slot in slots:
        shutil.rmtree(ETC_NETNS / slot.netns, ignore_errors=True)


def destroy_nodes(cluster: str, *, recorded: Iterable[str] = ()) -> list[str]:
    """Delete every namespace of ``cluster`` (recorded, or matching its naming pattern) and
    their ``/etc/netns`` directories; links and nft tables go with their namespaces."""
    pattern = cluster_netns_pattern(cluster)
    wanted = set(recorded)
    doomed = sorted(n for n in netns_list() if n in wanted or pattern.match(n))
    delete_namespaces(doomed)
    if ETC_NETNS.is_dir():
        for entry in ETC_NETNS.iterdir():
            if entry.name in wanted or pattern.match(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
    return doomed


def start_node_server(directory: Path) -> ServerRecord:
    """Start node server daemon (``_podserver``) listening in ``directory``; it reopens the
    pods saved there by an earlier one."""
    directory.mkdir(parents=True, exist_ok=True)
    done = run([sys.executable, "-m", "kubefence.dataplane.netns._podserver", str(directory)],
               check=False)  # fmt: skip
    words = done.stdout.split()
    if done.returncode != 0 or len(words) < 2 or words[0] != "ready":
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise DataplaneError(f"the node server did not start: {message}")
    pid = int(words[1])
    return ServerRecord(pid=pid, start_time=process_start_time(pid))


def start_process(
    argv: Sequence[str],
    *,
    netns: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerRecord:
    """Start ``argv`` inside network namespace ``netns`` through ``ip netns exec`` (so the
    namespace's ``/etc/netns/<netns>/`` files, e.g. resolv.conf, are bound over ``/etc``), in a
    session of its own (it outlives the caller, as a container outlives a crashed kubelet),
    its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", netns, *argv], stdin=subprocess.DEVNULL, stdout=out,
                stderr=out, cwd=cwd, env=dict(env) if env is not None else None,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
    except OSError as exc:
        raise DataplaneError(f"cannot start {argv[0]!r} in {netns}: {exc.strerror}") from exc
    _STARTED[process.pid] = process
    return ServerRecord(pid=process.pid, start_time=process_start_time(process.pid))


# Popen objects of processes we started, so their exit is reaped (no zombies) by ``reap``.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def reap() -> dict[int, int]:
    """Exit codes of started processes that ended since the last call (pid -> code)."""
    ended = {}
    for pid, process in list(_STARTED.items()):
        code = process.poll()
        if code is not None:
            ended[pid] = code
            del _STARTED[pid]
    return ended
