"""``kubefence cluster up|down|status|kubeconfig|certs check``: a local API server kubectl uses.

Why this module exists: it is the user's handle on the control plane (`kubefence.control`):
`up` starts the HTTPS API server in the background (SQLite store, or a real etcd with
`--store etcd`), writes a kubeconfig and makes `--nodes K` sandbox nodes (network namespaces
with a node component each, default 1; 0 for the API server alone); `down` removes everything
`up` made, also after a crash.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from kubefence.cli.main import EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_INPUT, EXIT_OK

NAME = "cluster"
HELP = "run a local Kubernetes API server (HTTPS, RBAC, SQLite or etcd) that kubectl can use"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def named(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--name", default="default", help="cluster name (default: %(default)s)")
        return sub

    up = named("up", "start the API server in the background; returns when it answers")
    up.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite")
    up.add_argument("--port", type=int, default=0, help="HTTPS port (default: a free one)")
    up.add_argument(
        "--address",
        action="append",
        default=[],
        help="extra IP or DNS name for the server certificate (repeatable)",
    )
    up.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help='static bearer tokens, one per line: token,user,uid,"group1,group2"',
    )
    up.add_argument(
        "--nodes",
        type=int,
        default=1,
        metavar="K",
        help="sandbox nodes node-0..node-K-1 (root; default: %(default)s; 0: API server only)",
    )
    named("down", "stop the cluster and remove its state")
    named("status", "is it running, where, on which store")
    config = named("kubeconfig", "print the admin kubeconfig, or --merge it into ~/.kube/config")
    config.add_argument("--merge", action="store_true", help="merge into $KUBECONFIG's first file")
    verify = named(
        "verify",
        "probe every declared port between every pair of pods with real packets and compare "
        "with the engine's prediction from what the API server stores",
    )
    verify.add_argument("--timeout", type=float, default=1.0, help="seconds (default: 1)")
    verify.add_argument("--ipv6", action="store_true", help="probe the pods' IPv6 addresses")
    certs = named("certs", "certificate commands")
    certs.add_argument("certs_action", choices=("check",), metavar="check")


def run(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name):
        print(f"error: invalid cluster name {args.name!r} (lowercase DNS label)", file=sys.stderr)
        return EXIT_INPUT
    action = {
        "up": _up,
        "down": _down,
        "status": _status,
        "kubeconfig": _kubeconfig,
        "certs": _certs,
        "verify": _verify,
    }[args.action]
    return action(args)


def _verify(args: argparse.Namespace) -> int:
    """``sandbox verify`` for a sandbox cluster: the pods' places come from its nodes' records,
    the prediction from the objects its API server stores."""
    from kubefence.cli._verify import verify_and_print
    from kubefence.client import connect, read_objects
    from kubefence.control.cluster import cluster_status
    from kubefence.dataplane.netns import ClusterProbe, check_environment
    from kubefence.sources.objects import inventory_from_objects

    check_environment()
    info = cluster_status(args.name)
    if not info.running:
        print(f"error: cluster {args.name!r} is not running", file=sys.stderr)
        return EXIT_ENVIRONMENT
    kube = connect(info.directory / "kubeconfig")
    try:
        inventory = inventory_from_objects(read_objects(kube))
    finally:
        kube.close()
    probe = ClusterProbe(args.name, info.directory, inventory)
    return verify_and_print(
        probe, what=f"cluster {args.name!r}", timeout=args.timeout, ipv6=args.ipv6
    )


def _up(args: argparse.Namespace) -> int:
    from kubefence.control.cluster import ClusterError, cluster_up
    from kubefence.control.etcd_process import EtcdError
    from kubefence.errors import KubefenceError

    if not 0 <= args.nodes <= 254:
        print(f"error: --nodes must be 0 to 254, not {args.nodes}", file=sys.stderr)
        return EXIT_INPUT

    started = time.monotonic()
    try:
        info = cluster_up(
            args.name,
            store=args.store,
            port=args.port,
            server_addresses=tuple(args.address),
            token_file=args.token_file,
            nodes=args.nodes,
        )
    except (ClusterError, EtcdError, KubefenceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    took = time.monotonic() - started
    from kubefence.control.nodes import nodes_status

    count = len(nodes_status(info.directory))
    nodes = f", {count} node(s)" if count else ""
    print(f"cluster {info.name!r} is up at {info.url} (store: {info.store}{nodes}; {took:.2f}s)")
    print(f"kubeconfig: {info.directory / 'kubeconfig'}")
    print(f"  export KUBECONFIG={info.directory / 'kubeconfig'}")
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    from kubefence.control.cluster import cluster_down

    if cluster_down(args.name):
        print(f"cluster {args.name!r} is down; its state is removed")
    else:
        print(f"cluster {args.name!r} does not exist")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from kubefence.control.cluster import cluster_status

    info = cluster_status(args.name)
    if not info.directory.exists():
        print(f"cluster {args.name!r} does not exist")
        return EXIT_CHECK_FAILED
    state = "running" if info.running else "stopped"
    print(f"cluster {info.name!r}: {state}")
    print(f"  server:   {info.url or '-'} (pid {info.pid or '-'})")
    print(f"  store:    {info.store or '-'}")
    print(f"  state:    {info.directory}")
    from kubefence.control.nodes import nodes_status

    for node in nodes_status(info.directory):
        pid = node["component_pid"]
        print(
            f"  {node['name']}:   {node['address']}, pods {node['pod_cidr']}, "
            f"component {'pid ' + str(pid) if pid else 'NOT RUNNING'}"
        )
    return EXIT_OK if info.running else EXIT_CHECK_FAILED


def _kubeconfig(args: argparse.Namespace) -> int:
    from kubefence.control.cluster import cluster_status, kubeconfig, merge_kubeconfig

    if not cluster_status(args.name).directory.exists():
        print(f"error: cluster {args.name!r} does not exist", file=sys.stderr)
        return EXIT_INPUT
    if args.merge:
        first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
        target = Path(first) if first else Path.home() / ".kube" / "config"
        merge_kubeconfig(args.name, target)
        print(f"merged cluster {args.name!r} into {target} (context kubefence-{args.name})")
    else:
        sys.stdout.write(kubeconfig(args.name))
    return EXIT_OK


def _certs(args: argparse.Namespace) -> int:
    from kubefence.control.cluster import state_dir
    from kubefence.control.pki import check_certs

    directory = state_dir(args.name) / "pki"
    if not directory.exists():
        print(f"error: cluster {args.name!r} has no certificates", file=sys.stderr)
        return EXIT_INPUT
    reports = check_certs(directory)
    bad = 0
    print(f"{'CERTIFICATE':<28} {'SUBJECT':<44} {'EXPIRES':<12} {'DAYS':>5}  CHAIN")
    for report in reports:
        ok = report.chain_ok and report.days_left > 0
        bad += not ok
        print(
            f"{report.path.relative_to(directory)!s:<28} {report.subject[:44]:<44} "
            f"{report.not_after:%Y-%m-%d}   {report.days_left:>5}  "
            f"{'ok' if report.chain_ok else 'BROKEN: ' + report.problem}"
        )
    return EXIT_CHECK_FAILED if bad else EXIT_OK
