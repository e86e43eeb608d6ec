"""The sandbox's namespaces, links, routes and server process: made, changed and removed.

Why this module exists: ``Sandbox`` decides *what* the topology is (``_slots``) and *when* it
changes; this module is *how*, in as few processes as possible (one ``ip -b`` batch for the
node's links, in-process rtnetlink inside each pod, see ``_rtnl``). ``down`` lives here as well:
it removes the same resources, working from the recorded state alone (or, when that is
unreadable, from the naming pattern), so it recovers from a crash at any point.

Topology (routed, no bridge; see ``_slots`` for addresses)::

    kf-<name>-<i>                 kf-<name>-node                       kf-<name>-<j>
    eth0 198.18.0.2/32 ---veth--- kfp<i>   [inet kubefence forward]   kfp<j> ---veth--- eth0
    default via 169.254.1.1       169.254.1.1/32 on lo, fe80::1 on each kfp, /32 + /128 routes
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubefence.api import Inventory, Protocol
from kubefence.dataplane.netns._rtnl import configure_pod
from kubefence.dataplane.netns._server import ServedPod, is_nginx_image, server_spec
from kubefence.dataplane.netns._slots import (
    GATEWAY_V4,
    GATEWAY_V6,
    NODE_V4,
    NODE_V6,
    PodSlot,
    check_name,
    owned_netns_pattern,
)
from kubefence.dataplane.netns._state import (
    RUN_DIR,
    ServerRecord,
    load_state,
    release_lock_file,
    sandbox_lock,
    state_dir,
)
from kubefence.dataplane.netns._system import (
    check_environment,
    entered,
    netns_list,
    process_alive,
    process_start_time,
    run,
    terminate,
    write_sysctl,
)
from kubefence.errors import DataplaneError, EnvironmentProblem

__all__ = [
    "DownReport",
    "add_pods",
    "create_namespaces",
    "delete_namespaces",
    "down",
    "remove_links",
    "served",
    "setup_node",
    "start_forwarding",
    "start_server",
]

_POD_SYSCTLS = {
    # ICMP port-unreachable is how a UDP probe learns that it reached the pod: never rate-limit.
    "net.ipv4.icmp_ratelimit": "0",
    "net.ipv6.icmp.ratelimit": "0",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.all.accept_dad": "0",
}


@dataclass(frozen=True, slots=True)
class DownReport:
    namespaces: tuple[str, ...]
    server_stopped: bool
    state_removed: bool


def _ip_batch(commands: Sequence[str], *, netns: str | None = None) -> None:
    if not commands:
        return
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-b", "-"]
    run(argv, stdin="\n".join(commands) + "\n")


def create_namespaces(names: Sequence[str]) -> None:
    _ip_batch([f"netns add {n}" for n in names])


def delete_namespaces(names: Sequence[str]) -> None:
    if names:
        run(["ip", "-force", "-b", "-"], stdin="".join(f"netns del {n}\n" for n in names))


def setup_node(node: str) -> None:
    """The node namespace's loopback: up, with the pods' gateway and the node's addresses."""
    _ip_batch(
        [
            "link set lo up",
            f"addr add {GATEWAY_V4}/32 dev lo",
            f"addr add {NODE_V4}/32 dev lo",
            f"addr add {NODE_V6}/128 dev lo",
        ],
        netns=node,
    )


def start_forwarding(node: str) -> None:
    """Let the node forward between pods (only once the ruleset is in place)."""
    write_sysctl(node, {"net.ipv4.conf.all.rp_filter": "0"}, required=False)
    write_sysctl(node, {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"})


def _node_links(slots: Sequence[PodSlot]) -> list[str]:
    commands = []
    for slot in slots:
        commands += [
            f"link add {slot.node_if} type veth peer name eth0 netns {slot.netns}",
            f"addr add {GATEWAY_V6}/64 dev {slot.node_if} nodad",
            f"link set {slot.node_if} up",
            f"route add {slot.ipv4}/32 dev {slot.node_if}",
            f"route add {slot.ipv6}/128 dev {slot.node_if}",
        ]
    return commands


def add_pods(slots: Sequence[PodSlot], *, node: str) -> None:
    """Namespaces (those missing), veth pairs, addresses and routes of ``slots``."""
    if not slots:
        return
    missing = [s.netns for s in slots if not Path("/run/netns", s.netns).exists()]
    create_namespaces(missing)
    for slot in slots:
        write_sysctl(slot.netns, _POD_SYSCTLS, required=False)
    _ip_batch(_node_links(slots), netns=node)
    for slot in slots:  # in-process rtnetlink: no process per pod
        try:
            with entered(slot.netns):
                configure_pod(
                    ipv4=slot.ipv4, ipv6=slot.ipv6, gateway_v4=GATEWAY_V4, gateway_v6=GATEWAY_V6
                )
        except (OSError, DataplaneError) as exc:
            raise DataplaneError(f"configuring {slot.key} in {slot.netns} failed: {exc}") from exc


def remove_links(slots: Sequence[PodSlot], *, node: str) -> None:
    """Delete the node side of each pod's veth: the pair and its routes go with it."""
    _ip_batch([f"link del {s.node_if}" for s in slots], netns=node)


def served(inventory: Inventory, slots: Mapping[str, PodSlot]) -> list[ServedPod]:
    """What the sandbox server must listen on: each running pod's declared TCP/UDP ports."""
    found = []
    for pod in inventory.pods:
        slot = slots.get(pod.key)
        if slot is None:
            continue
        found.append(
            ServedPod(
                key=pod.key,
                netns=slot.netns,
                tcp=tuple(sorted({p.port for p in pod.ports if p.protocol is Protocol.TCP})),
                udp=tuple(sorted({p.port for p in pod.ports if p.protocol is Protocol.UDP})),
                nginx=any(is_nginx_image(image) for image in pod.images),
            )
        )
    return found


def start_server(directory: Path, pods: Sequence[ServedPod]) -> ServerRecord:
    """Start the daemonised server for ``pods`` (spec and log in ``directory``)."""
    spec = directory / "server.json"
    spec.write_text(json.dumps(server_spec(list(pods))))
    done = run(
        [
            sys.executable,
            "-m",
            "kubefence.dataplane.netns._server",
            str(spec),
            str(directory / "server.log"),
        ],
        check=False,
    )
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        if "Too many open files" in message:
            message += " (raise the open-file limit: ulimit -n, one socket per pod port)"
        raise EnvironmentProblem(f"the sandbox server did not start: {message}")
    words = done.stdout.split()
    if len(words) < 2 or words[0] != "ready":
        raise DataplaneError(f"the sandbox server did not start: {done.stdout.strip()}")
    pid = int(words[1])
    return ServerRecord(pid=pid, start_time=process_start_time(pid))


def down(name: str, *, run_dir: Path = RUN_DIR) -> DownReport:
    """Remove everything sandbox ``name`` made: its server, namespaces (and with them links and
    the nft table) and state directory. Works from a partial or missing state file."""
    check_name(name)
    check_environment(tools=("ip",))
    with sandbox_lock(name, run_dir=run_dir) as outermost:
        report = _down_locked(name, run_dir=run_dir)
        if outermost:
            release_lock_file(name, run_dir=run_dir)
    return report


def _down_locked(name: str, *, run_dir: Path) -> DownReport:
    try:
        state = load_state(name, run_dir=run_dir)
    except DataplaneError:
        state = None  # unreadable: fall back to the naming pattern
    stopped = False
    if state is not None and state.server is not None:
        stopped = process_alive(state.server.pid, state.server.start_time)
        terminate(state.server.pid, state.server.start_time)
    pattern = owned_netns_pattern(name)
    recorded = set(state.namespaces) if state is not None else set()
    present = set(netns_list())
    doomed = sorted(n for n in present if n in recorded or pattern.match(n))
    delete_namespaces(doomed)
    directory = state_dir(name, run_dir=run_dir)
    removed = directory.exists()
    if removed:
        shutil.rmtree(directory, ignore_errors=True)
    return DownReport(namespaces=tuple(doomed), server_stopped=stopped, state_removed=removed)
