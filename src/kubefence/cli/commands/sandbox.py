"""``kubefence sandbox up|apply|probe|verify|exec|status|down``: policies on real packets.

Why this module exists: it is the user's handle on the network-namespace sandbox
(``kubefence.dataplane.netns``): it reads manifests, keeps a copy of them with the sandbox's state
(so ``probe`` and ``verify`` in later processes know what is enforced), and renders results as
tables or the matrix JSON of docs/matrix-json.md. It starts no process: ``exec`` goes through
``dataplane.netns.exec_in_pod``, and ``verify``'s comparison of real packets with the engine's
prediction is ``kubefence.verify``.
"""

from __future__ import annotations

import argparse
import sys

from kubefence.cli._inputs import (
    add_input_arguments,
    add_settings_arguments,
    check_kinds,
    settings_from_args,
)
from kubefence.cli._render_table import counted

# The data plane, the API and the semantics are imported by the functions that use them, so that
# ``kubefence --help``, which imports this module for its NAME and HELP, does not pay for them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from kubefence.api import Inventory
    from kubefence.dataplane import netns

NAME = "sandbox"
HELP = "run the manifests on a network-namespace cluster and enforce the policies with nftables"


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds <= 60, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def _named(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--name", default="default", help="sandbox name (default: %(default)s)")
        return sub

    up = _named("up", "create the sandbox: namespaces, nftables, servers")
    add_input_arguments(up)
    add_settings_arguments(up)
    up.add_argument(
        "--no-flow-log",
        dest="flow_log",
        action="store_false",
        help="no flow log rules in the ruleset (then 'kubefence flows' has nothing to read)",
    )
    apply = _named("apply", "replace what runs (policies, labels, pods) in one nft transaction")
    add_input_arguments(apply)
    probe = _named("probe", "real-packet reachability between every pair of pods")
    probe.add_argument("--port", default="80", help="port number or name (default: 80)")
    probe.add_argument("--protocol", default="TCP", type=str.upper, choices=["TCP", "UDP", "SCTP"])
    probe.add_argument("--timeout", type=_timeout, default=1.0, help="seconds (default: 1)")
    probe.add_argument("--ipv6", action="store_true", help="probe the pods' IPv6 addresses")
    probe.add_argument("-o", "--output", choices=["table", "json"], default="table")
    verify = _named("verify", "probe every declared port and compare with the prediction")
    verify.add_argument("--timeout", type=_timeout, default=1.0, help="seconds (default: 1)")
    verify.add_argument("--ipv6", action="store_true", help="probe the pods' IPv6 addresses")
    run = _named("exec", "run a command inside a pod's network namespace")
    run.add_argument("pod", metavar="NS/POD")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    status = _named("status", "show the sandbox's pods, addresses and health")
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    status.add_argument("--all", action="store_true", help="one line per sandbox on this machine")
    _named("down", "remove every namespace, link, process and file the sandbox made")


def run(args: argparse.Namespace) -> int:
    action = {
        "up": _up,
        "apply": _apply,
        "probe": _probe,
        "verify": _verify,
        "exec": _exec,
        "status": _status,
        "down": _down,
    }[args.action]
    from kubefence.dataplane import netns

    netns.check_name(args.name)
    return action(args)


# --- manifests ------------------------------------------------------------------------------


def _read_manifests(args: argparse.Namespace) -> tuple[Inventory, list[tuple[str, bytes]]]:
    """Validate the ``-f`` inputs and keep their bytes, so the sandbox can store a copy: each
    file that ``load_paths`` reads, once (a file named twice, or ``-`` twice, is one copy).
    Through the inventory cache, as every command's ``-f`` (``KUBEFENCE_CACHE=off``: not)."""
    import io
    from pathlib import Path

    from kubefence.sources.files import STDIN, expand_paths, load_paths

    paths = list(args.filenames or [])
    stdin_bytes = sys.stdin.buffer.read() if STDIN in paths else b""
    inventory = load_paths(
        paths, default_namespace=args.namespace, stdin=io.BytesIO(stdin_bytes), cache=True
    )
    check_kinds(inventory, args, command="sandbox")
    files, _ = expand_paths(paths)  # no problems: load_paths would have raised them
    return inventory, [
        ("stdin.yaml", stdin_bytes) if file == STDIN else (file, Path(file).read_bytes())
        for file in dict.fromkeys(files)
    ]


def _attach(args: argparse.Namespace, *, stored: bool = True) -> netns.Sandbox:
    """The running sandbox with the inventory loaded from its stored manifests (``stored``),
    or with none: ``apply`` replaces it and reads nothing of it (what the running server
    serves comes from the server's own spec), so the stored copies are not parsed again."""
    from kubefence.api import Inventory
    from kubefence.dataplane import netns
    from kubefence.sources.files import load_paths

    state = netns.require_state(args.name)
    paths = netns.manifest_paths(state) if stored else []
    inventory = (
        load_paths(paths, default_namespace=state.default_namespace) if paths else Inventory.of()
    )
    return netns.Sandbox.attach(args.name, inventory)  # with the settings of its 'up'


# --- actions ------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    from kubefence.dataplane import netns
    from kubefence.dataplane.nft import FlowLog

    netns.check_environment()
    inventory, contents = _read_manifests(args)
    sandbox = netns.Sandbox.up(
        inventory,
        name=args.name,
        manifests=contents,
        default_namespace=args.namespace,
        settings=settings_from_args(args),
        flow_log=FlowLog() if args.flow_log else None,
    )
    pods = sandbox.state.pods
    print(
        f"sandbox {args.name!r} is up: {counted(len(pods), 'pod')}, "
        f"{counted(len(inventory.policies), 'policy', 'policies')} enforced in "
        f"{sandbox.state.node_netns}"
    )
    for key, reason in sorted(sandbox.state.unprobed.items()):
        print(f"  not running {key}: {reason}")
    return 0


def _apply(args: argparse.Namespace) -> int:
    from kubefence.dataplane import netns

    netns.check_environment(tools=("ip", "nft", "conntrack"))
    inventory, contents = _read_manifests(args)
    sandbox = _attach(args, stored=False)
    report = sandbox.apply(inventory, manifests=contents)
    print(
        f"sandbox {args.name!r}: {counted(len(inventory.policies), 'policy', 'policies')} "
        f"applied atomically; {counted(len(report.added), 'pod')} added, "
        f"{len(report.removed)} removed, "
        f"{counted(len(report.cut), 'established connection')} cut (S25)"
    )
    for flow in report.cut:
        print(f"  cut {flow.protocol.value} {flow.src}:{flow.sport} -> {flow.dst}:{flow.dport}")
    return 0


def _table(matrix: netns.ProbeMatrix) -> str:
    names = matrix.endpoints
    width = max((len(n) for n in names), default=4)
    header = " " * width + "  " + " ".join(str(i) for i in range(len(names)))
    lines = [f"{matrix.protocol.value}/{matrix.port} (rows: from, columns: to)", header]
    for i, src in enumerate(names):
        cells = " ".join(matrix.cell(src, dst).rjust(len(str(j))) for j, dst in enumerate(names))
        lines.append(f"{src.ljust(width)}  {cells}   [{i}]")
    reasons = matrix.to_json()["unprobed"]
    if reasons:
        lines.append(f"{len(reasons)} pairs unprobed (?):")
        lines += [f"  {r['from']} -> {r['to']}: {r['reason']}" for r in reasons]
    return "\n".join(lines)


def _probe(args: argparse.Namespace) -> int:
    import json

    from kubefence.api import Protocol
    from kubefence.dataplane import netns
    from kubefence.semantics import parse_port

    netns.check_environment()
    sandbox = _attach(args)
    matrix = sandbox.probe(
        port=parse_port(args.port),
        protocol=Protocol(args.protocol),
        timeout=args.timeout,
        family=6 if args.ipv6 else 4,
    )
    if args.output == "json":
        print(json.dumps(matrix.to_json(), indent=2))
    else:
        print(_table(matrix))
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Probe every declared (port, protocol) and compare with the prediction."""
    from kubefence.cli._verify import verify_and_print
    from kubefence.dataplane import netns

    netns.check_environment()
    sandbox = _attach(args)
    return verify_and_print(
        sandbox, what=f"sandbox {args.name!r}", timeout=args.timeout, ipv6=args.ipv6
    )


def _exec(args: argparse.Namespace) -> int:
    from kubefence.dataplane import netns
    from kubefence.errors import InputError

    netns.check_environment(tools=("ip",))
    command: Sequence[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InputError("name a command after the pod: kubefence sandbox exec NS/POD -- CMD ...")
    return netns.exec_in_pod(args.name, args.pod, command)


def _status_all() -> int:
    from kubefence.dataplane import netns
    from kubefence.errors import KubefenceError

    names = netns.list_sandboxes()
    if not names:
        print("no sandbox is up")
        return 0
    unhealthy = 0
    for name in names:
        try:
            info = netns.status(name)
        except KubefenceError as exc:
            print(f"{name:20} unreadable: {exc}")
            unhealthy += 1
            continue
        unhealthy += not info.healthy
        state = "healthy" if info.healthy else f"UNHEALTHY ({info.phase})"
        print(f"{name:20} {len(info.pods):5} pods  {state}")
    return 1 if unhealthy else 0


def _status(args: argparse.Namespace) -> int:
    import json

    from kubefence.dataplane import netns

    netns.check_environment(tools=("ip",))
    if args.all:
        return _status_all()
    info = netns.status(args.name)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "name": info.name,
                    "phase": info.phase,
                    "healthy": info.healthy,
                    "server": None
                    if info.server is None
                    else {"pid": info.server.pid, "alive": info.server_alive},
                    "missingNamespaces": list(info.missing_namespaces),
                    "pods": [
                        {
                            "pod": s.key,
                            "netns": s.netns,
                            "ipv4": str(s.ipv4),
                            "ipv6": str(s.ipv6),
                        }
                        for s in info.pods
                    ],
                    "notRunning": dict(info.unprobed),
                },
                indent=2,
            )
        )
    else:
        server = (
            "none"
            if info.server is None
            else f"pid {info.server.pid} ({'running' if info.server_alive else 'dead'})"
        )
        print(f"sandbox {info.name!r}: {info.phase}, server {server}")
        for slot in info.pods:
            print(f"  {slot.key:40} {slot.netns:20} {slot.ipv4!s:16} {slot.ipv6}")
        for key, reason in sorted(info.unprobed.items()):
            print(f"  {key:40} not running: {reason}")
        if info.missing_namespaces:
            print(f"  missing namespaces: {', '.join(info.missing_namespaces)} (run 'down')")
    return 0 if info.healthy else 1


def _down(args: argparse.Namespace) -> int:
    from kubefence.dataplane import netns

    report = netns.down(args.name)
    if not (report.namespaces or report.state_removed):
        print(f"sandbox {args.name!r}: nothing to remove")
        return 0
    print(
        f"sandbox {args.name!r} is down: {len(report.namespaces)} namespaces removed"
        + (", server stopped" if report.server_stopped else "")
    )
    return 0
